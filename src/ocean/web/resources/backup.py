"""``POST /admin/backup`` (make a backup now) and ``GET /admin/backup`` (the last one): admin keys only."""
from __future__ import annotations

from ...errors import BadRequest, Forbidden
from .. import auth
from ..body import check_type, is_json, parse_json, read_text


def _admin(req, svc) -> None:
    if not auth.require(req, svc.keys).admin:
        raise Forbidden("backups need an admin key")


class Backup:
    """Backups of the server's data directory, written by the engine (see ``Engine.backup``)."""

    def __init__(self, svc):
        self.svc = svc

    def on_get(self, req, resp):
        """``{ok, last_backup, backup_dir}``: the last backup (or null) and where new ones go."""
        svc = self.svc
        _admin(req, svc)
        resp.media = {"ok": True, "last_backup": svc.engine.last_backup, "backup_dir": svc.engine.backup_dir}

    def on_post(self, req, resp):
        """Make a backup; the destination is ``?dest=`` or ``{"dest": ...}`` (default: a new one in backup_dir).

        The answer comes when the backup is complete: ``{ok, path, seq, bytes, created_at, seconds, pause_ms}``.
        """
        svc = self.svc
        _admin(req, svc)
        dest = req.get_param("dest")
        if dest is None:
            check_type(req)
            text = read_text(req, 64 << 10)
            if text.strip():
                if not is_json(req):
                    raise BadRequest('send the destination as ?dest= or JSON {"dest": "..."}')
                doc = parse_json(text)
                if not isinstance(doc, dict) or not set(doc) <= {"dest"}:
                    raise BadRequest('a JSON body here is an object {"dest": "<directory>"} (dest optional)')
                dest = doc.get("dest")
                if dest is not None and not isinstance(dest, str):
                    raise BadRequest('"dest" is a directory path (a string)')
        resp.media = {"ok": True, **svc.engine.backup(dest or None)}
