"""Who is calling: the request's key, resolved to an ``Access`` by the key store.

A key comes in the ``X-Ocean-Key`` header, as ``Authorization: Bearer <key>``,
or as ``?_key=`` (browsers' ``EventSource`` cannot send headers). The token
is never logged: only the resolved key *id* travels further.
"""
from __future__ import annotations

from ..access import Access
from ..errors import Unauthorized
from ..keys import MISSING_KEY


def token_of(req) -> str | None:
    """The key a request carries, if any."""
    env = req.env  # PERF: the WSGI names straight (``get_header`` rebuilds them per call)
    token = env.get("HTTP_X_OCEAN_KEY")
    if token:
        return token.strip()
    auth = env.get("HTTP_AUTHORIZATION")
    if auth and auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return req.get_param("_key") or None


def require(req, keys) -> Access:
    """The caller's ``Access`` from the key store ``keys``; Unauthorized (401) without a valid key."""
    access = req.context.get("access")
    if access is None:
        token = token_of(req)
        if not token:
            raise Unauthorized(MISSING_KEY)
        access = keys.resolve(token)
        req.context.access = access
    return access
