"""What one caller may do: read and write scopes over route prefixes.

An ``Access`` is the resolved permission set of one request (from a key), or
of the server itself. The engine, Drops and SQL call ``check_read`` /
``check_write``; the web layer only turns keys into an ``Access``.
"""
from __future__ import annotations

from .errors import Forbidden
from .model import is_system_route, prefix_matches


def _covers(scope: str, target: str) -> bool:
    """True when scope prefix ``scope`` covers route-or-prefix ``target`` entirely.

    ``analytics/*`` covers ``analytics``, ``analytics/daily`` and ``analytics/x/*``,
    but not ``analytics2`` nor ``*``; an exact scope covers only that route.
    """
    if scope == "*":
        return True
    if target == "*":
        return False
    if target.endswith("/*"):
        base = target[:-2]
        return scope.endswith("/*") and prefix_matches(scope, base)
    return prefix_matches(scope, target)


class Access:
    """Read/write scopes of one caller; ``source`` is recorded on the drops it writes."""

    __slots__ = ("source", "read", "write", "admin", "name")

    def __init__(self, source: str, read=(), write=(), admin: bool = False, name: str = ""):
        self.source = source
        self.read = tuple(read)
        self.write = tuple(write)
        self.admin = admin
        self.name = name

    @classmethod
    def server(cls) -> "Access":
        """The server itself (and the in-process library): may do anything."""
        return cls("server", ("*",), ("*",), admin=True, name="server")

    def can_read(self, target: str) -> bool:
        """May this caller read ``target`` (a route, ``prefix/*`` or ``*``)?"""
        return self.admin or any(_covers(s, target) for s in self.read)

    def can_write(self, route: str) -> bool:
        """May this caller write ``route``? System routes need the admin/server."""
        if self.admin:
            return True
        if is_system_route(route):
            return False
        return any(_covers(s, route) for s in self.write)

    def check_read(self, target: str) -> None:
        """Raise Forbidden unless ``target`` may be read."""
        if not self.can_read(target):
            raise Forbidden(f"this key may not read {target!r}")

    def check_write(self, route: str) -> None:
        """Raise Forbidden unless ``route`` may be written."""
        if not self.can_write(route):
            if is_system_route(route) and not self.admin:
                raise Forbidden(f"{route!r} is a system route: only the server and admin keys write it")
            raise Forbidden(f"this key may not write {route!r}")

    def __repr__(self) -> str:  # never shows a secret: keys hold only ids here
        return f"Access({self.source!r}, read={self.read}, write={self.write}, admin={self.admin})"
