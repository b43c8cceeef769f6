"""Light control as pure logic: a table-driven state machine that takes the time as arguments.

In the spirit of TALQ: a calendar picks today's control program, the program's steps (fixed local
times with DST, or sunrise/sunset with offsets) give the base level, presence raises it for a hold
time with smooth ramps, neighbours and a noise trigger can raise it too, and an override from the
controller wins over all of that until it expires or is reverted. Example::

    d = Dimmer()
    d.configure(config)            # the validated remote config (a dict), location as fallback
    inp = Inputs()
    inp.time_valid = clock.valid
    inp.presence = pir.value()
    level = d.step(clock.now(), ticks_ms(), inp)   # ~10x per second; 0.0 .. 1.0
    state, reason = d.describe()

Theory of operation. The output is decided by layers, first that applies wins (``MODES``):

1. ``failsafe``: no valid wall time, no configuration, or astro steps without a location:
   full light (1.0). The light fails towards light, never towards dark.
2. ``override``: the last override received (one slot: a newer one replaces it), from its start
   until its expiry or a revert.
3. the boost layer over the program (``TRANSITIONS``): ``program`` follows the base level;
   a trigger (own presence, a neighbour's presence, noise above the threshold) ramps up to the
   trigger's level within ``ramp_up_s`` (``ramp_up``), stays there (``hold``) while any trigger is
   within its hold time of its last detection, then ramps down over ``ramp_down_s``
   (``ramp_down``) to the base level. Ramps and holds run on the monotonic clock only, so a
   wall-clock jump (NTP) changes at most the base level, never a ramp or a hold.

Levels: 0 means off and stays 0; any other level is clamped into [min_level, max_level] (the
driver's lowest dim level and the installation's cap). While the presence sensor is faulty, a lamp
the program has on never goes below ``safe_level`` (default max_level). Losing the controller
changes nothing: the program and any override keep running on the node's own clock.

Calendar: a rule matches a day when all its conditions hold (dates, from/to month-day range
inclusive and possibly wrapping over new year, weekdays); rules with dates are tried first, then
rules with a range, then rules with weekdays only, each group in the order given; the first match
wins, else ``default_program``. A program's steps are resolved to UTC for the local day (and the
days around it, since offsets can cross midnight) once per local day; the level in force is that
of the last step passed, so the last step of yesterday carries over midnight. In polar night
sunset steps fall at solar noon and sunrise steps are skipped; in polar day the reverse.
"""

from spnode import unload
from spnode.compat import ticks_diff
from spnode.tzrules import DAY, civil_from_days, weekday

FAILSAFE = "failsafe"
OVERRIDE = "override"
PROGRAM = "program"
RAMP_UP = "ramp_up"
HOLD = "hold"
RAMP_DOWN = "ramp_down"

# events of the boost layer
TRIGGER = "trigger"  # an active trigger asks for more than the current level
REACHED = "reached"  # the ramp arrived at its goal while a trigger is still active
LOWERED = "lowered"  # the goal fell below the current level (triggers cleared or lowered)
SETTLED = "settled"  # no trigger active and the program is at or above the current level

# precedence of the layers (first whose condition holds decides) and the boost layer's table
MODES = (
    (FAILSAFE, "no valid time, no configuration or no location: full light"),
    (OVERRIDE, "an override between its start and expiry"),
    (PROGRAM, "the boost layer over the calendar's program"),
)
TRANSITIONS = {
    PROGRAM: {TRIGGER: RAMP_UP},
    RAMP_UP: {TRIGGER: RAMP_UP, REACHED: HOLD, LOWERED: RAMP_DOWN, SETTLED: PROGRAM},
    HOLD: {TRIGGER: RAMP_UP, LOWERED: RAMP_DOWN, SETTLED: PROGRAM},
    RAMP_DOWN: {TRIGGER: RAMP_UP, REACHED: HOLD, SETTLED: PROGRAM},
}
STATES = (FAILSAFE, OVERRIDE, PROGRAM, RAMP_UP, HOLD, RAMP_DOWN)

_EPS = 0.001
_FIXED = 0
_SUNRISE = 1
_SUNSET = 2


def to_dot():
    """The boost layer as Graphviz text (``python -c 'from spnode import dimming; ...'``)."""
    from spnode import dimconf  # the dimmer's rarely run parts: loaded for the call

    try:
        return dimconf.to_dot()
    finally:
        dimconf = None
        unload("spnode.dimconf")


class Inputs:
    """What the control loop knows this cycle. ``neighbour`` is an event: set it True when a
    neighbour's presence message arrives; ``step`` consumes it (sets it back to False)."""

    __slots__ = ("neighbour", "noise_dba", "presence", "presence_fault", "time_valid")

    def __init__(self, time_valid=True, presence=False, presence_fault=False, neighbour=False):
        self.time_valid = time_valid
        self.presence = presence
        self.presence_fault = presence_fault
        self.neighbour = neighbour
        self.noise_dba = None


def _clamp(level, lo, hi):
    if level <= 0:
        return 0.0
    if level < lo:
        return lo
    return hi if level > hi else level


class Dimmer:
    def __init__(self):
        self.cfg = None
        self.state = FAILSAFE
        self.why = "no configuration"
        self._level = 1.0
        self._cur = 0.0  # boost layer output before clamping
        self._ramp_from = 0.0
        self._ramp_t0 = 0
        self._ramp_ms = 0
        self._ramp_to = 0.0
        self._boost_state = PROGRAM
        self._own = None  # ticks of the last detection, per trigger (None: not active)
        self._nb = None
        self._noise = None
        self._trigger = None  # name of the trigger deciding the boost level
        self._was_present = False
        self.presence_edge = False  # True for the one step in which own presence began
        self._floor = False
        self.override = None  # (level, start, expiry, id)
        self.override_ended = None  # ("expired" | "reverted" | "replaced", id) of the last one
        self._day_lo = 1  # window [lo, hi) of UTC seconds the plan is good for
        self._day_hi = 0
        self._plan = ()  # sorted (utc, level, label)
        self._step_label = ""
        self._base = 0.0
        # set by set_program, here so that configuring never grows the object
        self._p_level = self._nb_level = None
        self._hold_ms = self._up_ms = self._down_ms = 0
        self._n_thr = self._n_level = None
        self._n_hold_ms = 0

    # ---- configuration -------------------------------------------------------------------
    def configure(self, config, location=None):
        """Take a validated remote config (dict). ``location`` ({lat, lon}, from the node's
        own config) is used when the remote config has none. Raises ValueError on a bad tz."""
        from spnode import dimconf  # the dimmer's rarely run parts: loaded for the call

        try:
            program = dimconf.configure(config, location)
        finally:
            dimconf = None
            unload("spnode.dimconf")
        self.set_program(*program)

    def set_program(self, cfg, presence, noise):
        """Put a program in force, as spnode.dimconf.configure built it: ``cfg`` (the plan's
        data), ``presence`` (level, neighbour level, hold, ramp up, ramp down; levels None
        without presence dimming) and ``noise`` (threshold, level, hold; None: no trigger).
        Only rebinds attributes, so a MemoryError while building them (a config taken on a
        fragmented heap) leaves the last program whole."""
        self._p_level, self._nb_level, self._hold_ms, self._up_ms, self._down_ms = presence
        self._n_thr, self._n_level, self._n_hold_ms = noise
        self.cfg = cfg
        self._day_lo, self._day_hi = 1, 0  # re-plan on the next step

    # ---- overrides -----------------------------------------------------------------------
    def set_override(self, level, start=None, expiry=None, ident=None):
        """The last override received wins: it replaces any earlier one, active or pending."""
        if self.override is not None:
            self.override_ended = ("replaced", self.override[3])
        self.override = (float(level), start, expiry, ident)

    def revert(self):
        """Back to the program (TALQ: an empty override)."""
        if self.override is not None:
            self.override_ended = ("reverted", self.override[3])
        self.override = None

    def command(self, cmd):
        """Apply a validated ``cmd`` message dict of kind override or revert; True if taken."""
        kind = cmd["cmd"]
        if kind == "override":
            self.set_override(cmd["level"], cmd.get("start"), cmd.get("expiry"), cmd["id"])
            return True
        if kind == "revert":
            self.revert()
            return True
        return False

    # ---- the program ---------------------------------------------------------------------
    def program_for(self, day):
        """Name of the program the calendar selects for a local day number."""
        cfg = self.cfg
        y, m, d = civil_from_days(day)
        md = m * 100 + d
        wd = weekday(day)
        iso = None
        for _rank, _i, dates, rng, days, prog in cfg["rules"]:
            if dates is not None:
                if iso is None:
                    iso = "%04d-%02d-%02d" % (y, m, d)
                if iso not in dates:
                    continue
            if rng is not None:
                lo, hi = rng
                if not (lo <= md <= hi if lo <= hi else md >= lo or md <= hi):
                    continue
            if days is not None and wd not in days:
                continue
            return prog
        return cfg["default"]

    def _resolve(self, day, out, astro):
        cfg = self.cfg
        name = self.program_for(day)
        tz = cfg["tz"]
        rise = sset = noon = None
        if cfg["astro"] and cfg["loc"] is not None:
            y, m, d = civil_from_days(day)
            lat, lon = cfg["loc"]
            rise, sset = astro.sun_times(y, m, d, lat, lon)
            if rise is None:
                noon = (astro.solar_noon(y, m, d, lat, lon), astro.polar(y, m, d, lat, lon))
        for kind, mins, level, at in cfg["programs"][name]:
            if kind == _FIXED:
                t = tz.to_utc(day * DAY + mins * 60)
            else:
                off = mins * 60
                if rise is not None:
                    t = (rise if kind == _SUNRISE else sset) + off
                elif (noon[1] == "night") == (kind == _SUNSET):
                    t = noon[0] + off  # the event that "wins" the polar day/night
                else:
                    continue
            out.append((t, level, name + " " + at))

    def _make_plan(self, now):
        cfg = self.cfg
        tz = cfg["tz"]
        day = tz.local(now) // DAY
        plan = []
        from spnode import astro  # once a local day: not kept loaded

        try:
            for dd in (day - 2, day - 1, day, day + 1):
                self._resolve(dd, plan, astro)
        finally:
            astro = None
            unload("spnode.astro")
        plan.sort()
        self._plan = plan
        self._day_lo = tz.to_utc(day * DAY)
        self._day_hi = tz.to_utc((day + 1) * DAY)
        if self._day_hi <= now:  # to_utc's gap rule must not leave us re-planning every step
            self._day_hi = now + 3600
        if self._day_lo > now:
            self._day_lo = now

    def base_level(self, now):
        """The program's level at a UTC instant (unclamped), from the cached day plan."""
        if not self._day_lo <= now < self._day_hi:
            self._make_plan(now)
        level = 1.0
        label = ""
        for t, lv, lab in self._plan:
            if t > now:
                break
            level = lv
            label = lab
        self._step_label = label
        return level

    # ---- the control step ----------------------------------------------------------------
    def step(self, now, mono_ms, inp):
        """One control cycle: UTC seconds, monotonic ticks (ms) and Inputs; returns the level."""
        cfg = self.cfg
        own = inp.presence and not inp.presence_fault
        self.presence_edge = own and not self._was_present
        self._was_present = own
        if cfg is None:
            inp.neighbour = False
            return self._failsafe("no configuration")
        # triggers: remember the last detection of each (monotonic clock)
        if self._p_level is not None:
            if own:
                self._own = mono_ms
            if inp.neighbour:
                self._nb = mono_ms
        inp.neighbour = False
        if self._n_thr is not None and inp.noise_dba is not None and inp.noise_dba >= self._n_thr:
            self._noise = mono_ms
        if not inp.time_valid:
            self._boost(mono_ms, 1.0)  # keep the boost layer's clocks running
            return self._failsafe("no valid wall time")
        now = int(now)
        if cfg["astro"] and cfg["loc"] is None:
            self._boost(mono_ms, 1.0)
            return self._failsafe("no location for the astronomical clock")
        base = self.base_level(now)
        self._base = base
        cur = self._boost(mono_ms, base)
        ov = self.override
        if ov is not None:
            level, start, expiry, _ident = ov
            if expiry is not None and now >= expiry:
                self.override_ended = ("expired", ov[3])
                self.override = None
            elif start is None or now >= start:
                self.state = OVERRIDE
                self._floor = False
                self._level = _clamp(level, cfg["min"], cfg["max"])
                return self._level
        self.state = self._boost_state
        out = _clamp(cur, cfg["min"], cfg["max"])
        self._floor = False
        if inp.presence_fault and self._p_level is not None and base > 0 and out < cfg["safe"]:
            out = cfg["safe"]
            self._floor = True
        self._level = out
        return out

    def _failsafe(self, why):
        self.state = FAILSAFE
        self.why = why
        self._floor = False
        self._level = 1.0
        return 1.0

    def _active(self, seen, mono_ms, hold_ms):
        return seen is not None and ticks_diff(mono_ms, seen) <= hold_ms

    def _boost(self, mono_ms, base):
        """Advance the boost layer (the TRANSITIONS table) and return its level."""
        target = -1.0
        trig = None
        if self._own is not None:
            if self._active(self._own, mono_ms, self._hold_ms):
                target, trig = self._p_level, "presence"
            else:
                self._own = None
        if self._nb is not None:
            if self._active(self._nb, mono_ms, self._hold_ms):
                if self._nb_level > target:
                    target, trig = self._nb_level, "neighbour"
            else:
                self._nb = None
        if self._noise is not None:
            if self._active(self._noise, mono_ms, self._n_hold_ms):
                if self._n_level > target:
                    target, trig = self._n_level, "noise"
            else:
                self._noise = None
        active = target > base
        goal = target if active else base
        st = self._boost_state
        cur = self._cur
        if st in (RAMP_UP, RAMP_DOWN):  # ramp position on the monotonic clock
            elapsed = ticks_diff(mono_ms, self._ramp_t0)
            # a ramp down follows the base level, unless a new trigger arrived: then the
            # position is taken on the ramp as it was, and the trigger ramps up from there
            to = self._ramp_to if st == RAMP_UP or active else goal
            if elapsed >= self._ramp_ms:
                cur = to
            else:
                cur = self._ramp_from + (to - self._ramp_from) * elapsed / self._ramp_ms
        elif st == PROGRAM:
            cur = base
        ev = None
        if active and goal > cur + _EPS and (st != RAMP_UP or goal > self._ramp_to + _EPS):
            ev = TRIGGER
        elif st != PROGRAM:
            if not active and base >= cur - _EPS:
                ev = SETTLED  # the program is at or above the boost level: nothing to ramp
            elif st == RAMP_DOWN:
                if cur <= goal + _EPS:
                    ev = REACHED
            elif st == RAMP_UP:
                if goal < self._ramp_to - _EPS:
                    ev = LOWERED
                elif cur >= self._ramp_to - _EPS:
                    ev = REACHED
            elif goal < cur - _EPS:  # HOLD
                ev = LOWERED
            else:
                cur = goal
        if ev is not None:
            nxt = TRANSITIONS[st].get(ev)
            if nxt is not None:
                if nxt in (RAMP_UP, RAMP_DOWN):
                    self._ramp_from = cur
                    self._ramp_t0 = mono_ms
                    self._ramp_ms = self._up_ms if nxt == RAMP_UP else self._down_ms
                    self._ramp_to = goal
                    if self._ramp_ms <= 0:  # no ramp configured: jump
                        cur = goal
                if nxt in (HOLD, PROGRAM):
                    cur = goal
                self._boost_state = nxt
        if trig is not None:
            self._trigger = trig
        self._cur = cur
        return cur

    # ---- reporting -----------------------------------------------------------------------
    def level(self):
        return self._level

    def describe(self):
        """(state, reason) for the node state and the simulator's report."""
        from spnode import dimconf

        try:
            return dimconf.describe(self)
        finally:
            dimconf = None
            unload("spnode.dimconf")
