"""Key placeholders: the periods of an instant in a time zone, across Europe/Paris's DST changes."""
from datetime import datetime, timezone

import pytest

from ocean import timekeys
from ocean.errors import InvalidKey, InvalidSetting
from ocean.settings import Settings


def ms(text: str) -> int:
    """Epoch milliseconds of an ISO UTC time like ``2026-03-29T01:00:00``."""
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp() * 1000)


@pytest.mark.parametrize("utc, unit, want", [
    # spring forward, Sunday 2026-03-29: 02:00 CET (01:00Z) becomes 03:00 CEST; the day has 23 hours
    ("2026-03-28T22:59:59.999", "day", "2026-03-28"),
    ("2026-03-28T23:00:00", "day", "2026-03-29"),
    ("2026-03-29T00:59:59", "hour", "2026-03-29T01"),
    ("2026-03-29T01:00:00", "hour", "2026-03-29T03"),  # local 02:xx never happens
    ("2026-03-29T21:59:59", "day", "2026-03-29"),
    ("2026-03-29T22:00:00", "day", "2026-03-30"),  # midnight is now at 22:00Z
    ("2026-03-29T21:59:59", "week", "2026-W13"),  # Sunday
    ("2026-03-29T22:00:00", "week", "2026-W14"),  # Monday, local
    # fall back, Sunday 2026-10-25: 03:00 CEST (01:00Z) becomes 02:00 CET; the day has 25 hours
    ("2026-10-25T00:30:00", "hour", "2026-10-25T02"),  # 02:30 CEST
    ("2026-10-25T01:30:00", "hour", "2026-10-25T02"),  # 02:30 CET: the same local hour, the same key
    ("2026-10-24T21:59:59", "day", "2026-10-24"),
    ("2026-10-24T22:00:00", "day", "2026-10-25"),
    ("2026-10-25T22:59:59", "day", "2026-10-25"),
    ("2026-10-25T23:00:00", "day", "2026-10-26"),
    # months and ISO weeks at the turn of a year (2026 has 53 ISO weeks)
    ("2026-12-31T22:59:59", "month", "2026-12"),
    ("2026-12-31T23:30:00", "month", "2027-01"),
    ("2026-12-31T23:30:00", "week", "2026-W53"),
    ("2026-12-31T23:30:00", "day", "2027-01-01"),
])
def test_periods_in_paris(utc, unit, want):
    assert timekeys.period(unit, ms(utc), "Europe/Paris") == want


def test_utc_is_the_default_and_matches_the_accounting_formats():
    t = ms("2026-02-10T14:05:00")
    assert [timekeys.period(u, t) for u in timekeys.PLACEHOLDERS] == ["2026-02-10", "2026-02-10T14", "2026-W07",
                                                                       "2026-02"]
    assert timekeys.expand("{day}", t) == "2026-02-10"
    assert timekeys.expand("eu-{week}.{month}-{day}", t) == "eu-2026-W07.2026-02-2026-02-10"
    assert timekeys.expand("plain", t) == "plain"


@pytest.mark.parametrize("key", ["{days}", "{}", "{day", "day}", "{Day}", "{day}{x}"])
def test_unknown_placeholders_are_invalid_keys(key):
    with pytest.raises(InvalidKey, match="placeholder"):
        timekeys.expand(key, 0)
    with pytest.raises(InvalidKey, match="placeholder"):
        timekeys.check_template(key)


def test_a_template_is_checked_as_the_key_it_becomes():
    assert timekeys.check_template("{hour}") == "{hour}"
    timekeys.check_template("x" * 243 + "{hour}")  # 243 + 13 = 256 characters once expanded
    with pytest.raises(InvalidKey, match="at most 256"):
        timekeys.check_template("x" * 244 + "{hour}")
    with pytest.raises(InvalidKey):
        timekeys.check_template("a b{day}")


def test_the_timezone_setting_is_an_iana_name_checked_at_load():
    assert Settings.load(environ={}).timezone == "UTC"
    assert Settings.load(environ={"OCEAN_TIMEZONE": "Europe/Paris"}).timezone == "Europe/Paris"
    for bad in ("Mars/Olympus", "", " UTC", "../../etc/passwd", "Europe/"):
        with pytest.raises(InvalidSetting, match="OCEAN_TIMEZONE"):
            Settings.load(environ={"OCEAN_TIMEZONE": bad})
