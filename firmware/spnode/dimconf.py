"""The dimmer's rarely run parts (spnode.dimming): taking a config, describing the state, the
state machine as a graph. Loaded for the call and unloaded after it, so the control loop's heap
does not hold them."""

from spnode.dimming import (
    _FIXED,
    _SUNRISE,
    _SUNSET,
    FAILSAFE,
    OVERRIDE,
    PROGRAM,
    TRANSITIONS,
)
from spnode.tzrules import TZ

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _md(text):
    return int(text[:2]) * 100 + int(text[3:5])


def to_dot():
    lines = ["digraph dimming {"]
    for src, edges in TRANSITIONS.items():
        for ev, dst in edges.items():
            lines.append('  %s -> %s [label="%s"];' % (src, dst, ev))
    lines.append("}")
    return "\n".join(lines)


def configure(config, location):
    """The dimmer's program from a validated remote config: (cfg, presence, noise) for
    spnode.dimming.Dimmer.set_program."""
    dim = config["dimming"]
    loc = config.get("location") or location
    progs = {}
    astro_used = False
    for name, prog in dim["programs"].items():
        steps = []
        for s in prog["steps"]:
            at = s["at"]
            if at == "sunrise":
                kind, mins = _SUNRISE, 0
            elif at == "sunset":
                kind, mins = _SUNSET, 0
            else:
                kind, mins = _FIXED, int(at[:2]) * 60 + int(at[3:5])
            astro_used = astro_used or kind != _FIXED
            steps.append((kind, mins + s.get("offset_min", 0), float(s["level"]), at))
        progs[name] = steps
    rules = []
    cal = dim.get("calendar", ())
    for i in range(len(cal)):
        r = cal[i]
        if "dates" in r:
            rank = 0
        elif "from" in r:
            rank = 1
        elif "days" in r:
            rank = 2
        else:
            rank = 3
        days = None
        if "days" in r:
            days = [_DAYS.index(d) for d in r["days"]]
        rng = (_md(r["from"]), _md(r["to"])) if "from" in r else None
        rules.append((rank, i, r.get("dates"), rng, days, r["program"]))
    rules.sort()
    pres = dim.get("presence")
    noise = dim.get("noise_trigger")
    hi = float(dim.get("max_level", 1.0))
    cfg = {
        "version": config.get("version"),
        "tz": TZ(config.get("tz") or "UTC0"),
        "loc": (float(loc["lat"]), float(loc["lon"])) if loc else None,
        "astro": astro_used,
        "programs": progs,
        "default": dim["default_program"],
        "rules": rules,
        "min": float(dim.get("min_level", 0.0)),
        "max": hi,
        "safe": float(dim.get("safe_level", hi)),
    }
    p = (None, None, 0, 0, 0)
    if pres:
        p = (
            float(pres["level"]),
            float(pres.get("neighbour_level", pres["level"])),
            int(float(pres["hold_s"]) * 1000),
            int(float(pres.get("ramp_up_s", 0)) * 1000),
            int(float(pres.get("ramp_down_s", 0)) * 1000),
        )
    n = (None, None, 0)
    if noise:
        n = (
            float(noise["threshold_dba"]),
            float(noise["level"]),
            int(float(noise.get("hold_s", 0)) * 1000),
        )
    return cfg, p, n


def describe(self):
    st = self.state
    if st == FAILSAFE:
        return st, self.why
    if st == OVERRIDE:
        lv, _start, expiry, ident = self.override
        r = "override %s to %.2f" % (ident or "-", lv)
        if expiry is not None:
            r += " until %d" % expiry
        return st, r
    r = "program %s: %.2f" % (self._step_label, self._base)
    if st != PROGRAM:
        r = "%s (%s) over %s" % (st.replace("_", " "), self._trigger, r)
    if self._floor:
        r += "; presence sensor faulty: not below safe_level %.2f" % self.cfg["safe"]
    return st, r
