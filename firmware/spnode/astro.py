"""Sunrise and sunset on the node, for the astronomical clock of the dimming programs.

The "sunrise equation" (the NOAA approximation as given on Wikipedia, zenith 90.833°: the sun's
upper limb on the horizon with standard refraction), good to about a minute at mid latitudes::

    rise, set_ = sun_times(2026, 6, 21, 51.92, 4.48)   # UTC epoch seconds (ints)

Polar day and polar night have no sunrise or sunset: ``sun_times`` then returns
``(None, None)`` and ``polar(...)`` says which (``"day"`` or ``"night"``); ``solar_noon`` always
exists. Care for the ESP32's single-precision floats: the date stays an integer day count from
J2000 and only small fractions of a day are floats, so results hold to the minute there too.
"""

import math

from spnode.tzrules import days_from_civil

J2000_EPOCH = 946728000  # 2000-01-01 12:00 UTC
J2000_DAY = 10957  # days_from_civil(2000, 1, 1)
ZENITH = 90.833
_RAD = math.pi / 180


def _solar(n, lon):
    """(transit as a fraction of a day from noon UTC of day n, declination sine)."""
    jstar = n - lon / 360.0
    m = (357.5291 + 0.98560028 * jstar) % 360.0
    mr = m * _RAD
    c = 1.9148 * math.sin(mr) + 0.02 * math.sin(2 * mr) + 0.0003 * math.sin(3 * mr)
    lam = ((m + c + 282.9372) % 360.0) * _RAD
    transit = -lon / 360.0 + 0.0053 * math.sin(mr) - 0.0069 * math.sin(2 * lam)
    return transit, math.sin(lam) * math.sin(23.4397 * _RAD)


def _cos_hour_angle(lat, sin_dec):
    cos_dec = math.sqrt(1.0 - sin_dec * sin_dec)
    phi = lat * _RAD
    denom = math.cos(phi) * cos_dec
    num = math.cos(ZENITH * _RAD) - math.sin(phi) * sin_dec
    if denom == 0.0:  # at a pole
        return -2.0 if num < 0 else 2.0
    return num / denom


def _epoch(n, frac):
    return J2000_EPOCH + n * 86400 + int(round(frac * 86400.0))


def solar_noon(y, m, d, lat, lon):
    """UTC epoch seconds of the sun's transit on a date (lat kept for a uniform signature)."""
    n = days_from_civil(y, m, d) - J2000_DAY
    return _epoch(n, _solar(n, lon)[0])


def polar(y, m, d, lat, lon):
    """None on an ordinary day, "day" when the sun never sets, "night" when it never rises."""
    n = days_from_civil(y, m, d) - J2000_DAY
    cw = _cos_hour_angle(lat, _solar(n, lon)[1])
    if cw < -1.0:
        return "day"
    if cw > 1.0:
        return "night"
    return None


def sun_times(y, m, d, lat, lon):
    """(sunrise, sunset) in UTC epoch seconds for the date's solar day at that place, or
    (None, None) in polar day or night. lat north and lon east positive, degrees."""
    n = days_from_civil(y, m, d) - J2000_DAY
    transit, sin_dec = _solar(n, lon)
    cw = _cos_hour_angle(lat, sin_dec)
    if cw < -1.0 or cw > 1.0:
        return None, None
    half = math.acos(cw) / (2 * math.pi)  # hour angle as a fraction of a day
    return _epoch(n, transit - half), _epoch(n, transit + half)
