"""Drops: ocean's command language (SPEC section 2) -- ``run(engine, text)``.

A script is UTF-8 text, one command per line; ``run`` answers one result per
command, in order: ``{"ok": True, "data": ...}`` or ``{"ok": False, "error",
"code", "line", "column"}``. A failing command does not stop the others.
The pieces: ``lexer`` (over the compiled byte loop), ``commands`` (each
command declared once), ``parser``, ``executor``.
"""
from __future__ import annotations

from ..access import Access
from ..errors import ScriptTooLarge
from .executor import execute
from .lexer import lex
from .parser import parse

__all__ = ["run"]


def run(engine, text: str | bytes, access: Access | None = None, settings=None) -> list[dict]:
    """Run a Drops script against ``engine``; one result dict per command.

    Args:
        engine: an ``ocean.Engine``.
        text: the script, ``str`` or UTF-8 ``bytes``.
        access: the caller's scopes, checked per command; default ``Access.server()``.
        settings: limits (``max_script_bytes``, ``list_limit``, ``sql_max_rows``);
            default ``engine.settings``.

    Raises:
        ScriptTooLarge: the script is over ``settings.max_script_bytes`` (nothing runs).
    """
    if settings is None:
        settings = getattr(engine, "settings", None)
        if settings is None:
            from ..settings import Settings
            settings = Settings.load()
    if access is None:
        access = Access.server()
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    if len(data) > settings.max_script_bytes:
        raise ScriptTooLarge(f"the script is {len(data)} bytes; at most {settings.max_script_bytes} are "
                             f"allowed (setting max_script_bytes)")
    results = []
    append = results.append
    for start, end, line, column, packed in lex(data):
        cmd = parse(data, start, end, line, column, packed)
        append(execute(engine, cmd, line, column, access, settings))
    return results
