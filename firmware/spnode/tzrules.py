"""Local time from a POSIX TZ string, without the interpreter's time zone support.

MicroPython has no time zones and the ESP32's ``time.localtime`` is UTC, so the node works out its
offset itself from the ``tz`` of its configuration (POSIX.1 section 8.3, as glibc reads it)::

    tz = TZ("CET-1CEST,M3.5.0,M10.5.0/3")
    tz.utcoffset(1774832400)   # seconds east of UTC: 3600 or 7200
    tz.to_utc(local_seconds)   # a wall-clock time of the local day back to UTC

Supported: ``std offset [dst [offset] [,start[/time],end[/time]]]`` with names alphabetic or
quoted ``<+03>``, offsets ``[+-]hh[:mm[:ss]]`` (POSIX sign: positive is west of Greenwich), rules
``Mm.w.d``, ``Jn`` (1..365, no leap day) and ``n`` (0..365), rule times signed and beyond 24 h
(the glibc extension). A DST zone without rules takes the US rules (M3.2.0,M11.1.0), as glibc
does. Also here: the proleptic Gregorian day arithmetic every node module shares
(``days_from_civil`` and ``civil_from_days``, H. Hinnant's algorithms), so nothing depends on
``time.gmtime``, whose epoch differs between ports.
"""

from spnode import unload

DAY = 86400


def days_from_civil(y, m, d):
    """Days since 1970-01-01 of a proleptic Gregorian date."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def civil_from_days(z):
    """(year, month, day) of a day number counted from 1970-01-01."""
    z += 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return (yoe + era * 400 + (m <= 2), m, d)


def weekday(days):
    """0 = Monday .. 6 = Sunday for a day number (1970-01-01 was a Thursday)."""
    return (days + 3) % 7


def is_leap(y):
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


def _rule_day(rule, year):
    """Day number (since 1970) on which a transition rule falls in a year."""
    kind, a, b, c = rule
    jan1 = days_from_civil(year, 1, 1)
    if kind == "J":  # 1..365, February 29 never counted
        return jan1 + a - 1 + (1 if is_leap(year) and a >= 60 else 0)
    if kind == "N":  # 0..365, leap day counted
        return jan1 + a
    # Mm.w.d: day d (0 = Sunday) of week w (5 = last) of month m
    first = days_from_civil(year, a, 1)
    dow_first = (weekday(first) + 1) % 7  # 0 = Sunday
    day = first + (c - dow_first) % 7 + (b - 1) * 7
    nxt = days_from_civil(year + (a == 12), a % 12 + 1, 1)
    while day >= nxt:
        day -= 7
    return day


class TZ:
    """A parsed POSIX TZ string; ValueError names the fault when it cannot be read."""

    def __init__(self, spec="UTC0"):
        from spnode import tzparse  # parsing is done once: not kept loaded

        try:
            zone = tzparse.parse(spec)
        finally:
            tzparse = None
            unload("spnode.tzparse")
        self.spec = spec
        self.std_name, self.std, self.dst_name, self.dst, self.start, self.end = zone
        self._year = None  # the year whose DST span is cached
        self._span = (0, 0)

    def transitions(self, year):
        """(DST start, DST end) of a year in UTC epoch seconds; None for a zone without DST."""
        if self.dst_name is None:
            return None
        (rs, ts), (re_, te) = self.start, self.end
        # the start rule's time is local standard time, the end rule's is local daylight time
        return (
            _rule_day(rs, year) * DAY + ts - self.std,
            _rule_day(re_, year) * DAY + te - self.dst,
        )

    def utcoffset(self, utc):
        """Seconds to add to UTC epoch seconds for local time at that instant."""
        if self.dst_name is None:
            return self.std
        utc = int(utc)
        year = civil_from_days(utc // DAY)[0]
        if year != self._year:
            self._span = self.transitions(year)
            self._year = year
        start, end = self._span
        if start < end:  # northern hemisphere: DST inside the year
            return self.dst if start <= utc < end else self.std
        return self.std if end <= utc < start else self.dst  # southern: DST over new year

    def local(self, utc):
        """Local wall-clock seconds (as if the epoch were local) for UTC epoch seconds."""
        return int(utc) + self.utcoffset(utc)

    def to_utc(self, local):
        """UTC of a local wall-clock time. In the autumn overlap the first (daylight) instant
        is taken; a time in the spring gap (which does not exist) is read as standard time."""
        if self.dst_name is not None:
            u = local - self.dst
            if self.utcoffset(u) == self.dst:
                return u
        return local - self.std


def parse(spec):
    """TZ(spec); kept as a function so a config check reads ``tzrules.parse(tz)``."""
    return TZ(spec)
