"""Sensing layer: turns driver values into readings for the `meas` channel.

A reading is a dict ``{"ts": epoch s, "q": quantity, "v": value, "dur": s, "src": id,
"flags": [...]}`` with names, units and flags from protocols/quantities.py.

Usage::

    from spnode.sensing import reading, trimmed_mean

    reading(1767225600, "pm25", 8.123, 60, "pm", ["humidity_high"])
    trimmed_mean([1, 2, 3, 100], 0.25)      # 2.5
"""


def reading(ts, q, v, dur=None, src=None, flags=None):
    r = {"ts": ts, "q": q, "v": round(v, 3)}
    if dur is not None:
        r["dur"] = dur
    if src is not None:
        r["src"] = src
    if flags:
        r["flags"] = list(flags)
    return r


def trimmed_mean(values, trim=0.1):
    """Mean after dropping the `trim` share of values at each end (at least one each end from 5
    values on): robust against a single spike from an insect or a droplet in the PM sensor."""
    n = len(values)
    if n == 0:
        return None
    s = sorted(values)
    k = int(n * trim)
    if k == 0 and n >= 5:
        k = 1
    s = s[k : n - k]
    return sum(s) / len(s)


class Sensors:
    """The sensors a node has fitted (spnode.sensortypes fits them; None: not fitted), and the
    source name each kind of reading goes out under (``srcs``, e.g. {"motion": "pir"})."""

    def __init__(self):
        self.pir = None
        self.radar = None
        self.pm = None
        self.bme = None
        self.no2 = None
        self.noise = None
        self.mic = None  # the microphone's I2S bus, read for ``noise``
        self.srcs = {}
