"""Calendar arithmetic over epoch-millisecond vectors: time zones, intervals and months.

SQL's session time zone is UTC; a function given an IANA zone (``date_trunc('day', ts,
'Europe/Paris')``) works on that zone's wall clock and answers UTC instants. The rules are
PostgreSQL's:

- Truncating to a day or longer starts at local midnight, which is then converted back
  with the zone's offset at that moment (so a DST day is 23 or 25 hours long).
  Truncating to an hour or less keeps the instant's own offset (an hour repeated by a
  change back is two buckets, never one bucket that starts after half its rows).
- A local time that a change skips (spring forward) is read with the offset before the
  change; one that a change repeats (fall back) with the offset after it.
- ``interval`` arithmetic adds months first (the day of month is clamped: January 31 plus
  one month is February 28), then days and time. In UTC a day is 24 hours.

PERF: offsets are looked up once per UTC day the data spans (two ``zoneinfo`` calls, plus a
binary search on a day that changes), not per row.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta

import numpy as np

from ..errors import InvalidSetting, SqlError
from ..timekeys import zone

DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS
_EPOCH = datetime(1970, 1, 1)
_RANGE_TABLE = 50_000  # days: below this span, offsets come from a table indexed by day (no sort)
# zone rules are read between years 2 and 9998 (``datetime``'s range with a margin); outside,
# the offset at the nearer end holds
_LOW_MS, _HIGH_MS = -62_104_060_800_000, 253_370_764_800_000
_INTERVAL_MOST_MS = 10_000 * 366 * DAY_MS  # intervals up to 10,000 years: no int64 overflow


def check_zone(name) -> str:
    """Return ``name`` if it is an IANA zone, else raise SqlError (a constant text argument)."""
    if not isinstance(name, str):
        raise SqlError(f"a time zone is an IANA name in quotes, like 'Europe/Paris', got {name!r}")
    try:
        zone(name)
    except InvalidSetting:
        raise SqlError(f"unknown time zone {name!r}; use an IANA name like 'UTC' or 'Europe/Paris'") from None
    return name


def _offset_ms(z, t_ms: int) -> int:
    t_ms = min(max(t_ms, _LOW_MS), _HIGH_MS)
    return int(datetime.fromtimestamp(t_ms // 1000, z).utcoffset() / timedelta(milliseconds=1))


def _day_table(days: np.ndarray, z) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each UTC day number: (offset at its start, offset at its end, the instant it changes)."""
    n = len(days)
    start, end, switch = np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.int64)
    prev = None
    for i, d in enumerate(days.tolist()):
        t0, t1 = d * DAY_MS, (d + 1) * DAY_MS
        o0 = prev[1] if prev is not None and prev[0] == t0 else _offset_ms(z, t0)
        o1 = _offset_ms(z, t1)
        prev = (t1, o1)
        start[i], end[i], switch[i] = o0, o1, t1
        if o0 != o1:  # a change this day: find its minute (offsets change on whole minutes)
            lo, hi = t0 // 60_000, t1 // 60_000
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if _offset_ms(z, mid * 60_000) == o0:
                    lo = mid
                else:
                    hi = mid
            switch[i] = hi * 60_000
    return start, end, switch


def offsets(ms: np.ndarray, tz: str) -> np.ndarray:
    """The zone's UTC offset (ms) at each instant of ``ms`` (int64 epoch milliseconds)."""
    ms = np.asarray(ms, np.int64)
    if tz == "UTC" or len(ms) == 0:
        return np.zeros(len(ms), np.int64)
    z = zone(tz)
    days = ms // DAY_MS
    lo, hi = int(days.min()), int(days.max())
    if hi - lo < _RANGE_TABLE:
        idx, table_days = days - lo, np.arange(lo, hi + 1, dtype=np.int64)
    else:
        table_days, idx = np.unique(days, return_inverse=True)
        idx = idx.reshape(-1)
    start, end, switch = _day_table(table_days, z)
    return np.where(ms < switch[idx], start[idx], end[idx])


def _local_to_utc_one(z, local_ms: int) -> int:
    """PostgreSQL's reading of a local wall time: a skipped time takes the offset before the change,
    a repeated one the offset after it."""
    if not _LOW_MS <= local_ms <= _HIGH_MS:
        return local_ms - _offset_ms(z, local_ms)
    dt = _EPOCH + timedelta(milliseconds=local_ms)
    a, b = dt.replace(tzinfo=z, fold=0).utcoffset(), dt.replace(tzinfo=z, fold=1).utcoffset()
    off = b if a > b else a  # a > b: repeated (fall back), take the later offset; a < b: skipped
    return local_ms - int(off / timedelta(milliseconds=1))


def local_to_utc(local_ms: np.ndarray, tz: str) -> np.ndarray:
    """UTC instants of local wall times (ms since 1970-01-01 00:00 on the zone's clock)."""
    local_ms = np.asarray(local_ms, np.int64)
    if tz == "UTC" or len(local_ms) == 0:
        return local_ms
    z = zone(tz)
    uniq, inv = np.unique(local_ms, return_inverse=True)
    out = np.fromiter((_local_to_utc_one(z, v) for v in uniq.tolist()), np.int64, len(uniq))
    return out[inv.reshape(-1)]


def month_floor(ms: np.ndarray, months: int) -> np.ndarray:
    """The start of each value's month (``months`` 1), quarter (3) or year (12), as epoch ms."""
    m = ms.astype("datetime64[ms]").astype("datetime64[M]").astype(np.int64)
    m = m - (m % months)
    return m.astype("datetime64[M]").astype("datetime64[ms]").astype(np.int64)


def add_months(ms: np.ndarray, months: int) -> np.ndarray:
    """``ms`` plus whole months, PostgreSQL's way: the day of month is clamped to the new month's length."""
    if months == 0:
        return ms
    t = ms.astype("datetime64[ms]")
    month = t.astype("datetime64[M]")
    day = t.astype("datetime64[D]")
    day_index = (day - month.astype("datetime64[D]")).astype(np.int64)
    time_of_day = ms - day.astype("datetime64[ms]").astype(np.int64)
    target = month + np.timedelta64(months, "M")
    target_days = target.astype("datetime64[D]").astype(np.int64)
    length = (target + np.timedelta64(1, "M")).astype("datetime64[D]").astype(np.int64) - target_days
    return (target_days + np.minimum(day_index, length - 1)) * DAY_MS + time_of_day


# -- intervals ---------------------------------------------------------------------------------

_PART = re.compile(r"\s*([+-]?\d+(?:\.\d+)?)\s*([a-z]+)", re.IGNORECASE)
_FIXED = {
    "ms": 1, "msec": 1, "msecs": 1, "millisecond": 1, "milliseconds": 1,
    "s": 1000, "sec": 1000, "secs": 1000, "second": 1000, "seconds": 1000,
    "m": 60_000, "min": 60_000, "mins": 60_000, "minute": 60_000, "minutes": 60_000,
    "h": 3_600_000, "hr": 3_600_000, "hrs": 3_600_000, "hour": 3_600_000, "hours": 3_600_000,
    "d": DAY_MS, "day": DAY_MS, "days": DAY_MS, "w": WEEK_MS, "week": WEEK_MS, "weeks": WEEK_MS,
}
_CALENDAR = {"mon": 1, "mons": 1, "month": 1, "months": 1, "y": 12, "yr": 12, "yrs": 12, "year": 12, "years": 12}


def parse_interval(text: str) -> tuple[int, int]:
    """``(months, milliseconds)`` of an interval's text: ``'24 hours'``, ``'1 day 2 hours'``,
    ``'3 months'``, ``'1 year'``, ``'-15 minutes'``. ValueError says what is wrong."""
    if not isinstance(text, str):
        raise ValueError("an interval is text like '24 hours'")
    months, ms, pos, parts = 0, 0, 0, 0
    body = text.rstrip()
    while pos < len(body):
        m = _PART.match(body, pos)
        if m is None:
            raise ValueError(f"cannot read {text!r} as an interval (like '24 hours', '7 days' or '1 month')")
        number, unit = m.group(1), m.group(2).lower()
        if unit in _FIXED:
            ms += round(float(number) * _FIXED[unit])
        elif unit in _CALENDAR:
            if "." in number:
                raise ValueError(f"months and years in an interval must be whole, got {text!r}")
            months += int(number) * _CALENDAR[unit]
        else:
            raise ValueError(f"unknown unit {m.group(2)!r} in interval {text!r}; use milliseconds, seconds, "
                             f"minutes, hours, days, weeks, months or years")
        pos, parts = m.end(), parts + 1
    if not parts:
        raise ValueError(f"an interval needs a number and a unit, like '24 hours', got {text!r}")
    if abs(months) > 120_000 or abs(ms) > _INTERVAL_MOST_MS:
        raise ValueError(f"interval {text!r} is longer than 10,000 years")
    return months, ms


def shift(ms: np.ndarray, months: int, millis: int, sign: int = 1) -> np.ndarray:
    """Timestamps plus (``sign`` 1) or minus (-1) an interval of ``months`` and ``millis``."""
    return add_months(ms, sign * months) + sign * millis
