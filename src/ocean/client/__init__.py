"""ocean's Python client: the HTTP API as calls (``Client``), and live streams that resume (``Stream``).

Standard library only (``http.client``, ``json``); it imports nothing of the
server (no falcon, no gevent, no engine): only the error catalog and the
route/key checks of ``ocean.model``.
"""
from .client import DEFAULT_URL, Client, Result, Rows
from .stream import End, Event, Gap, Message, Overflow, Stream
from .transport import Reply

__all__ = ["Client", "Result", "Rows", "Reply", "Stream", "Event", "Message", "Gap", "Overflow", "End",
           "DEFAULT_URL"]
