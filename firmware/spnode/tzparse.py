"""Reading a POSIX TZ string into a spnode.tzrules.TZ (see there); loaded for the parse and
unloaded after it."""


class _Reader:
    def __init__(self, text):
        self.s = text
        self.i = 0

    def peek(self):
        return self.s[self.i] if self.i < len(self.s) else ""

    def take(self, ch):
        if self.peek() == ch:
            self.i += 1
            return True
        return False

    def fail(self, what):
        raise ValueError("TZ %r: %s at position %d" % (self.s, what, self.i))

    def name(self):
        if self.take("<"):
            j = self.s.find(">", self.i)
            if j < 0:
                self.fail("unclosed <")
            n = self.s[self.i : j]
            self.i = j + 1
        else:
            j = self.i
            while self.i < len(self.s) and self.s[self.i].isalpha():
                self.i += 1
            n = self.s[j : self.i]
        if len(n) < 3:
            self.fail("zone name needs 3 or more characters")
        return n

    def number(self, lo, hi):
        j = self.i
        while self.i < len(self.s) and self.s[self.i].isdigit():
            self.i += 1
        if j == self.i:
            self.fail("number expected")
        v = int(self.s[j : self.i])
        if not lo <= v <= hi:
            self.fail("%d outside %d..%d" % (v, lo, hi))
        return v

    def hms(self, max_hours):
        """[+-]hh[:mm[:ss]] in seconds, signed."""
        sign = -1 if self.peek() == "-" else 1
        if self.peek() in "+-":
            self.i += 1
        secs = self.number(0, max_hours) * 3600
        if self.take(":"):
            secs += self.number(0, 59) * 60
            if self.take(":"):
                secs += self.number(0, 59)
        return sign * secs

    def rule(self):
        if self.take("M"):
            m = self.number(1, 12)
            if not self.take("."):
                self.fail("'.' expected")
            w = self.number(1, 5)
            if not self.take("."):
                self.fail("'.' expected")
            r = ("M", m, w, self.number(0, 6))
        elif self.take("J"):
            r = ("J", self.number(1, 365), 0, 0)
        else:
            r = ("N", self.number(0, 365), 0, 0)
        t = self.hms(167) if self.take("/") else 7200
        return r, t


def parse(spec):
    """(std_name, std, dst_name, dst, start, end) of a POSIX TZ string, offsets in seconds east
    of UTC, rules as spnode.tzrules.TZ keeps them; ValueError names what is wrong."""
    if not isinstance(spec, str) or not spec:
        raise ValueError("TZ must be a non-empty string")
    r = _Reader(spec)
    std_name = r.name()
    std = -r.hms(24)  # seconds east of UTC
    dst_name = None
    dst = std
    start = end = None
    if r.peek():
        dst_name = r.name()
        dst = std + 3600
        if r.peek() not in ",":
            dst = -r.hms(24)
        if r.take(","):
            start = r.rule()
            if not r.take(","):
                r.fail("',' and an end rule expected")
            end = r.rule()
        else:
            start = (("M", 3, 2, 0), 7200)
            end = (("M", 11, 1, 0), 7200)
    if r.peek():
        r.fail("unexpected %r" % r.peek())
    return std_name, std, dst_name, dst, start, end
