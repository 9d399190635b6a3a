"""The ``ocean`` command: ``serve``, ``exec``, ``sql``, ``key``, ``backup`` and ``restore``.

``serve`` runs gunicorn (gevent worker) on the embedded engine; its flags are
built from ``ocean.settings.SETTINGS``. ``exec`` and ``sql`` talk to a running
server (``--url``, ``--key`` / ``OCEAN_KEY``). ``key`` edits the key file of a
data directory (``--data``) directly -- it works beside a running server,
which sees the change on its next request -- so that the first admin key, or a
lost one, can always be managed by whoever owns the directory.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request

from ._version import __version__
from .settings import BY_NAME, SETTINGS

DEFAULT_URL = "http://127.0.0.1:8080"


# -- serve -------------------------------------------------------------------

def cmd_serve(args) -> int:
    """Put the settings in the environment and become gunicorn (same pid: signals reach it)."""
    from .errors import InvalidSetting
    from .settings import Settings

    given = {s.name: getattr(args, s.name) for s in SETTINGS if getattr(args, s.name) is not None}
    try:
        settings = Settings.load(**given)
    except InvalidSetting as exc:
        print(f"ocean: {exc.message}", file=sys.stderr)
        return 2
    if settings.workers != 1:
        print("ocean: --workers must be 1. The embedded engine lives in the one worker process that owns "
              "the data directory (a second process is refused its lock), and a gevent worker already "
              "serves thousands of connections. Run more servers on more data directories to scale out.",
              file=sys.stderr)
        return 2
    for name, value in given.items():
        os.environ[BY_NAME[name].env] = str(value)
    conf = os.path.join(os.path.dirname(os.path.abspath(__file__)), "web", "gunicorn_conf.py")
    argv = [sys.executable, "-m", "gunicorn", "-c", conf]
    sys.stdout.flush()
    os.execv(sys.executable, argv)
    return 0  # pragma: no cover - execv does not return


# -- exec / sql: HTTP client -------------------------------------------------

def _call(args, path: str, text: str) -> tuple[int, object]:
    """POST ``text`` to the server; (status, decoded JSON)."""
    key = args.key or os.environ.get("OCEAN_KEY")
    headers = {"Content-Type": "text/plain; charset=utf-8"}
    if key:
        headers["X-Ocean-Key"] = key
    req = urllib.request.Request(args.url.rstrip("/") + path, data=text.encode("utf-8"), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=args.timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            return exc.code, json.loads(body)
        except ValueError:
            return exc.code, {"ok": False, "error": body.decode("utf-8", "replace")[:200], "code": f"http_{exc.code}"}
    except (urllib.error.URLError, OSError) as exc:
        raise SystemExit(f"ocean: cannot reach {args.url}: {getattr(exc, 'reason', exc)}") from None


def _error_line(err: dict) -> str:
    where = f"line {err['line']}:{err.get('column')}: " if err.get("line") is not None else ""
    return f"error: {where}{err.get('error')} ({err.get('code')})"


def cmd_exec(args) -> int:
    if args.file:
        with open(args.file, encoding="utf-8") as f:
            text = f.read()
    elif args.script is not None:
        text = args.script
    else:
        text = sys.stdin.read()
    status, out = _call(args, "/exec", text)
    if args.json:
        print(json.dumps(out, indent=2, ensure_ascii=False))
    elif isinstance(out, list):
        for res in out:
            if res.get("ok"):
                data = res.get("data")
                if "columns" in res and isinstance(data, list):
                    print(table(res["columns"], [[row.get(c) for c in res["columns"]] for row in data]))
                else:
                    print(json.dumps(data, indent=2, ensure_ascii=False))
            else:
                print(_error_line(res), file=sys.stderr)
    else:
        print(_error_line(out), file=sys.stderr)
    failed = status >= 400 or (isinstance(out, list) and any(not r.get("ok") for r in out))
    return 1 if failed else 0


def cmd_sql(args) -> int:
    status, out = _call(args, "/sql", args.query)
    if args.json:
        print(json.dumps(out, indent=2, ensure_ascii=False))
    elif status >= 400 or not out.get("ok"):
        print(_error_line(out), file=sys.stderr)
    else:
        cols = out["columns"]
        rows = [[r.get(c) for c in cols] if isinstance(r, dict) else r for r in out["rows"]]
        print(table(cols, rows))
        print(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return 0 if status < 400 else 1


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


# -- key: the data directory's key file ---------------------------------------

def cmd_key(args) -> int:
    from .errors import OceanError
    from .keys import KeyStore

    store = KeyStore(args.data, environ={})
    try:
        if args.key_cmd == "create":
            token, rec = store.create(name=args.name or "", read=args.read, write=args.write, admin=args.admin)
            if args.json:
                print(json.dumps({"token": token, **rec}, indent=2))
            else:
                print(f"key: {token}")
                print(f"  id {rec['id']}  read {', '.join(rec['read']) or '-'}  write {', '.join(rec['write']) or '-'}"
                      f"{'  admin' if rec['admin'] else ''}  (shown once)")
        elif args.key_cmd == "list":
            recs = store.list()
            if args.json:
                print(json.dumps(recs, indent=2))
            else:
                print(table(["id", "name", "read", "write", "admin", "created_at", "revoked_at"],
                            [[r["id"], r.get("name"), ",".join(r["read"]), ",".join(r["write"]), r["admin"],
                              r["created_at"], r.get("revoked_at")] for r in recs]))
        else:
            rec = store.revoke(args.id)
            print(json.dumps(rec, indent=2) if args.json else f"revoked {rec['id']} ({rec.get('name') or 'unnamed'})")
    except OceanError as exc:
        print(f"ocean: {exc.message}", file=sys.stderr)
        return 1
    return 0


# -- backup / restore -------------------------------------------------------------

def cmd_backup(args) -> int:
    """A backup made by the running server (``--url``), or, with ``--data``, of a stopped server's directory."""
    from .errors import DataDirLocked, OceanError

    try:
        if args.data:
            from .engine import Engine

            if not os.path.isfile(os.path.join(args.data, "meta.json")):
                print(f"ocean: {args.data} is not an ocean data directory (it has no meta.json)", file=sys.stderr)
                return 1
            try:
                with Engine(args.data, maintenance=False) as eng:
                    info = eng.backup(os.path.abspath(args.dest) if args.dest else None)
            except DataDirLocked as exc:
                print(f"ocean: {exc.message}. While a server runs, back it up through the server: "
                      f"`ocean backup [DEST] --url URL` (DEST is then a path on the server)", file=sys.stderr)
                return 1
        else:
            import urllib.parse

            key = args.key or os.environ.get("OCEAN_KEY")
            query = "?dest=" + urllib.parse.quote(args.dest, safe="") if args.dest else ""
            req = urllib.request.Request(args.url.rstrip("/") + "/admin/backup" + query, data=b"", method="POST",
                                         headers={"X-Ocean-Key": key} if key else {})
            try:
                with urllib.request.urlopen(req, timeout=args.timeout) as resp:
                    info = json.loads(resp.read())
            except urllib.error.HTTPError as exc:
                body = exc.read()
                try:
                    err = json.loads(body)
                except ValueError:
                    err = {"error": body.decode("utf-8", "replace")[:200], "code": f"http_{exc.code}"}
                print(f"ocean: {err.get('error')} ({err.get('code')})", file=sys.stderr)
                return 1
            except (urllib.error.URLError, OSError) as exc:
                print(f"ocean: cannot reach {args.url}: {getattr(exc, 'reason', exc)}", file=sys.stderr)
                return 1
    except OceanError as exc:
        print(f"ocean: {exc.message}", file=sys.stderr)
        return 1
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
        print(f"ocean: {exc.message}", file=sys.stderr)
        return 1
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
    sub = parser.add_subparsers(dest="cmd", required=True)

    serve = sub.add_parser("serve", help="run the HTTP server (gunicorn + gevent) on a data directory")
    for s in SETTINGS:
        extra = {"choices": s.choices} if s.choices else {}
        serve.add_argument(s.flag, dest=s.name, default=None, metavar=s.type.__name__.upper(),
                           help=f"{s.help} (env {s.env}; default {s.default})", **extra)
    serve.set_defaults(func=cmd_serve)

    ex = sub.add_parser("exec", help="run a Drops script on a server")
    ex.add_argument("script", nargs="?", help="Drops text (or -f FILE, or standard input)")
    ex.add_argument("-f", "--file", help="read the script from FILE")
    _client_flags(ex)
    ex.set_defaults(func=cmd_exec)

    sq = sub.add_parser("sql", help="run a SQL query on a server")
    sq.add_argument("query")
    _client_flags(sq)
    sq.set_defaults(func=cmd_sql)

    key = sub.add_parser("key", help="create, list or revoke API keys of a data directory")
    common = argparse.ArgumentParser(add_help=False)
    data = BY_NAME["data"]
    common.add_argument("--data", default=os.environ.get(data.env, data.default), help=f"{data.help} (env {data.env})")
    common.add_argument("--json", action="store_true", help="print JSON")
    ks = key.add_subparsers(dest="key_cmd", required=True)
    create = ks.add_parser("create", parents=[common], help="make a key; its token is printed once")
    create.add_argument("--read", action="append", default=[], metavar="PREFIX", help="readable prefix (repeat)")
    create.add_argument("--write", action="append", default=[], metavar="PREFIX", help="writable prefix (repeat)")
    create.add_argument("--admin", action="store_true", help="may do anything, system routes included")
    create.add_argument("--name", help="a label for `key list` and `key revoke`")
    ks.add_parser("list", parents=[common], help="list keys (never their tokens)")
    revoke = ks.add_parser("revoke", parents=[common], help="revoke a key by id or name; open streams end within a second")
    revoke.add_argument("id")
    key.set_defaults(func=cmd_key)

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
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
