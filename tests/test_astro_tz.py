"""Sunrise/sunset against astral 3.2 (zenith 90.833°), POSIX TZ rules against the tz database."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from spnode import astro
from spnode.tzrules import TZ, civil_from_days, days_from_civil, weekday

# (lat, lon, date, sunrise UTC epoch, sunset UTC epoch) from astral 3.2 (NOAA algorithm,
# zenith 90.833°), computed once off-line. Rotterdam on 2026-06-21 rises at 03:22:41 UTC
# (05:22 CEST); on 2026-12-21 it sets at 15:32:29 UTC.
REFERENCE = [
    (51.92, 4.48, (2026, 6, 21), 1782012161, 1782072306),
    (51.92, 4.48, (2026, 12, 21), 1797839268, 1797867149),
    (51.92, 4.48, (2026, 3, 20), 1773985513, 1774029289),
    (51.92, 4.48, (2026, 10, 25), 1792909459, 1792945626),
    (-0.18, -78.47, (2026, 6, 21), 1782040354, 1782083936),
    (21.3, -157.86, (2026, 12, 21), 1797872688, 1797825250 + 86400),  # local solar day
    (-33.87, 151.21, (2026, 6, 21), 1782075624 - 86400, 1782024815),  # local solar day
]


@pytest.mark.parametrize(("lat", "lon", "date", "rise", "sset"), REFERENCE)
def test_sun_times_within_two_minutes(lat, lon, date, rise, sset) -> None:
    r, s = astro.sun_times(*date, lat, lon)
    assert abs(r - rise) <= 120
    assert abs(s - sset) <= 120


def test_rotterdam_local_times() -> None:
    r, s = astro.sun_times(2026, 6, 21, 51.92, 4.48)
    assert dt.datetime.fromtimestamp(r, dt.UTC).strftime("%H:%M") in ("03:22", "03:23")
    assert dt.datetime.fromtimestamp(s, dt.UTC).strftime("%H:%M") in ("20:04", "20:05")
    r, s = astro.sun_times(2026, 12, 21, 51.92, 4.48)
    assert dt.datetime.fromtimestamp(r, dt.UTC).strftime("%H:%M") in ("07:47", "07:48")
    assert dt.datetime.fromtimestamp(s, dt.UTC).strftime("%H:%M") in ("15:32", "15:33")


def test_polar_day_and_night() -> None:
    assert astro.sun_times(2026, 6, 21, 69.65, 18.96) == (None, None)
    assert astro.polar(2026, 6, 21, 69.65, 18.96) == "day"
    assert astro.polar(2026, 12, 21, 69.65, 18.96) == "night"
    assert astro.polar(2026, 3, 20, 69.65, 18.96) is None
    noon = astro.solar_noon(2026, 12, 21, 69.65, 18.96)
    assert dt.datetime.fromtimestamp(noon, dt.UTC).hour == 10  # 12:00 - 18.96°/15 - EoT


def test_day_arithmetic_matches_the_calendar() -> None:
    for n in range(-1000, 60000, 7):
        d = dt.date(1970, 1, 1) + dt.timedelta(days=n)
        assert civil_from_days(n) == (d.year, d.month, d.day)
        assert days_from_civil(d.year, d.month, d.day) == n
        assert weekday(n) == d.weekday()


def test_cet_transitions_2026() -> None:
    tz = TZ("CET-1CEST,M3.5.0,M10.5.0/3")
    start, end = tz.transitions(2026)
    assert start == int(dt.datetime(2026, 3, 29, 1, 0, tzinfo=dt.UTC).timestamp())
    assert end == int(dt.datetime(2026, 10, 25, 1, 0, tzinfo=dt.UTC).timestamp())
    assert tz.utcoffset(start - 1) == 3600
    assert tz.utcoffset(start) == 7200
    assert tz.utcoffset(end - 1) == 7200
    assert tz.utcoffset(end) == 3600


@pytest.mark.parametrize(
    ("spec", "zone"),
    [
        ("CET-1CEST,M3.5.0,M10.5.0/3", "Europe/Amsterdam"),
        ("GMT0BST,M3.5.0/1,M10.5.0", "Europe/London"),
        ("IST-1GMT0,M10.5.0,M3.5.0/1", "Europe/Dublin"),  # negative DST
        ("EST5EDT,M3.2.0,M11.1.0", "America/New_York"),
        ("AEST-10AEDT,M10.1.0,M4.1.0/3", "Australia/Sydney"),  # DST over new year
        ("<-03>3", "America/Sao_Paulo"),
    ],
)
def test_offsets_agree_with_the_tz_database(spec: str, zone: str) -> None:
    tz, z = TZ(spec), ZoneInfo(zone)
    start = int(dt.datetime(2025, 1, 1, tzinfo=dt.UTC).timestamp())
    for t in range(start, start + 3 * 365 * 86400, 3 * 3600 + 17):
        expected = dt.datetime.fromtimestamp(t, z).utcoffset()
        assert tz.utcoffset(t) == int(expected.total_seconds()), (spec, t)


def test_local_to_utc_in_gap_and_overlap() -> None:
    tz = TZ("CET-1CEST,M3.5.0,M10.5.0/3")
    day = days_from_civil(2026, 3, 29) * 86400
    assert tz.to_utc(day + 2 * 3600 + 1800) == day + 3600 + 1800  # 02:30 does not exist
    day = days_from_civil(2026, 10, 25) * 86400
    assert tz.to_utc(day + 2 * 3600 + 1800) == day + 1800  # the first 02:30 (CEST)
    assert tz.to_utc(day + 12 * 3600) == day + 11 * 3600


def test_other_rule_forms_and_errors() -> None:
    assert TZ("UTC0").utcoffset(0) == 0
    assert TZ("<+0330>-3:30").utcoffset(0) == 12600
    j = TZ("AAA0BBB,J60/2,J300/2")  # J60 is March 1 in every year
    assert j.transitions(2028)[0] == days_from_civil(2028, 3, 1) * 86400 + 7200
    n = TZ("AAA0BBB,59/2,300/2")  # zero-based: day 59 is Feb 29 in a leap year
    assert n.transitions(2028)[0] == days_from_civil(2028, 2, 29) * 86400 + 7200
    for bad in ("", "C", "CET", "CET-1CEST,M3.5.0", "CET-1CEST,M13.5.0,M10.5.0", "CET-1x"):
        with pytest.raises(ValueError):
            TZ(bad)
