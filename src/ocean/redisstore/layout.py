"""Key names, ids and value texts of the Redis layout (``ocean.lua`` holds the same names).

Everything of a route carries the hash tag ``{route}`` (routes cannot hold braces), so a
route is one slot and every write to it is one function call there.

A drop's ``seq`` is per route; its stream id ``<seq>-<ms>`` (the same in the route's change
stream and its events stream) names it across failovers, where a seq may be handed out
again but never with the same time. ``drop_id`` is derived from the route and that id.
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
