"""``GET /live/{route}`` · ``/live/{prefix}/*`` (SSE) and ``GET /stream/{prefix}?last=N``.

``/stream`` replays the last N matching drops (default 100) and then goes
live; with ``Accept: application/json`` it answers the last N as a JSON
array instead (each the SSE ``data`` object plus ``_seq``). Both resume
after ``Last-Event-ID`` or ``?last_event_id=``.
"""
from __future__ import annotations

from ...errors import BadRequest
from ...model import check_prefix
from .. import auth, sse

STREAM_LAST = 100


def _resume_point(req, engine=None):
    raw = req.get_header("Last-Event-ID") or req.get_param("last_event_id")
    if raw in (None, ""):
        return None
    if getattr(engine, "per_route_seq", False):
        return raw  # Redis mode: an opaque id (a position per route), checked by the engine
    try:
        seq = int(raw)
    except ValueError:
        raise BadRequest(f"Last-Event-ID must be a seq number, got {raw[:40]!r}") from None
    if seq < 0:
        raise BadRequest("Last-Event-ID must not be negative")
    return seq


def _start(svc, req, resp, prefix: str, last) -> None:
    check_prefix(prefix)
    access = auth.require(req, svc.keys)
    access.check_read(prefix)
    after = _resume_point(req, svc.engine)
    resp.stream = sse.open_stream(svc.engine, svc.streams, access, prefix,
                                  after_seq=after, last=None if after is not None else last,
                                  ip=req.remote_addr)  # the peer: X-Forwarded-For is not trusted
    resp.content_type = "text/event-stream; charset=utf-8"
    resp.cache_control = ["no-cache"]
    resp.set_header("X-Accel-Buffering", "no")


def _last(req, default: int, cap: int) -> int:
    n = req.get_param_as_int("last", min_value=0)
    return min(default if n is None else n, cap)


class Live:
    """Drops as they are written (``?last=N`` replays some first)."""

    def __init__(self, svc):
        self.svc = svc

    def on_get(self, req, resp, prefix):
        _start(self.svc, req, resp, prefix, _last(req, 0, self.svc.settings.replay_history))


class Stream:
    """Replay then live; or, for ``Accept: application/json``, the last N as an array."""

    def __init__(self, svc):
        self.svc = svc

    def on_get(self, req, resp, prefix):
        last = _last(req, STREAM_LAST, self.svc.settings.replay_history)
        accept = (req.get_header("Accept") or "").lower()
        if "application/json" in accept and "text/event-stream" not in accept:
            check_prefix(prefix)
            auth.require(req, self.svc.keys).check_read(prefix)
            after = _resume_point(req, self.svc.engine)
            if isinstance(after, str):
                after = None  # Redis mode: the JSON answer's _seq is per route; no resume filter
            msgs = self.svc.engine.recent(prefix, last)
            resp.media = [{**m.data, "_seq": m.seq} for m in msgs if after is None or m.seq > after]
            return
        _start(self.svc, req, resp, prefix, last)
