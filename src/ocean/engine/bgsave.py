"""Snapshots (and backups) written by a forked child, as Redis's BGSAVE: the serving process never encodes them.

The parent forks under the engine's write lock, so the child's copy-on-write image
holds the state at exactly one seq; the child captures and writes it with
``snapshot.write`` (same format, same temp name + fsync + rename) and leaves with
``os._exit``. The parent returns to its work at once and polls the child with a
non-blocking ``waitpid`` (``poll``), so an event loop in the parent keeps turning.

The child touches no socket, runs no event loop (it is forked with ``posix.fork``,
under gevent too, so no hub is re-made in it), does not collect garbage (that would
write to every page of the image), and dies with its parent (``PR_SET_PDEATHSIG``).

PERF: at 1M events the thread that wrote snapshots in-process held the GIL for ~5 s;
``GET /health`` took p50 88 ms, p99 373 ms meanwhile. The fork itself copies the page
tables (a few ms per 100 MB of heap) and is the only pause the loop sees.
"""
from __future__ import annotations

import ctypes
import gc
import json
import os
import posix
import signal

from .. import errors
from . import snapshot

_PR_SET_PDEATHSIG = 1
try:
    _libc = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover - not Linux
    _libc = None


class Child:
    """One child writing in the background: its pid and the pipe it reports on."""

    __slots__ = ("pid", "_report", "_chunks", "status")

    def __init__(self, pid: int, report_fd: int):
        self.pid, self._report = pid, report_fd
        self._chunks: list[bytes] = []
        self.status: int | None = None

    def poll(self) -> bool:
        """True once the child has ended (reaped here); never blocks."""
        if self.status is not None:
            return True
        self._drain()  # a report bigger than the pipe's buffer must not block the child
        try:
            pid, status = posix.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:  # reaped by someone else (a SIGCHLD handler): its report says how it went
            self.status = -1
            return True
        if pid == 0:
            return False
        self.status = status
        return True

    def result(self):
        """What the child's work returned, once it ended; raises what it raised.

        An ``ocean.errors`` error comes back as itself (same class, same message); anything
        else as ``OSError`` (with the child's errno, if it had one).
        """
        report = self._read_report()
        if report.get("ok"):
            return report.get("value")
        if "error" in report:
            cls = getattr(errors, report.get("type") or "", None)
            if isinstance(cls, type) and issubclass(cls, errors.OceanError):
                raise cls(report.get("message", report["error"]))
            raise OSError(report.get("errno") or 0, f"the background writer failed: {report['error']}")
        raise OSError(0, f"the background writer ended without a report (wait status {self.status})")

    def kill(self) -> None:
        """End the child now (its half file is removed by the caller or at the next open)."""
        if self.status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _drain(self) -> None:
        try:
            while self._report >= 0:
                data = os.read(self._report, 65536)
                if not data:
                    break
                self._chunks.append(data)
        except BlockingIOError:
            pass

    def _read_report(self) -> dict:
        try:
            self._drain()
        finally:
            if self._report >= 0:
                os.close(self._report)
                self._report = -1
        try:
            return json.loads(b"".join(self._chunks) or b"{}")
        except ValueError:
            return {}


def fork(path: str, state, seq: int, meta: dict) -> Child:
    """Fork a child that writes the snapshot of ``state`` (as it is now) at ``seq``; its result is the
    file name. Call with the write lock held."""
    return spawn(lambda: snapshot.write(path, snapshot.capture(state, seq, meta)))


def spawn(work) -> Child:
    """Fork a child that runs ``work()`` (its result must be JSON data) and exits; call with the
    write lock held, so the child's image is the state at one seq."""
    read_fd, write_fd = os.pipe()
    parent = os.getpid()
    pid = posix.fork()
    if pid == 0:  # the child: never returns
        os.close(read_fd)
        _run_and_exit(work, write_fd, parent)
    os.close(write_fd)
    os.set_blocking(read_fd, False)
    return Child(pid, read_fd)


def _quiet_signals() -> None:
    """The parent's Python signal handlers (gunicorn's, say) must not run here: a Ctrl-C to the
    process group is the parent's to handle (it ends this child when it closes); others end us."""
    for name, how in (("SIGINT", signal.SIG_IGN), ("SIGQUIT", signal.SIG_IGN), ("SIGTERM", signal.SIG_DFL),
                      ("SIGHUP", signal.SIG_DFL), ("SIGUSR1", signal.SIG_DFL), ("SIGUSR2", signal.SIG_DFL),
                      ("SIGWINCH", signal.SIG_DFL), ("SIGCHLD", signal.SIG_DFL)):
        try:
            signal.signal(getattr(signal, name), how)
        except (ValueError, OSError):  # not the main thread (cannot happen after fork) or no such signal
            pass


def _run_and_exit(work, report_fd: int, parent: int) -> None:
    code = 1
    try:
        gc.disable()
        if _libc is not None:
            _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the line above took effect
            os._exit(1)
        _quiet_signals()
        report = {"ok": True, "value": work()}
        code = 0
    except BaseException as exc:  # noqa: BLE001 - everything is reported, nothing propagates out of a child
        report = {"error": f"{type(exc).__name__}: {exc}", "errno": getattr(exc, "errno", None),
                  "type": type(exc).__name__, "message": getattr(exc, "message", str(exc))}
    try:
        data = memoryview(json.dumps(report, default=str).encode("utf-8"))
        while data:  # the parent drains the pipe as it polls
            data = data[os.write(report_fd, data):]
    finally:
        os._exit(code)
