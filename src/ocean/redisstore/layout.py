"""Key names, ids and value texts of the Redis layout (``ocean.lua`` holds the same names).

Everything of a route carries the hash tag ``{route}`` (routes cannot hold braces), so a
route is one slot and every write to it is one function call there.

A drop's ``seq`` is per route; its stream id ``<seq>-<ms>`` is the same in the route's change
stream and its events stream. A live message's id (the SSE id) is ``<seq>-<ms>.<epoch>``: the
epoch names the Redis process life that wrote it (``ocean.lua``), so a resume point lost in a
failover, whose seq was handed out again, is told apart. ``drop_id`` is derived from the route
and the stream id.
"""
from __future__ import annotations

import hashlib

ROUTES = "o:routes"  # a set of every route ever written (its own slot; filtered by content on read)


def meta(route: str) -> str:
    """The route's meta hash: the key every function call declares (it picks the slot)."""
    return f"o:{{{route}}}:m"


def events(route: str) -> str:
    return f"o:{{{route}}}:ev"


def changes(route: str) -> str:
    return f"o:{{{route}}}:x"


def keys(route: str) -> str:
    return f"o:{{{route}}}:k"


def history(route: str, key: str) -> str:
    return f"o:{{{route}}}:h:{key}"


def channel(route: str) -> str:
    """The route's shard channel (SPUBLISH): the same slot as its keys."""
    return f"o:{{{route}}}"


def split_id(stream_id: str) -> tuple[int, int]:
    """``"<seq>-<ms>"`` -> ``(seq, ms)``."""
    seq, _, ms = stream_id.partition("-")
    return int(seq), int(ms)


def live_id(stream_id: str, epoch: str) -> str:
    """The id a client holds (SSE ``id:``) for a change stream entry."""
    return f"{stream_id}.{epoch}"


def split_live_id(text: str) -> tuple[int, int, str]:
    """``"<seq>-<ms>.<epoch>"`` -> ``(seq, ms, epoch)``; ValueError when it is not one."""
    stream_id, _, epoch = text.partition(".")
    seq, ms = split_id(stream_id)
    if not epoch:
        raise ValueError(f"not a live message id: {text!r}")
    return seq, ms, epoch


def drop_id(route: str, stream_id: str) -> str:
    """A UUID-shaped id, unique per route and write (the embedded one is per data directory and seq)."""
    h = hashlib.blake2b(f"{route}\n{stream_id}".encode(), digest_size=16).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def number(text: str):
    """A counter's stored text as ``int`` (int64) or ``float`` (its text holds '.', 'e', 'inf' or 'nan')."""
    try:
        return int(text)
    except ValueError:
        return float(text)


def amount_text(value) -> str:
    """An increment amount or a counter's new value as the function reads it (floats keep a '.' or 'e')."""
    return repr(value) if type(value) is float else str(value)
