"""The ``ocean`` command: ``serve``, ``exec``, ``sql``, ``key``, ``backup`` and ``restore``.

``serve`` runs gunicorn (gevent worker) on the embedded engine; its flags are
built from ``ocean.settings.SETTINGS``. ``exec`` and ``sql`` talk to a running
server (``--url``, ``--key`` / ``OCEAN_KEY``). ``key`` edits the key file of a
data directory (``--data``) directly -- it works beside a running server,
which sees the change on its next request -- so that the first admin key, or a
lost one, can always be managed by whoever owns the directory.

No traceback reaches a user: every refusal is one line on standard error that
says what to do, and the exit code follows convention -- 0 done, 1 failed (the
server said no, a file is missing, the port or the directory is taken), 2 a
usage error (a bad flag or value), 130 after Ctrl-C, 141 when the reader of
standard output went away (``ocean key list | head``), as for any Unix tool.
"""
from __future__ import annotations

import argparse
import errno
import http.client
import json
import os
import socket
import sys
import urllib.error
import urllib.parse
import urllib.request

from ._version import __version__
from .settings import BY_NAME, SETTINGS

DEFAULT_URL = "http://127.0.0.1:8080"
EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_PIPE = 1, 2, 130, 141
DATA_DIR_FILES = ("meta.json", "ocean.lock", "keys.json")  # any one: a directory ocean made


class Refusal(Exception):
    """One line for the user (``ocean: <message>``) and the exit code to leave with."""

    def __init__(self, message: str, status: int = EXIT_FAILURE):
        super().__init__(message)
        self.status = status


# -- serve -------------------------------------------------------------------

def cmd_serve(args) -> int:
    """Check everything a user can get wrong, then become gunicorn (same pid: signals reach it).

    The order matters: flags, then the port, then the data directory, then its
    lock -- so a busy port or a bad flag leaves nothing behind (no directory, no
    admin key), and a second server on a directory never says ``serving``.
    """
    from .errors import InvalidSetting
    from .settings import Settings

    given = {s.name: getattr(args, s.name) for s in SETTINGS if getattr(args, s.name) is not None}
    try:
        settings = Settings.load(**given)
    except InvalidSetting as exc:
        raise Refusal(exc.message, EXIT_USAGE) from None
    if settings.workers != 1 and not settings.store:
        raise Refusal("--workers must be 1. The embedded engine lives in the one worker process that owns "
                      "the data directory (a second process is refused its lock), and a gevent worker already "
                      "serves thousands of connections. To scale out, keep the data in Redis: "
                      "--store redis://host:port allows --workers N (docs/scale-out.md).",
                      EXIT_USAGE)
    check_host(settings.host)
    if settings.port == 0:  # the declaration bounds it above; 0 would be a random port
        raise Refusal(f"--port must be 1 to 65535, not {settings.port}", EXIT_USAGE)
    check_port_free(settings.host, settings.port)
    if settings.workers == 0:
        raise Refusal("--workers must be at least 1", EXIT_USAGE)
    if settings.store:
        check_store(settings)
    else:
        data = check_data_dir(settings.data)
        check_unlocked(data)
    for name, value in given.items():
        os.environ[BY_NAME[name].env] = str(value)
    conf = os.path.join(os.path.dirname(os.path.abspath(__file__)), "web", "gunicorn_conf.py")
    argv = [sys.executable, "-m", "gunicorn", "-c", conf]
    sys.stdout.flush()
    os.execv(sys.executable, argv)
    return 0  # pragma: no cover - execv does not return


def check_store(settings) -> None:
    """Redis answers and holds compatible functions (loading them if needed), or one line says why."""
    from .errors import OceanError
    try:
        from .redisstore import RedisEngine
        with RedisEngine(settings.store, settings=settings, retries=0) as engine:
            plan = engine.durability  # what --fsync gets from this Redis (redisstore/durability.py)
    except ImportError:
        raise Refusal("--store redis://... needs redis-py: pip install 'redis[hiredis]'") from None
    except OceanError as exc:
        raise Refusal(f"cannot use the store {settings.store}: {exc.message}") from None
    if plan["refusal"]:
        raise Refusal(f"cannot use the store {settings.store}: {plan['refusal']}")
    for warning in plan["warnings"]:
        print(f"ocean: warning: {warning}", file=sys.stderr)


def check_host(host: str) -> None:
    """Refuse a host that carries a port or a scheme (``127.0.0.1:8085``, ``http://...``): usage error.

    An IPv6 literal (``::1``) is a host; ``[::1]:8085`` and ``name:8085`` are a host and a port,
    and the message says how to give them.
    """
    import ipaddress

    bare = host
    if "://" in bare:
        bare = bare.split("://", 1)[1].rstrip("/")
    name, port = bare, None
    if bare.startswith("[") and "]" in bare:
        name, rest = bare[1:].split("]", 1)
        port = rest[1:] if rest.startswith(":") else None
    elif bare.count(":") == 1:
        name, port = bare.split(":")
    elif ":" in bare:
        try:
            ipaddress.IPv6Address(bare)
        except ValueError:
            raise Refusal(f"--host {host!r} is not a host name or address", EXIT_USAGE) from None
    if name == host:
        return
    hint = f"--host {name} --port {port}" if port else f"--host {name}"
    raise Refusal(f"--host takes a host name or address only, not {host!r}: use {hint}", EXIT_USAGE)


def check_port_free(host: str, port: int) -> None:
    """Bind ``host:port`` as gunicorn will (``SO_REUSEADDR``) and let it go; a refusal names the fix."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except socket.gaierror:
            raise Refusal(f"cannot listen on {host}: no such host; give --host an address of this machine "
                          f"(127.0.0.1 for this machine only, 0.0.0.0 for every interface)") from None
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise Refusal(f"port {port} on {host} is already in use (another server?): stop it, "
                              f"or choose another --port") from None
            if exc.errno == errno.EACCES:
                raise Refusal(f"may not listen on port {port} (ports below 1024 need root): "
                              f"choose another --port, such as 8080") from None
            if exc.errno == errno.EADDRNOTAVAIL:
                raise Refusal(f"{host} is not an address of this machine: give --host 127.0.0.1 "
                              f"(this machine only) or 0.0.0.0 (every interface)") from None
            raise Refusal(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def check_data_dir(path: str) -> str:
    """Make the data directory if needed and prove it writable; its absolute path."""
    full = os.path.abspath(path)
    try:
        os.makedirs(full, exist_ok=True)
        probe = os.path.join(full, f".ocean-probe-{os.getpid()}")
        with open(probe, "wb"):
            pass
        os.unlink(probe)
    except OSError as exc:
        what = "is not a directory" if os.path.exists(full) and not os.path.isdir(full) else \
            f"cannot be used: {exc.strerror}"
        raise Refusal(f"the data directory {full} {what}; give --data (or OCEAN_DATA) a directory "
                      f"you may write") from None
    return full


def check_unlocked(data: str) -> None:
    """Refuse a data directory whose ``ocean.lock`` another server holds (the engine takes it later)."""
    import fcntl

    try:
        fd = os.open(os.path.join(data, "ocean.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise Refusal(f"cannot open {data}/ocean.lock: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        owner = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        raise Refusal(f"the data directory {data} is in use by another ocean server or engine"
                      f"{f' (its lock is held by pid {owner})' if owner.isdigit() else ''}: stop it, or give "
                      f"this one another --data") from None
    finally:
        os.close(fd)  # releases the lock: the worker's engine takes it for good


# -- exec / sql: HTTP client -------------------------------------------------

def _call(args, path: str, text: str) -> tuple[int, bytes, object]:
    """POST ``text`` to the server: (status, the body as sent, the decoded JSON or None).

    NOTE: the CLI is a user of ``ocean.Client`` (its raw ``request``), so the command line
    and the library cannot drift apart on keys, URLs, keep-alive or errors.
    """
    from .client import Client
    from .errors import ClientError

    url = args.url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise Refusal(f"--url needs a scheme: --url http://{url}", EXIT_USAGE)
    try:
        with Client(url, key=args.key or None, timeout=args.timeout) as client:
            reply = client.request("POST", path, text)
    except ValueError as exc:  # not a URL (a bad port): Client refuses it when made
        raise Refusal(f"--url {args.url!r} is not a URL ({exc}): for example --url {DEFAULT_URL}", EXIT_USAGE) \
            from None
    except ClientError as exc:  # Unreachable, ClientTimeout
        raise Refusal(f"{exc.message}. Is `ocean serve` running "
                      f"there? Give its address with --url or OCEAN_URL") from None
    try:
        doc = json.loads(reply.body)
    except ValueError:
        doc = None
    return reply.status, reply.body, doc


def _explain(status: int, doc, args) -> str:
    """One line for a failed call: the server's error, and for a key problem what a CLI user does."""
    if not isinstance(doc, dict):
        return (f"ocean: {args.url} answered {status} with something that is not ocean's JSON; "
                f"is --url (or OCEAN_URL) the address of an ocean server?")
    if status == 401:
        if not (args.key or os.environ.get("OCEAN_KEY")):
            return ("ocean: no key: set OCEAN_KEY=<token> or pass --key <token> (the admin key `ocean serve` "
                    "printed on its first start, or one made with `ocean key create`)")
        return (f"ocean: the server at {args.url} does not know this key, or it was revoked: check --key / "
                f"OCEAN_KEY, or make one with `ocean key create --data <the server's data directory>`")
    return _error_line(doc)


def _error_line(err: dict) -> str:
    where = f"line {err['line']}:{err.get('column')}: " if err.get("line") is not None else ""
    line = f"error: {where}{err.get('error')} ({err.get('code')})"
    if err.get("code") == "forbidden":
        line += "; use a key whose scopes cover it (`ocean key create --read/--write PREFIX`)"
    return line


def _print_raw(body: bytes) -> None:
    """The server's answer exactly as sent (plus a line end when it has none)."""
    out = sys.stdout.buffer
    out.write(body)
    if not body.endswith(b"\n"):
        out.write(b"\n")


def _read_stdin(what: str) -> str:
    if sys.stdin is None:
        raise Refusal(f"no standard input to read the {what} from")
    if sys.stdin.isatty():
        print(f"ocean: reading the {what} from standard input (end it with Ctrl-D)", file=sys.stderr)
    return sys.stdin.read()


def _read_file(path: str) -> str:
    if path == "-":
        return _read_stdin("script")
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as exc:
        raise Refusal(f"cannot read {path}: {exc.strerror}; give -f the path of a Drops script") from None
    except UnicodeDecodeError:
        raise Refusal(f"{path} is not UTF-8 text; a Drops script is UTF-8") from None


def cmd_exec(args) -> int:
    if args.file and args.script is not None:
        raise Refusal("give the script as an argument or with -f FILE, not both", EXIT_USAGE)
    if args.file:
        text = _read_file(args.file)
    elif args.script is not None and args.script != "-":
        text = args.script
    else:
        text = _read_stdin("script")
    status, body, out = _call(args, "/exec", text)
    if args.json:
        _print_raw(body)
    if not isinstance(out, list):
        print(_explain(status, out, args), file=sys.stderr)
        return EXIT_FAILURE
    for res in out:
        if not isinstance(res, dict) or not res.get("ok"):
            print(_error_line(res if isinstance(res, dict) else {"error": res}), file=sys.stderr)
        elif not args.json:
            data = res.get("data")
            if "columns" in res and isinstance(data, list):
                print(table(res["columns"], [[row.get(c) for c in res["columns"]] for row in data]))
            else:
                print(json.dumps(data, indent=2, ensure_ascii=False))
    failed = status >= 400 or any(not (isinstance(r, dict) and r.get("ok")) for r in out)
    return EXIT_FAILURE if failed else 0


def cmd_sql(args) -> int:
    query = _read_stdin("query") if args.query == "-" else args.query
    status, body, out = _call(args, "/sql", query)
    if args.json:
        _print_raw(body)
    if status >= 400 or not isinstance(out, dict) or not out.get("ok"):
        print(_explain(status, out, args), file=sys.stderr)
        return EXIT_FAILURE
    if not args.json:
        cols = out["columns"]
        rows = [[r.get(c) for c in cols] if isinstance(r, dict) else r for r in out["rows"]]
        print(table(cols, rows))
        print(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return 0


def _cell(value, width: int = 60) -> str:
    text = "NULL" if value is None else value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


def table(columns, rows) -> str:
    """A readable text table (cells cut at 60 characters)."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(str(c))] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    line = "-+-".join("-" * w for w in widths)
    out = [" | ".join(str(c).ljust(w) for c, w in zip(columns, widths)), line]
    out += [" | ".join(v.ljust(w) for v, w in zip(r, widths)) for r in cells]
    return "\n".join(out)


# -- export / import: a route's data out, and back in ------------------------------

def _transfer(args, path: str, data=None, headers=None):
    """Open ``path`` on the server (GET, or POST ``data``): the response to read, or
    ``(status, decoded JSON or None)`` when the server refused."""
    key = args.key or os.environ.get("OCEAN_KEY")
    headers = dict(headers or {}, **({"X-Ocean-Key": key} if key else {}))
    url = args.url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise Refusal(f"--url needs a scheme: --url http://{url}", EXIT_USAGE)
    try:
        urllib.parse.urlsplit(url).port  # noqa: B018 - raises ValueError for a port out of range
        req = urllib.request.Request(url + path, data=data, headers=headers, method="GET" if data is None else "POST")
        try:
            return urllib.request.urlopen(req, timeout=args.timeout)
        except urllib.error.HTTPError as exc:
            try:
                return exc.code, json.loads(exc.read())
            except ValueError:
                return exc.code, None
    except ValueError as exc:
        raise Refusal(f"--url {args.url!r} is not a URL ({exc}): for example --url {DEFAULT_URL}", EXIT_USAGE) \
            from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise Refusal(f"cannot reach {args.url}: {getattr(exc, 'reason', exc)}. Is `ocean serve` running "
                      f"there? Give its address with --url or OCEAN_URL") from None


def cmd_export(args) -> int:
    """Stream ``GET /export/ROUTE`` (NDJSON or CSV) to ``-o FILE`` or standard output."""
    query = urllib.parse.urlencode({"format": args.format, **({"since": args.since} if args.since else {})})
    resp = _transfer(args, f"/export/{urllib.parse.quote(args.route, safe='/*')}?{query}")
    if isinstance(resp, tuple):
        print(_explain(*resp, args), file=sys.stderr)
        return EXIT_FAILURE
    try:
        out = open(args.output, "wb") if args.output else sys.stdout.buffer
    except OSError as exc:
        resp.close()
        raise Refusal(f"cannot write {args.output}: {exc.strerror}") from None
    try:
        with resp:
            for chunk in iter(lambda: resp.read(1 << 16), b""):
                out.write(chunk)
    except (OSError, http.client.HTTPException) as exc:  # the server stopped mid-stream
        print(f"ocean: the export ended early ({type(exc).__name__}); the output is incomplete", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        if args.output:
            out.close()
    return 0


def cmd_import(args) -> int:
    """Send an NDJSON file (``-``: standard input) to ``POST /import``; report counts and bad lines."""
    headers = {"Content-Type": "application/x-ndjson"}
    if args.file == "-":
        src, data = None, iter(lambda: sys.stdin.buffer.read(1 << 16), b"")  # sent chunked
    else:
        try:
            src = data = open(args.file, "rb")
        except OSError as exc:
            raise Refusal(f"cannot read {args.file}: {exc.strerror}") from None
        headers["Content-Length"] = str(os.fstat(src.fileno()).st_size)
    try:
        resp = _transfer(args, "/import", data, headers)
        if isinstance(resp, tuple):
            status, out = resp
        else:
            with resp:
                status, out = resp.status, json.loads(resp.read())
    finally:
        if src is not None:
            src.close()
    if args.json:
        print(json.dumps(out, indent=2, ensure_ascii=False))
    if status >= 400 or not isinstance(out, dict):
        print(_explain(status, out, args), file=sys.stderr)
        return EXIT_FAILURE
    if not args.json:
        for err in out["errors"]:
            print(f"line {err['line']}: {err['error']} ({err['code']})", file=sys.stderr)
        if out["failed"] > len(out["errors"]):
            print(f"... and {out['failed'] - len(out['errors'])} more failed lines", file=sys.stderr)
        print(f"imported {out['imported']} of {out['lines']} lines ({out['failed']} failed, {out['expired']} expired)")
    return EXIT_FAILURE if out["failed"] else 0


# -- key: the data directory's key file ---------------------------------------

def key_data_dir(path: str, init: bool | None = None) -> str:
    """The absolute data directory ``ocean key`` may edit: one ocean made, or any with ``--init``.

    ``init`` is None for the commands that have no ``--init`` (list, revoke): their
    refusal does not suggest it.

    NOTE: without this check a typo in ``--data`` (or running in the wrong
    directory) silently made a fresh ``./ocean-data/keys.json`` whose keys the
    running server never sees (401 for every one of them).
    """
    full = os.path.abspath(path)
    if os.path.isdir(full) and any(os.path.exists(os.path.join(full, n)) for n in DATA_DIR_FILES):
        return full
    if init and not os.path.isfile(full):
        return full
    if not os.path.exists(full):
        why = "does not exist"
    elif not os.path.isdir(full):
        why = "is not a directory"
    else:
        why = "is not an ocean data directory (it has no meta.json, ocean.lock or keys.json)"
    hint = ", or add --init to start a new one there" if init is not None and not os.path.isfile(full) else ""
    raise Refusal(f"{full} {why}: give --data (or OCEAN_DATA) the directory `ocean serve` uses{hint}")


def _scopes(rec: dict) -> str:
    if rec.get("admin"):
        return "read *  write *  admin"
    return f"read {', '.join(rec['read']) or '-'}  write {', '.join(rec['write']) or '-'}"


def _redis_keys(url: str):
    """The key store of a Redis-mode server (``--store``): the keys every node reads."""
    try:
        from .redisstore import RedisEngine
        from .redisstore.keystore import RedisKeyStore
    except ImportError:
        raise Refusal("--store redis://... needs redis-py: pip install 'redis[hiredis]'") from None
    return RedisKeyStore(RedisEngine(url, retries=0), environ={})


def cmd_key(args) -> int:
    from .errors import OceanError, ValidationError
    from .keys import FILENAME, KeyStore
    from .model import check_prefix

    if args.key_cmd == "create":
        if not (args.read or args.write or args.admin):
            raise Refusal("a key needs at least one scope: --read PREFIX, --write PREFIX or --admin", EXIT_USAGE)
        try:
            for prefix in args.read + args.write:
                check_prefix(prefix)
        except ValidationError as exc:
            raise Refusal(f"{exc.message}; a scope is a route (analytics/daily), a subtree (analytics/*) or *",
                          EXIT_USAGE) from None
    if args.store:
        data = args.store
        print(f"ocean: keys in {args.store}", file=sys.stderr)
    else:
        data = key_data_dir(args.data, getattr(args, "init", None))
        print(f"ocean: key file {os.path.join(data, FILENAME)}", file=sys.stderr)
    try:
        store = _redis_keys(args.store) if args.store else KeyStore(data, environ={})
        if args.key_cmd == "create":
            namesakes = [r["id"] for r in store.list() if args.name and r.get("name") == args.name
                         and not r.get("revoked_at")]
            token, rec = store.create(name=args.name or "", read=args.read, write=args.write, admin=args.admin)
            if args.json:
                print(json.dumps({"token": token, **rec}, indent=2))
            else:
                print(f"key: {token}")
                print(f"  id {rec['id']}  {_scopes(rec)}  (shown once)")
            if namesakes:
                print(f"ocean: note: {len(namesakes) + 1} live keys are now named {args.name!r} "
                      f"({', '.join(namesakes + [rec['id']])}); revoke one of them by its id", file=sys.stderr)
        elif args.key_cmd == "list":
            recs = store.list()
            if args.json:
                print(json.dumps(recs, indent=2))
            else:
                print(table(["id", "name", "read", "write", "admin", "created_at", "revoked_at"],
                            [[r["id"], r.get("name"), "*" if r["admin"] else ",".join(r["read"]),
                              "*" if r["admin"] else ",".join(r["write"]), r["admin"],
                              r["created_at"], r.get("revoked_at")] for r in recs]))
        else:
            rec = store.revoke(args.id)
            print(json.dumps(rec, indent=2) if args.json else f"revoked {rec['id']} ({rec.get('name') or 'unnamed'})")
    except OceanError as exc:
        raise Refusal(exc.message) from None
    except BrokenPipeError:
        raise  # standard output, not the key file: main() ends quietly
    except OSError as exc:
        raise Refusal(f"cannot use the key file in {data}: {exc.strerror}; give --data (or OCEAN_DATA) a "
                      f"directory you may write, as the user that owns it") from None
    return 0


# -- backup / restore -------------------------------------------------------------

def cmd_backup(args) -> int:
    """A backup made by the running server (``--url``), or, with ``--data``, of a stopped server's directory."""
    from .errors import DataDirLocked, OceanError

    if args.data:
        from .engine import Engine

        if not os.path.isfile(os.path.join(args.data, "meta.json")):
            raise Refusal(f"{args.data} is not an ocean data directory (it has no meta.json)")
        try:
            with Engine(args.data, maintenance=False) as eng:
                info = eng.backup(os.path.abspath(args.dest) if args.dest else None)
        except DataDirLocked as exc:
            raise Refusal(f"{exc.message}. While a server runs, back it up through the server: "
                          f"`ocean backup [DEST] --url URL` (DEST is then a path on the server)") from None
        except OceanError as exc:
            raise Refusal(exc.message) from None
    else:
        query = "?dest=" + urllib.parse.quote(args.dest, safe="") if args.dest else ""
        status, _, info = _call(args, "/admin/backup" + query, "")
        if status >= 400 or not isinstance(info, dict):
            print(_explain(status, info, args), file=sys.stderr)
            return EXIT_FAILURE
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(f"backup: {info['path']}  (seq {info['seq']}, {info['bytes']} bytes, {info['seconds']} s, "
              f"writes paused {info['pause_ms']} ms)")
    return 0


def cmd_restore(args) -> int:
    """Check every checksum of a backup, then make ``--data`` a copy of it."""
    from .engine.backup import restore
    from .errors import OceanError

    try:
        doc = restore(args.src, args.data, force=args.force)
    except OceanError as exc:
        raise Refusal(exc.message) from None
    if args.json:
        print(json.dumps({k: v for k, v in doc.items() if k != "files"} | {"data": os.path.abspath(args.data)}, indent=2))
    else:
        print(f"restored {os.path.abspath(args.src)} (seq {doc['seq']}, made {doc['created_at']}, {doc['bytes']} bytes, "
              f"every checksum good) into {os.path.abspath(args.data)}; start it with: ocean serve --data {args.data}")
    return 0


# -- parser --------------------------------------------------------------------

def _client_flags(p) -> None:
    p.add_argument("--url", default=os.environ.get("OCEAN_URL", DEFAULT_URL), help="server URL (env OCEAN_URL)")
    p.add_argument("--key", default=None, help="API key (env OCEAN_KEY)")
    p.add_argument("--json", action="store_true", help="print the server's JSON answer as is")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the answer")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ocean", description="ocean: a real-time data engine for analytics.")
    parser.add_argument("--version", action="version", version=f"ocean {__version__}")
    sub = parser.add_subparsers(dest="cmd", metavar="COMMAND", title="commands")

    serve = sub.add_parser("serve", help="run the HTTP server (gunicorn, ocean's gevent worker) on a data directory")
    for s in SETTINGS:
        extra = {"choices": s.choices} if s.choices else {}
        serve.add_argument(s.flag, dest=s.name, default=None, metavar=s.type.__name__.upper(),
                           help=f"{s.help} (env {s.env}; default {s.default})", **extra)
    serve.set_defaults(func=cmd_serve)

    ex = sub.add_parser("exec", help="run a Drops script on a server")
    ex.add_argument("script", nargs="?", help="Drops text; - (or nothing) reads standard input")
    ex.add_argument("-f", "--file", help="read the script from FILE (- for standard input)")
    _client_flags(ex)
    ex.set_defaults(func=cmd_exec)

    sq = sub.add_parser("sql", help="run a SQL query on a server")
    sq.add_argument("query", help="the query; - reads standard input")
    _client_flags(sq)
    sq.set_defaults(func=cmd_sql)

    exp = sub.add_parser("export", help="stream every entity and event of a route (or prefix/*) from a server")
    exp.add_argument("route", help="a route, prefix/* or *")
    exp.add_argument("--format", choices=("ndjson", "csv"), default="ndjson", help="ndjson (default; what import takes) or csv")
    exp.add_argument("--since", help="a seq (events after it) or an ISO-8601 time (written at or after it)")
    exp.add_argument("-o", "--output", help="write to FILE (default: standard output)")
    _client_flags(exp)
    exp.set_defaults(func=cmd_export)

    imp = sub.add_parser("import", help="write an NDJSON export (or drops, one a line) to a server")
    imp.add_argument("file", help="an NDJSON file, or - for standard input")
    _client_flags(imp)
    imp.set_defaults(func=cmd_import)

    key = sub.add_parser("key", help="create, list or revoke API keys of a data directory")
    common = argparse.ArgumentParser(add_help=False)
    data = BY_NAME["data"]
    common.add_argument("--data", default=os.environ.get(data.env, data.default),
                        help=f"the data directory `ocean serve` uses (env {data.env}; default {data.default})")
    store = BY_NAME["store"]
    common.add_argument("--store", default=os.environ.get(store.env, store.default),
                        help=f"the Redis store `ocean serve --store` uses, redis://host:port (env {store.env}); "
                             f"the keys live there instead of in --data")
    common.add_argument("--json", action="store_true", help="print JSON")
    ks = key.add_subparsers(dest="key_cmd", metavar="KEYCOMMAND", title="key commands")
    create = ks.add_parser("create", parents=[common], help="make a key; its token is printed once")
    create.add_argument("--read", action="append", default=[], metavar="PREFIX", help="readable prefix (repeat)")
    create.add_argument("--write", action="append", default=[], metavar="PREFIX", help="writable prefix (repeat)")
    create.add_argument("--admin", action="store_true", help="may do anything, system routes included")
    create.add_argument("--name", help="a label for `key list` and `key revoke`")
    create.add_argument("--init", action="store_true",
                        help="the data directory is new: create it (otherwise one `ocean serve` made is required)")
    ks.add_parser("list", parents=[common], help="list keys (never their tokens)")
    revoke = ks.add_parser("revoke", parents=[common], help="revoke a key by id or name; open streams end within a second")
    revoke.add_argument("id", help="the key's id, or its name when no other live key has it")
    key.set_defaults(func=cmd_key, help_of=key)

    bk = sub.add_parser("backup", help="a consistent backup of a running server (or, with --data, a stopped one)")
    bk.add_argument("dest", nargs="?", help="a new directory (default: a new one in the backup_dir setting's "
                                             "directory; through a server, a path on the server)")
    bk.add_argument("--data", default=None, help="back up this data directory itself (no server may hold it)")
    _client_flags(bk)
    bk.set_defaults(func=cmd_backup, timeout=3600.0)

    rs = sub.add_parser("restore", help="check a backup's every checksum, then copy it into a data directory")
    rs.add_argument("src", help="a backup directory (made by `ocean backup`)")
    rs.add_argument("--data", required=True, help="the data directory to fill (stopped; empty unless --force)")
    rs.add_argument("--force", action="store_true", help="replace the ocean data of a non-empty --data")
    rs.add_argument("--json", action="store_true", help="print JSON")
    rs.set_defaults(func=cmd_restore)
    return parser


def main(argv=None) -> int:
    """Run one command; every way out is an exit code and at most a line or two on standard error."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.cmd is None or (args.cmd == "key" and args.key_cmd is None):
        # What a user who typed the bare command wants: the commands, not "arguments are required".
        (parser if args.cmd is None else args.help_of).print_help(sys.stderr)
        return EXIT_USAGE
    try:
        status = args.func(args)
        sys.stdout.flush()  # here, not at interpreter exit, where a closed pipe cannot be handled
        return status
    except Refusal as exc:
        print(f"ocean: {exc}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``| head``): say nothing, and let no later flush fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_PIPE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
