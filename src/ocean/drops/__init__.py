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
from .parser import Parsed, parse

__all__ = ["run"]

# PERF: whole scripts are cached by their text (str or bytes), so a repeated request
# (``incr x @k .f``) skips encoding, lexing and the per-command cache: only scripts
# whose every command parsed are kept (failing scripts are read afresh each time:
# they are rare, and a failure's position is relative to where it is read).
_SCRIPT_CACHE_ENTRIES = 1024
_SCRIPT_CACHE_MAX_CHARS = 1024
_scripts: dict = {}  # text -> (its UTF-8 size, ((line, column, Parsed), ...))


def _compile(data: bytes) -> tuple:
    """Each command of ``data`` with its position: ((line, column, Parsed or Failed), ...)."""
    return tuple((line, column, parse(data, start, end, line, column, packed))
                 for start, end, line, column, packed in lex(data))


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
    cacheable = type(text) is str or type(text) is bytes
    hit = _scripts.get(text) if cacheable else None
    if hit is None:
        data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
        size, commands = len(data), None
    else:
        size, commands = hit
    if size > settings.max_script_bytes:
        raise ScriptTooLarge(f"the script is {size} bytes; at most {settings.max_script_bytes} are "
                             f"allowed (setting max_script_bytes)")
    if commands is None:
        commands = _compile(data)
        if cacheable and len(text) <= _SCRIPT_CACHE_MAX_CHARS and all(type(c[2]) is Parsed for c in commands):
            if len(_scripts) >= _SCRIPT_CACHE_ENTRIES:
                _scripts.clear()
            _scripts[text] = (size, commands)
    return [execute(engine, cmd, line, column, access, settings) for line, column, cmd in commands]
