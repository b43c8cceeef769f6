"""The dimmer's modes, states, events and transition table, and the kinds of a program step:
shared by the control loop (spnode.dimming) and its rarely run parts (spnode.dimconf) without
either importing the other."""

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

# how a program step's time is given: a clock time, or an offset from sunrise or sunset
FIXED = 0
SUNRISE = 1
SUNSET = 2
