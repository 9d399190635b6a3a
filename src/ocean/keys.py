"""The key store: API keys with read/write scopes, stored only as hashes.

Keys live in ``<data>/keys.json`` beside the engine's files. A token is 32
random bytes from ``secrets`` (``ok_`` + URL-safe text); the file keeps its
SHA-256 only (tokens are high-entropy, so a slow KDF buys nothing). Writes
go to a temporary file that is fsynced and renamed over the old one, under an
``fcntl`` lock so ``ocean key create`` can run beside a live server, and the
server re-reads the file when it changes: a revocation takes effect on the
next request, and the web layer ends open streams of a revoked key.

The first start creates an ``admin`` key and returns its token once, for the
caller to print; ``OCEAN_ADMIN_KEY`` in the environment is the admin key
instead (kept in memory only, never written).

PERF: every write through a ``KeyStore`` (in any process: the server, ``ocean
key``) also bumps a counter in ``keys.json.gen``, which each store maps, so a
request learns that the file changed by reading 8 bytes of shared memory, not
by a ``stat`` (1.3-1.7 us of each keyed request). A file edited by hand (no
bump) is still noticed within ``RECHECK_S``.
"""
from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import mmap
import os
import secrets
import threading
import time
from contextlib import contextmanager

from .access import Access
from .errors import Conflict, InvalidSetting, NotFound, Unauthorized
from .model import check_prefix, iso_ms, now_ms

# The 401 hint names every way a key may come (the CLI says OCEAN_KEY / --key itself).
MISSING_KEY = ("a key is required: send the header X-Ocean-Key: <key>, the header Authorization: Bearer <key>, "
               "or the query parameter ?_key=<key> (for EventSource)")

FILENAME = "keys.json"
ENV_ADMIN = "OCEAN_ADMIN_KEY"
ENV_ID = "env-admin"
RECHECK_S = 1.0  # a key file changed without a generation bump (by hand) is re-read within this


class Generation:
    """A counter in ``<keys file>.gen`` that every process maps: bumped on each write of the keys.

    ``value`` is a read of shared memory; ``bump`` runs under the key file's
    lock, so bumps never race. Not creatable (a read-only directory): ``None``
    from ``open``, and the store falls back to one ``stat`` per check.
    """

    def __init__(self, mapping: mmap.mmap):
        self._map = mapping
        self._view = memoryview(mapping).cast("Q")

    @classmethod
    def open(cls, path: str) -> "Generation | None":
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            return None
        try:
            if os.fstat(fd).st_size < 8:
                os.ftruncate(fd, 8)  # two processes doing this at once both leave 8 zero bytes
            return cls(mmap.mmap(fd, 8))
        except (OSError, ValueError):
            return None
        finally:
            os.close(fd)

    def value(self) -> int:
        return self._view[0]

    def bump(self) -> None:
        self._view[0] = (self._view[0] + 1) & 0xFFFFFFFFFFFFFFFF


def token_hash(token: str) -> str:
    """The stored form of a token: its SHA-256 in hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """A fresh secret token (256 bits from ``secrets``)."""
    return "ok_" + secrets.token_urlsafe(32)


def _access(rec: dict) -> Access:
    return Access(rec["id"], rec.get("read", ()), rec.get("write", ()), admin=rec.get("admin", False),
                  name=rec.get("name", ""))


class KeyStore:
    """Hashed keys of one data directory; ``resolve(token)`` gives an ``Access``."""

    def __init__(self, data_dir: str, environ=None):
        environ = os.environ if environ is None else environ
        self.path = os.path.join(data_dir, FILENAME)
        self._lock = threading.Lock()
        self._stamp = None
        self._records: list[dict] = []
        self._by_hash: dict[str, dict] = {}
        # hash -> (hash, Access) of each live key, built once per read of the file
        # (PERF: no Access per request; an Access is never mutated, so one serves all).
        self._live: dict[str, tuple[str, Access]] = {}
        self._env_hash = token_hash(environ[ENV_ADMIN]) if environ.get(ENV_ADMIN) else None
        self._env_access = Access(ENV_ID, ("*",), ("*",), admin=True, name="admin (OCEAN_ADMIN_KEY)")
        os.makedirs(data_dir, exist_ok=True)
        self._gen = Generation.open(self.path + ".gen")
        self._gen_seen = -1
        self._recheck_at = 0.0
        self._reload(force=True)

    # -- reading -------------------------------------------------------------

    def _file_stamp(self):
        if self._stamp is None and not os.access(self.path, os.F_OK):
            return None  # PERF: no file (OCEAN_ADMIN_KEY only): no FileNotFoundError per request
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _refresh(self) -> None:
        """Re-read the file when it may have changed: its generation moved, or ``RECHECK_S`` passed."""
        gen = self._gen
        if gen is None or gen.value() != self._gen_seen or time.monotonic() >= self._recheck_at:
            self._reload()

    def _reload(self, force: bool = False) -> None:
        """Re-read the file if it changed since the last read (one ``stat`` otherwise)."""
        if self._gen is not None:  # read before the stat: a bump after it is seen next time
            self._gen_seen = self._gen.value()
        self._recheck_at = time.monotonic() + RECHECK_S
        stamp = self._file_stamp()
        if stamp == self._stamp and not force:
            return
        records = []
        if stamp is not None:
            try:
                with open(self.path, encoding="utf-8") as f:
                    records = json.load(f)["keys"]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise InvalidSetting(f"cannot read the key file {self.path}: {exc}") from None
        with self._lock:
            self._records = records
            self._by_hash = {r["hash"]: r for r in records if not r.get("revoked_at")}
            self._live = {h: (h, _access(r)) for h, r in self._by_hash.items()}
            self._stamp = stamp

    def resolve(self, token: str | None) -> Access:
        """The ``Access`` of ``token``; Unauthorized when missing, unknown or revoked."""
        if not token:
            raise Unauthorized(MISSING_KEY)
        digest = token_hash(token)
        if self._env_hash is not None and hmac.compare_digest(digest, self._env_hash):
            return self._env_access  # lives in the environment only: no file to consult
        self._refresh()  # a revocation through any KeyStore counts from the next request
        # NOTE: the dict lookup is on the hash, so its timing tells nothing about
        # the token; the final comparison is constant-time all the same.
        hit = self._live.get(digest)
        if hit is None or not hmac.compare_digest(hit[0], digest):
            raise Unauthorized("this key is not known (or was revoked)")
        return hit[1]

    def is_active(self, key_id: str) -> bool:
        """False once the key ``key_id`` has been revoked (re-reads a changed file)."""
        if key_id in (ENV_ID, "server"):
            return True
        self._refresh()
        return any(r["id"] == key_id for r in self._by_hash.values())

    def list(self) -> list[dict]:
        """Every key's public record (id, name, scopes, dates; never a hash)."""
        self._reload()
        return [{k: v for k, v in r.items() if k != "hash"} for r in self._records]

    # -- writing -------------------------------------------------------------

    @contextmanager
    def _editing(self):
        """Hold the file lock, give the current records, write them back atomically."""
        with open(self.path + ".lock", "a") as lockf:
            fcntl.flock(lockf, fcntl.LOCK_EX)
            self._reload(force=True)
            records = [dict(r) for r in self._records]
            yield records
            self._write(records)
            self._reload(force=True)

    def _write(self, records: list[dict]) -> None:
        tmp = f"{self.path}.tmp.{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"version": 1, "keys": records}, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        dfd = os.open(os.path.dirname(self.path) or ".", os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        if self._gen is not None:
            self._gen.bump()  # under the file lock (``_editing``): every mapping sees it now

    def create(self, name: str = "", read=(), write=(), admin: bool = False) -> tuple[str, dict]:
        """Make a key; returns ``(token, public record)``. The token is shown only now."""
        read = [check_prefix(p) for p in read]
        write = [check_prefix(p) for p in write]
        if not (read or write or admin):
            raise InvalidSetting("a key needs at least one scope: --read PREFIX, --write PREFIX or --admin")
        if admin:
            read, write = ["*"], ["*"]  # what an admin key may do, said in its record as in the first one's
        token = new_token()
        rec = {"id": "k_" + secrets.token_hex(6), "name": name, "read": read, "write": write,
               "admin": admin, "created_at": iso_ms(now_ms()), "revoked_at": None, "hash": token_hash(token)}
        with self._editing() as records:
            records.append(rec)
        return token, {k: v for k, v in rec.items() if k != "hash"}

    def revoke(self, key_id: str) -> dict:
        """Revoke a key by id (or by name when one live key has it).

        NotFound when no key has that id or name; Conflict, listing their ids, when
        several live keys share the name (names are labels, not unique: revoke by id).
        """
        with self._editing() as records:
            hits = [r for r in records if r["id"] == key_id] or [r for r in records if r.get("name") == key_id]
            live = [r for r in hits if not r.get("revoked_at")]
            if not hits:
                raise NotFound(f"no key has the id or name {key_id!r}; `ocean key list` shows them")
            if not live:
                raise NotFound(f"key {key_id!r} is already revoked")
            if len(live) > 1:
                ids = ", ".join(r["id"] for r in live)
                raise Conflict(f"{len(live)} live keys are named {key_id!r} ({ids}); revoke one by its id, "
                               f"for example `ocean key revoke {live[0]['id']}`")
            live[0]["revoked_at"] = iso_ms(now_ms())
        return {k: v for k, v in live[0].items() if k != "hash"}

    def ensure_admin(self) -> str | None:
        """Create the admin key on first start; returns its token then, else None.

        Nothing is created when ``OCEAN_ADMIN_KEY`` is set or any admin key exists.
        """
        if self._env_hash is not None or any(r.get("admin") for r in self._records):
            return None
        with open(self.path + ".lock", "a") as lockf:
            fcntl.flock(lockf, fcntl.LOCK_EX)
            self._reload(force=True)
            if any(r.get("admin") for r in self._records):
                return None
        token, _ = self.create(name="admin", read=["*"], write=["*"], admin=True)
        return token
