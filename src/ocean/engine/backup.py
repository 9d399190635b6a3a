"""Backups: a consistent copy of a data directory, taken while it serves, and its restore.

A backup is a directory that ``ocean serve --data`` opens as is:

* ``snapshot-<seq>.snap`` -- the whole state at one seq, captured under the write
  lock exactly as a background snapshot is (the same short pause), written outside it;
* ``meta.json`` -- the source's instance id (drop ids stay the same after a restore);
* ``keys.json`` -- the key file (hashes only), when the source has one;
* ``backup.json`` -- the manifest: seq, time, source, and per file its size and a
  CRC-32C of every 64 KiB block, so a restore names the damaged file and the offset
  of the block that fails.

No log segment is copied: the snapshot covers every write up to its seq, and the
manifest's seq is that point. A backup is written into ``<dest>.partial`` holding
the marker ``incomplete.json`` (who writes it), renamed to ``<dest>`` when every
byte is on disk, and only then loses its marker. A process killed on the way leaves
a directory with the marker, which ``Engine``/``ocean serve`` and ``restore``
refuse and the next backup beside it deletes. A restore writes the same marker
into its target until it is done.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import threading
import time

from ..errors import BackupFailed, DamagedBackup, DataDirLocked, IncompleteDataDir, InvalidBackupDest
from ..keys import FILENAME as KEYS_FILE
from ..kernels import kernel
from ..model import iso_ms, now_ms
from . import snapshot
from .files import fsync_dir

FORMAT = 1
MANIFEST = "backup.json"
MARKER = "incomplete.json"        # in a directory a backup or restore is still filling
LAST = "last-backup.json"         # in a data directory: the last backup made of it
PARTIAL = ".partial"
BLOCK = 64 << 10                  # checksum granularity: a damaged byte is located to its block
_crc32c = kernel("crc32c")
_active: set[str] = set()         # directories this process is filling right now
_active_lock = threading.Lock()
_HOST = socket.gethostname()


# -- destinations ----------------------------------------------------------------

def default_dir(data: str, setting: str) -> str:
    """The backup directory: the ``backup_dir`` setting, or ``<data>-backups`` beside the data directory.

    NOTE: never inside the data directory: a copy of that directory (or a restore with
    ``--force`` into it) would carry or clobber the backups, and they would die with it.
    """
    data = os.path.abspath(data)
    return os.path.abspath(setting) if setting else data.rstrip(os.sep) + "-backups"


def resolve(dest: str | None, data: str, backup_dir: str, seq: int, ms: int) -> str:
    """The absolute target of a backup: ``dest`` (relative: under ``backup_dir``), or a new
    ``ocean-<UTC time>-seq<seq>`` under ``backup_dir``. Raises InvalidBackupDest."""
    if dest is not None and not isinstance(dest, str):
        raise InvalidBackupDest("a backup destination is a path (a string)")
    if dest:
        if "\x00" in dest:
            raise InvalidBackupDest("a backup destination may not contain NUL")
        if not os.path.isabs(dest):
            if any(part == ".." for part in dest.replace("\\", "/").split("/")):
                raise InvalidBackupDest(f"the backup destination {dest!r} leaves the backup directory "
                                        f"{backup_dir} (a relative destination is a name inside it)")
            dest = os.path.join(backup_dir, dest)
        target = os.path.abspath(dest)
    else:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(ms / 1000))
        base = os.path.join(backup_dir, f"ocean-{stamp}-seq{seq}")
        target, n = base, 1
        while os.path.lexists(target) or os.path.lexists(target + PARTIAL):
            n += 1
            target = f"{base}-{n}"
    check_target(target, data)
    return target


def check_target(target: str, data: str) -> None:
    """Refuse a backup target that is in the data directory, or exists and is not an empty directory."""
    real, home = os.path.realpath(target), os.path.realpath(data)
    if real == home or real.startswith(home.rstrip(os.sep) + os.sep) or home.startswith(real.rstrip(os.sep) + os.sep):
        raise InvalidBackupDest(f"the backup destination {target} is inside the data directory {data} (or holds "
                                f"it): a backup there would be copied into the next one and lost with the data. "
                                f"Choose a directory outside it (setting backup_dir)")
    if os.path.lexists(target):
        if not os.path.isdir(target):
            raise InvalidBackupDest(f"the backup destination {target} exists and is not a directory")
        if os.listdir(target) and not _is_debris(target):
            raise InvalidBackupDest(f"the backup destination {target} already exists and is not empty; "
                                    f"name a new directory")
    parent = os.path.dirname(target)
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as exc:
        raise InvalidBackupDest(f"cannot create the backup directory {parent}: {exc.strerror or exc}") from None
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
        raise InvalidBackupDest(f"the backup directory {parent} is not a writable directory")


# -- the marker of unfinished work -------------------------------------------------

def _write_marker(path: str, what: str) -> None:
    doc = {"what": what, "pid": os.getpid(), "host": _HOST, "started_at": iso_ms(now_ms()),
           "pid_start": _process_start(os.getpid())}
    fd = os.open(os.path.join(path, MARKER), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, json.dumps(doc).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(path)


def read_marker(path: str) -> dict | None:
    """The unfinished-work marker of ``path`` (``{}`` when torn), or None when it has none."""
    try:
        with open(os.path.join(path, MARKER), encoding="utf-8") as f:
            doc = json.load(f)
        return doc if isinstance(doc, dict) else {}
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}


def refuse_incomplete(path: str) -> None:
    """Raise IncompleteDataDir if ``path`` holds the marker of a backup or restore that did not finish."""
    mark = read_marker(path)
    if mark is None:
        return
    what = mark.get("what", "backup or restore")
    raise IncompleteDataDir(
        f"{path} holds a {what} that never finished (started {mark.get('started_at', '?')} by pid "
        f"{mark.get('pid', '?')}, which stopped before the end); it is not a complete data directory. "
        + ("Run the restore again with --force." if what == "restore" else
           "Delete it and make a new backup (the next backup beside it deletes it)."))


def _is_debris(path: str) -> bool:
    """A directory an unfinished backup left: it has the marker and its writer is gone."""
    mark = read_marker(path)
    if mark is None or mark.get("what", "backup") != "backup":
        return False
    pid, host = mark.get("pid"), mark.get("host")
    if not isinstance(pid, int) or host != _HOST:
        return not mark  # torn (crashed while starting): debris; another host's: not ours to judge
    if pid == os.getpid():
        with _active_lock:
            return os.path.abspath(path) not in _active
    return not _alive(pid, mark.get("pid_start"))


def _process_start(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot, from /proc), or None where unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int, started: int | None) -> bool:
    """Is the process that wrote a marker still running? A zombie (killed, not yet reaped by its
    parent -- in a container, PID 1 may never reap it) or a reused pid is not."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        if fields[0] in (b"Z", b"X"):
            return False
        return started is None or int(fields[19]) == started
    except FileNotFoundError:
        return False
    except (OSError, ValueError, IndexError):
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_debris(parent: str, marked_too: bool = False) -> list[str]:
    """Delete what killed backups left in ``parent``: ``*.partial`` directories whose writer is gone
    (and, with ``marked_too`` -- the backup directory, where every entry is a backup -- any marked one)."""
    gone = []
    try:
        names = os.listdir(parent)
    except OSError:
        return gone
    for name in names:
        full = os.path.join(parent, name)
        if os.path.isdir(full) and not os.path.islink(full):
            if name.endswith(PARTIAL) and not os.listdir(full) or \
                    (name.endswith(PARTIAL) or marked_too) and _is_debris(full):
                shutil.rmtree(full, ignore_errors=True)
                gone.append(full)
    return gone


# -- writing a backup ---------------------------------------------------------------

def block_sums(full: str) -> tuple[int, list[int]]:
    """``(size, [CRC-32C of each BLOCK-byte block])`` of one file."""
    sums, size = [], 0
    with open(full, "rb") as f:
        while True:
            chunk = f.read(BLOCK)
            if not chunk:
                break
            size += len(chunk)
            sums.append(_crc32c(chunk))
    return size, sums


def _manifest_check(doc: dict) -> int:
    body = {k: v for k, v in doc.items() if k != "check"}
    return _crc32c(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())


def _write_file(path: str, name: str, data: bytes, mode: int = 0o644) -> None:
    fd = os.open(os.path.join(path, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def write(view: dict, meta: dict, data: str, target: str, sweep: bool = False) -> dict:
    """Write the captured ``view`` (see ``snapshot.capture``) as a backup at ``target``; returns its manifest.

    Runs off the event loop (the store passes it to ``offload``). Any failure removes
    the unfinished directory; a kill leaves it marked, for the next backup to delete
    (``sweep``: the target is in the backup directory, whose marked entries all go).
    """
    t0 = time.perf_counter()
    parent = os.path.dirname(target)
    clean_debris(parent, marked_too=sweep)
    tmp = target + PARTIAL
    with _active_lock:
        _active.add(tmp)
        _active.add(target)
    try:
        try:
            if os.path.isdir(target) and os.listdir(target):
                if not _is_debris(target):
                    raise InvalidBackupDest(f"the backup destination {target} was filled while the backup was "
                                            f"taken; name a new directory")
                shutil.rmtree(target)  # what a killed backup left
            os.mkdir(tmp, 0o755)
            _write_marker(tmp, "backup")
            files = [snapshot.write(tmp, view)]
            _write_file(tmp, "meta.json", json.dumps(meta).encode())
            files.append("meta.json")
            keys = os.path.join(data, KEYS_FILE)
            if os.path.exists(keys):
                with open(keys, "rb") as f:  # replaced whole (tmp + rename) by its writers: any read is whole
                    _write_file(tmp, KEYS_FILE, f.read(), 0o600)
                files.append(KEYS_FILE)
            doc = {"format": FORMAT, "kind": "ocean-backup", "seq": view["seq"], "created_ms": now_ms(),
                   "source": os.path.abspath(data), "instance": meta.get("instance"), "block_bytes": BLOCK,
                   "files": []}
            doc["created_at"] = iso_ms(doc["created_ms"])
            for name in files:
                size, sums = block_sums(os.path.join(tmp, name))
                doc["files"].append({"name": name, "bytes": size, "crc32c": sums})
            doc["bytes"] = sum(f["bytes"] for f in doc["files"])
            doc["check"] = _manifest_check(doc)
            _write_file(tmp, MANIFEST, (json.dumps(doc, indent=1) + "\n").encode())
            fsync_dir(tmp)
            os.rename(tmp, target)
            fsync_dir(parent)
            os.unlink(os.path.join(target, MARKER))
            fsync_dir(target)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EEXIST, errno.ENOTEMPTY,
                             errno.EBUSY, errno.EXDEV, errno.EISDIR):
                raise InvalidBackupDest(f"cannot write the backup at {target}: {exc.strerror or exc} (it is "
                                        f"written beside it as {os.path.basename(tmp)} and renamed: name a new "
                                        f"directory on a writable file system, not a mount point)") from None
            raise BackupFailed(f"the backup at {target} could not be written ({exc.strerror or exc}); "
                               f"nothing was left behind") from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    finally:
        with _active_lock:
            _active.discard(tmp)
            _active.discard(target)
    doc["path"] = target
    doc["seconds"] = round(time.perf_counter() - t0, 3)
    return doc


def summary(doc: dict, pause_ms: float, seconds: float) -> dict:
    """What /health, /metrics and the dashboard say about a backup."""
    return {"path": doc["path"], "seq": doc["seq"], "bytes": doc["bytes"], "created_at": doc["created_at"],
            "created_ms": doc["created_ms"], "seconds": round(seconds, 3), "pause_ms": round(pause_ms, 3)}


def save_last(data: str, info: dict) -> None:
    """Remember ``info`` as the data directory's last backup (read back at open)."""
    full = os.path.join(data, LAST)
    tmp = full + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(info, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, full)


def load_last(data: str) -> dict | None:
    """The last backup recorded in a data directory, or None."""
    try:
        with open(os.path.join(data, LAST), encoding="utf-8") as f:
            doc = json.load(f)
        return doc if isinstance(doc, dict) else None
    except (OSError, ValueError):
        return None


# -- verifying and restoring ------------------------------------------------------------

def _damaged(src: str, what: str) -> DamagedBackup:
    return DamagedBackup(f"the backup {src} {what}. Nothing was restored; use another backup.")


def verify(src: str) -> dict:
    """Check a backup completely (manifest, every file, every block); returns its manifest.

    Raises DamagedBackup naming the file and the byte offset of the first block that fails.
    """
    src = os.path.abspath(src)
    if not os.path.isdir(src):
        raise DamagedBackup(f"{src} is not a backup: no such directory")
    mark = read_marker(src)
    if mark is not None:
        raise _damaged(src, f"was never finished (its writer, pid {mark.get('pid', '?')}, stopped on the way)")
    full = os.path.join(src, MANIFEST)
    try:
        with open(full, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise DamagedBackup(f"{src} is not a backup: it has no {MANIFEST} (a live data directory is not a "
                            f"backup; make one with `ocean backup`)") from None
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise _damaged(src, f"is damaged: {MANIFEST} is not readable at byte {getattr(exc, 'pos', '?')} "
                            f"({getattr(exc, 'msg', exc)})") from None
    if not isinstance(doc, dict) or doc.get("kind") != "ocean-backup" or doc.get("check") != _manifest_check(doc):
        raise _damaged(src, f"is damaged: {MANIFEST} fails its checksum")
    if doc.get("format") != FORMAT:
        raise _damaged(src, f"has format {doc.get('format')!r}; this ocean reads format {FORMAT}")
    block = doc["block_bytes"]
    for entry in doc["files"]:
        name = entry["name"]
        if os.sep in name or name.startswith("."):
            raise _damaged(src, f"is damaged: {MANIFEST} lists a file {name!r}")
        path = os.path.join(src, name)
        try:
            size = os.path.getsize(path)
        except OSError:
            raise _damaged(src, f"is missing the file {name}") from None
        with open(path, "rb") as f:
            _check_blocks(src, name, f.read, entry, block, size)
    return doc


def _check_blocks(src: str, name: str, read, entry: dict, block: int, size: int, sink=None) -> None:
    """Read a file block by block through ``read``, checking each CRC (and passing it to ``sink``)."""
    if size != entry["bytes"]:
        at = min(size, entry["bytes"])
        raise _damaged(src, f"is damaged: {name} is {size} bytes, the manifest says {entry['bytes']} "
                            f"(it differs from byte {at} on)")
    for i, want in enumerate(entry["crc32c"]):
        chunk = read(block)
        if _crc32c(chunk) != want:
            raise _damaged(src, f"is damaged: {name} fails its checksum at byte offset {i * block} "
                                f"(in bytes {i * block}..{i * block + len(chunk) - 1})")
        if sink is not None:
            sink(chunk)


def _ocean_files(names) -> list[str]:
    """The names in a data directory that are ocean's data (what a forced restore replaces)."""
    own = {"meta.json", "meta.json.tmp", KEYS_FILE, KEYS_FILE + ".gen", KEYS_FILE + ".lock", LAST, LAST + ".tmp",
           MANIFEST}
    return [n for n in names if n in own or n.startswith(KEYS_FILE + ".tmp") or n.endswith(".restore")
            or (n.startswith("wal-") and n.endswith(".log"))
            or (n.startswith("snapshot-") and (n.endswith(".snap") or n.endswith(".snap.tmp")))]


def restore(src: str, data: str, force: bool = False) -> dict:
    """Verify the backup ``src`` completely, then make ``data`` a copy of it; returns the manifest.

    ``data`` must be empty (or missing) unless ``force``; it is locked as a server
    locks it, so a running server on it is refused. Until the copy is complete the
    directory carries the marker, so a half-restored directory is never opened.
    """
    import fcntl

    doc = verify(src)
    src, data = os.path.abspath(src), os.path.abspath(data)
    if os.path.realpath(src) == os.path.realpath(data):
        raise InvalidBackupDest(f"cannot restore {src} into itself; name another --data directory "
                                f"(a backup opens as is: `ocean serve --data {src}`)")
    if os.path.lexists(data) and not os.path.isdir(data):
        raise InvalidBackupDest(f"the restore target {data} exists and is not a directory")
    try:
        os.makedirs(data, exist_ok=True)
        fd = os.open(os.path.join(data, "ocean.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise InvalidBackupDest(f"cannot use {data} as the restore target: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise DataDirLocked(f"the data directory {data} is in use by a running ocean server or engine; "
                                f"stop it before restoring into it") from None
        present = [n for n in os.listdir(data) if n not in ("ocean.lock", "lost+found")]
        if present and not force:
            raise InvalidBackupDest(f"the restore target {data} is not empty ({len(present)} entries, e.g. "
                                    f"{sorted(present)[0]}); pass --force to replace its ocean data")
        try:
            _write_marker(data, "restore")
            for name in _ocean_files(present):
                os.unlink(os.path.join(data, name))
            for entry in doc["files"]:
                _copy_checked(src, data, entry, doc["block_bytes"])
            fsync_dir(data)
            os.unlink(os.path.join(data, MARKER))
            fsync_dir(data)
        except OSError as exc:
            raise BackupFailed(f"the restore into {data} could not be written ({exc.strerror or exc}); the "
                               f"directory is marked unfinished -- run the restore again with --force") from None
    finally:
        os.close(fd)  # closing the descriptor releases the lock
    return doc


def _copy_checked(src: str, data: str, entry: dict, block: int) -> None:
    """Copy one file of a backup, checking each block again as it is read (it may change after verify)."""
    name = entry["name"]
    tmp = os.path.join(data, name + ".restore")
    with open(os.path.join(src, name), "rb") as f, open(tmp, "wb") as out:
        _check_blocks(src, name, f.read, entry, block, os.fstat(f.fileno()).st_size, out.write)
        out.flush()
        os.fsync(out.fileno())
    if name == KEYS_FILE:
        os.chmod(tmp, 0o600)
    os.replace(tmp, os.path.join(data, name))
