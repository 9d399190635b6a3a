"""API keys kept in Redis, so a key created on one node works on every node.

The records are the file key store's own (``ocean.keys``), each JSON in the hash ``o:keys``
(field: the key id); only the token's hash is stored. Every edit bumps ``o:keys:gen``. A
node re-reads the hash when that generation moved, looked at most every ``RECHECK_S``: a
revocation is refused on every node within that, and the SSE ticker (which asks
``is_active`` each second) ends the revoked key's streams on every node.

Each edit is also broadcast (``PUBLISH o:keys``): every worker's live reader hears it and
ends the revoked key's streams at once. The generation stays the ground truth because a
broadcast missed during a reconnect would otherwise leave a revoked key working on that
node; one GET per ``RECHECK_S`` per worker cannot miss.
"""
from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager

from ..errors import StorageError, Unauthorized
from ..keys import ENV_ADMIN, ENV_ID, KeyStore, _access, token_hash
from ..access import Access

KEYS = "o:keys"
GEN = "o:keys:gen"
ADMIN_MARK = "o:keys:admin"  # SET NX: two nodes starting together make one admin key
CHANNEL = "o:keys"  # PUBLISH (not sharded): a cluster delivers it to subscribers on every node
RECHECK_S = 0.5


class RedisKeyStore(KeyStore):
    """``KeyStore`` over a RedisEngine's client (same records, same errors)."""

    def __init__(self, engine, environ=None):
        import os
        environ = os.environ if environ is None else environ
        self.engine = engine
        self.path = f"{engine.url} ({KEYS})"  # for messages
        self._lock = threading.Lock()
        self._records: list[dict] = []
        self._by_hash: dict[str, dict] = {}
        self._live: dict = {}
        self._env_hash = token_hash(environ[ENV_ADMIN]) if environ.get(ENV_ADMIN) else None
        self._env_access = Access(ENV_ID, ("*",), ("*",), admin=True, name="admin (OCEAN_ADMIN_KEY)")
        self._gen = None
        self._gen_seen = None
        self._recheck_at = 0.0
        self._reload(force=True)

    def _refresh(self) -> None:
        if time.monotonic() >= self._recheck_at:
            try:
                self._reload()
            except StorageError:
                self._recheck_at = time.monotonic() + RECHECK_S  # keep the last known keys while Redis is away

    def changed(self) -> None:
        """Told by the live reader that the keys changed (the broadcast): re-read on the next look."""
        self._recheck_at = 0.0

    def resolve(self, token):
        """As ``KeyStore.resolve``; an unknown token first re-checks the generation (one GET), so a key
        made on another node a moment ago works at once."""
        try:
            return super().resolve(token)
        except Unauthorized:
            if not token:
                raise
            self._recheck_at = 0.0
            return super().resolve(token)

    def _reload(self, force: bool = False) -> None:
        client = self.engine.client
        self._recheck_at = time.monotonic() + RECHECK_S
        gen = self.engine._redis(client.get, GEN)
        if gen == self._gen_seen and not force:
            return
        raw = self.engine._redis(client.hgetall, KEYS)
        records = sorted((json.loads(v) for v in raw.values()), key=lambda r: (r.get("created_at", ""), r["id"]))
        with self._lock:
            self._records = records
            self._by_hash = {r["hash"]: r for r in records if not r.get("revoked_at")}
            self._live = {h: (h, _access(r)) for h, r in self._by_hash.items()}
            self._gen_seen = gen

    @contextmanager
    def _editing(self):
        """The current records; those changed or added are written back and the generation bumped."""
        self._reload(force=True)
        records = [dict(r) for r in self._records]
        before = {r["id"]: json.dumps(r, sort_keys=True) for r in records}
        yield records
        changed = {r["id"]: json.dumps(r) for r in records if before.get(r["id"]) != json.dumps(r, sort_keys=True)}
        if changed:
            client = self.engine.client
            self.engine._redis(client.hset, KEYS, mapping=changed)
            gen = self.engine._redis(client.incr, GEN)
            try:  # the broadcast: every node's reader re-reads the keys and ends revoked streams now
                client.publish(CHANNEL, gen)
            except Exception:  # the generation alone is enough: each node finds it within RECHECK_S
                pass
        self._reload(force=True)

    def ensure_admin(self) -> str | None:
        if self._env_hash is not None or any(r.get("admin") for r in self._records):
            return None
        if not self.engine._redis(self.engine.client.set, ADMIN_MARK, "1", nx=True):
            return None  # another node made it
        token, _ = self.create(name="admin", read=["*"], write=["*"], admin=True)
        return token
