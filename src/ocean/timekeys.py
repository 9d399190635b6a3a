"""Time keys: the ``{day}``, ``{hour}``, ``{week}`` and ``{month}`` key placeholders, in a time zone.

A key may hold placeholders that the server replaces when it takes the key (at write
time for writes) with the current period in the ``timezone`` setting (an IANA name,
read with stdlib ``zoneinfo``):

==========  ==================  ==============================
placeholder example             what
==========  ==================  ==============================
``{day}``   ``2026-02-10``      the local date
``{hour}``  ``2026-02-10T14``   the local date and hour
``{week}``  ``2026-W07``        the ISO week (weeks start on Monday; ISO week-numbering year)
``{month}`` ``2026-02``         the local year and month
==========  ==================  ==============================

These are the formats of the ``_admin/daily`` and ``_admin/hourly`` keys too, which use
the same zone. NOTE: local hours follow the wall clock: on the day a DST change repeats
an hour, both of its real hours share one ``{hour}`` key; on the day it skips one, that
key never occurs (the day then has 23 hourly keys, or 24 holding 25 hours).
"""
from __future__ import annotations

import functools
import re
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import InvalidKey, InvalidSetting
from .model import check_key

PLACEHOLDERS = ("day", "hour", "week", "month")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
# the longest text a placeholder expands to (``2026-02-10T14``), for checking a key's length up front
_WIDEST = {"day": "0000-00-00", "hour": "0000-00-00T00", "week": "0000-W00", "month": "0000-00"}


@functools.lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    """The ``ZoneInfo`` of an IANA name (cached); InvalidSetting when there is no such zone."""
    try:
        if not isinstance(name, str) or not name or name != name.strip():
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):
        raise InvalidSetting(f"time zone {name!r} is not an IANA time zone name "
                             f"(like UTC, Europe/Paris or America/New_York)") from None


def check_timezone(name: str) -> str:
    """Return ``name`` if it is an IANA time zone name ``zoneinfo`` knows, else raise InvalidSetting."""
    zone(name)
    return name


def period(unit: str, ms: int, tz: str = "UTC") -> str:
    """The text of ``unit`` (day, hour, week, month) at epoch milliseconds ``ms`` in zone ``tz``."""
    dt = datetime.fromtimestamp(ms / 1000, zone(tz))
    if unit == "day":
        return f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}"
    if unit == "hour":
        return f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}"
    if unit == "week":
        iso = dt.isocalendar()
        return f"{iso[0]:04d}-W{iso[1]:02d}"
    if unit == "month":
        return f"{dt.year:04d}-{dt.month:02d}"
    raise ValueError(unit)


def has_placeholder(key) -> bool:
    """Whether ``key`` is text that holds a brace (a placeholder, or a mistake ``expand`` reports)."""
    return type(key) is str and ("{" in key or "}" in key)


def _unknown(key: str) -> InvalidKey:
    return InvalidKey(f"key {key[:60]!r} has an unknown placeholder; a key may use "
                      f"{', '.join('{' + p + '}' for p in PLACEHOLDERS)}")


def check_template(key) -> str:
    """Return ``key`` if it is a valid key once its placeholders are expanded, else raise InvalidKey.

    Lets a parser check ``@{day}`` (and ``@eu-{day}``) before any clock is read.
    """
    if not has_placeholder(key):
        return check_key(key)
    widest = _PLACEHOLDER.sub(lambda m: _WIDEST.get(m.group(1), "{"), key)
    if "{" in widest or "}" in widest:
        raise _unknown(key)
    check_key(widest)
    return key


def expand(key: str, ms: int, tz: str = "UTC") -> str:
    """``key`` with each placeholder replaced by its period at ``ms`` in ``tz`` (InvalidKey if unknown).

    The result is checked as a key (``model.check_key``).
    """
    if not has_placeholder(key):
        return key
    texts: dict = {}

    def sub(m):
        unit = m.group(1)
        if unit not in _WIDEST:
            raise _unknown(key)
        if unit not in texts:
            texts[unit] = period(unit, ms, tz)
        return texts[unit]

    out = _PLACEHOLDER.sub(sub, key)
    if "{" in out or "}" in out:
        raise _unknown(key)
    return check_key(out)
