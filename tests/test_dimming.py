"""The dimming state machine driven by a test clock (wall time and monotonic ticks apart)."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from protocols import codec
from spnode import dimming
from spnode.dimming import Dimmer, Inputs

AMS = ZoneInfo("Europe/Amsterdam")
VECTORS = Path(__file__).resolve().parents[1] / "protocols" / "vectors"

CONFIG = {
    "version": 3,
    "report_period_s": 60,
    "location": {"lat": 51.92, "lon": 4.48},
    "tz": "CET-1CEST,M3.5.0,M10.5.0/3",
    "dimming": {
        "programs": {
            "standard": {
                "steps": [
                    {"at": "sunset", "offset_min": -10, "level": 1.0},
                    {"at": "23:00", "level": 0.4},
                    {"at": "sunrise", "offset_min": 10, "level": 0.0},
                ]
            },
            "weekend": {"steps": [{"at": "sunset", "level": 0.9}, {"at": "sunrise", "level": 0}]},
            "bats": {"steps": [{"at": "sunset", "level": 0.2}, {"at": "sunrise", "level": 0.0}]},
            "holiday": {"steps": [{"at": "sunset", "level": 0.8}, {"at": "sunrise", "level": 0}]},
            "fixed": {"steps": [{"at": "06:00", "level": 0.0}, {"at": "18:00", "level": 0.05}]},
        },
        "default_program": "standard",
        "calendar": [
            {"program": "weekend", "days": ["sat", "sun"]},
            {"program": "bats", "from": "04-01", "to": "10-31"},
            {"program": "standard", "dates": ["2026-12-26"]},
            {"program": "holiday", "from": "12-28", "to": "01-02"},
        ],
        "min_level": 0.1,
        "max_level": 1.0,
        "safe_level": 0.6,
        "presence": {
            "level": 1.0,
            "ramp_up_s": 1.5,
            "hold_s": 60,
            "ramp_down_s": 20,
            "neighbour_level": 0.7,
        },
        "noise_trigger": {"threshold_dba": 75, "level": 0.8, "hold_s": 30},
    },
}


def local(*args: int) -> int:
    """UTC epoch seconds of an Amsterdam wall-clock time."""
    return int(dt.datetime(*args, tzinfo=AMS).timestamp())


def dimmer(config: dict | None = None) -> Dimmer:
    d = Dimmer()
    d.configure(codec.check("config", json.loads(json.dumps(config or CONFIG))))
    return d


class Drive:
    """A driven clock: wall time and monotonic ticks advance together unless told otherwise."""

    def __init__(self, d: Dimmer, now: int, mono: int = 1000) -> None:
        self.d, self.now, self.mono, self.inp = d, float(now), mono, Inputs()

    def run(self, seconds: float, step_ms: int = 100) -> list[float]:
        out = []
        for _ in range(int(seconds * 1000) // step_ms):
            self.now += step_ms / 1000
            self.mono += step_ms
            out.append(self.d.step(self.now, self.mono, self.inp))
        return out

    def tick(self) -> float:
        return self.d.step(self.now, self.mono, self.inp)


NIGHT = local(2026, 11, 10, 1, 0)  # a Tuesday: standard program, 0.4 since 23:00


def test_table_is_closed_and_drawable() -> None:
    events = {dimming.TRIGGER, dimming.REACHED, dimming.LOWERED, dimming.SETTLED}
    for src, edges in dimming.TRANSITIONS.items():
        assert src in dimming.STATES
        for ev, dst in edges.items():
            assert ev in events
            assert dst in dimming.TRANSITIONS
    dot = dimming.to_dot()
    assert "program -> ramp_up" in dot and "hold -> ramp_down" in dot
    assert [m[0] for m in dimming.MODES] == ["failsafe", "override", "program"]


def test_program_steps_over_a_day() -> None:
    d = dimmer()
    inp = Inputs()
    sunset = int(dt.datetime(2026, 11, 10, 16, 0, tzinfo=dt.UTC).timestamp())
    cases = [
        (local(2026, 11, 10, 1, 0), 0.4, "standard 23:00"),  # yesterday's last step carries
        (local(2026, 11, 10, 12, 0), 0.0, "standard sunrise"),
        (local(2026, 11, 10, 20, 0), 1.0, "standard sunset"),
        (local(2026, 11, 10, 23, 0), 0.4, "standard 23:00"),
        (sunset - 20 * 60, 0.0, "standard sunrise"),  # sunset 16:53 local - 10 min
    ]
    for now, level, label in cases:
        assert d.step(now, 0, inp) == level, now
        assert d.describe() == ("program", f"program {label}: {level:.2f}")


def test_sunrise_and_sunset_steps_fall_at_the_computed_times() -> None:
    from spnode import astro

    d = dimmer()
    rise, sset = astro.sun_times(2026, 11, 10, 51.92, 4.48)
    assert d.base_level(sset - 600 - 1) == 0.0
    assert d.base_level(sset - 600) == 1.0
    assert d.base_level(rise + 600 - 1) == 0.4
    assert d.base_level(rise + 600) == 0.0


def test_fixed_times_follow_daylight_saving() -> None:
    cfg = json.loads(json.dumps(CONFIG))
    cfg["dimming"]["calendar"] = []
    cfg["dimming"]["default_program"] = "fixed"
    d = dimmer(cfg)
    for day in ((2026, 7, 1), (2026, 12, 1)):
        six = local(*day, 6, 0)
        assert d.base_level(six - 1) == 0.05 and d.base_level(six) == 0.0
    assert local(2026, 7, 1, 6, 0) % 86400 == 4 * 3600  # 06:00 CEST is 04:00 UTC
    assert local(2026, 12, 1, 6, 0) % 86400 == 5 * 3600
    # 0.05 is below min_level 0.1: the lamp is on at its lowest dim level
    assert d.step(local(2026, 12, 1, 20, 0), 0, Inputs()) == 0.1


@pytest.mark.parametrize(
    ("date", "program"),
    [
        ((2026, 11, 10), "standard"),  # Tuesday: no rule, default
        ((2026, 11, 14), "weekend"),  # Saturday: days rule
        ((2026, 5, 2), "bats"),  # Saturday in the bat season: the range beats the weekday
        ((2026, 12, 26), "standard"),  # Saturday with its own date: dates beat everything
        ((2026, 12, 30), "holiday"),  # range wrapping over new year
        ((2027, 1, 2), "weekend"),  # Saturday inside the holiday range: the range wins
        ((2027, 1, 4), "standard"),
        ((2026, 3, 31), "standard"),
        ((2026, 4, 1), "bats"),
        ((2026, 10, 31), "bats"),  # Saturday, inclusive end of the range
    ],
)
def test_calendar_selection(date: tuple[int, int, int], program: str) -> None:
    d = dimmer()
    from spnode.tzrules import days_from_civil

    expected = "holiday" if date == (2027, 1, 2) else program
    assert d.program_for(days_from_civil(*date)) == expected


def test_presence_ramps_up_within_ramp_time_holds_then_ramps_down() -> None:
    drv = Drive(dimmer(), NIGHT)
    assert drv.tick() == 0.4
    drv.inp.presence = True
    drv.run(0.1)
    drv.inp.presence = False  # one detection at t0 = NIGHT + 0.1 s
    assert drv.d.state == "ramp_up"
    levels = drv.run(1.5)
    assert levels[6] == pytest.approx(0.4 + 0.6 * 0.7 / 1.5, abs=0.01)  # linear on the way
    assert levels[-1] == 1.0  # at the target within ramp_up_s
    assert all(b >= a for a, b in itertools.pairwise(levels))
    assert drv.d.state == "hold"
    assert min(drv.run(58.4)) == 1.0  # hold_s after the last detection
    levels = drv.run(10.2)
    assert drv.d.state == "ramp_down"
    assert levels[-1] == pytest.approx(0.7, abs=0.02)  # halfway down after 10 of 20 s
    drv.run(10.0)
    assert drv.tick() == 0.4
    assert drv.d.state == "program"


def test_presence_again_during_ramp_down_ramps_up_from_where_it_was() -> None:
    drv = Drive(dimmer(), NIGHT)
    drv.inp.presence = True
    drv.run(0.1)
    drv.inp.presence = False
    drv.run(70)
    assert drv.d.state == "ramp_down"
    mid = drv.tick()
    drv.inp.presence = True
    first = drv.run(0.1)[0]
    one_tick_down = (1.0 - 0.4) / 200  # the ramp down's step per 100 ms
    assert drv.d.state == "ramp_up" and first >= mid - one_tick_down - 1e-9
    assert drv.run(1.5)[-1] == 1.0


def test_continuous_presence_keeps_the_light_up() -> None:
    drv = Drive(dimmer(), NIGHT)
    drv.inp.presence = True
    assert min(drv.run(300)[15:]) == 1.0
    drv.inp.presence = False
    assert drv.run(60)[-1] == 1.0
    assert drv.run(21)[-1] == 0.4


def test_neighbour_wake_then_own_presence_goes_higher() -> None:
    drv = Drive(dimmer(), NIGHT)
    drv.inp.neighbour = True
    drv.run(0.1)
    assert drv.inp.neighbour is False  # consumed
    assert drv.run(1.5)[-1] == 0.7
    _, why = drv.d.describe()
    assert why.startswith("hold (neighbour)")
    drv.inp.presence = True
    drv.run(0.1)
    drv.inp.presence = False
    assert drv.run(1.5)[-1] == 1.0
    # own presence expires first (same hold, later start? no: own came later) -> down to base
    drv.run(60 + 20)
    assert drv.tick() == 0.4


def test_noise_trigger() -> None:
    drv = Drive(dimmer(), NIGHT)
    drv.inp.noise_dba = 74.9
    assert drv.run(5)[-1] == 0.4
    drv.inp.noise_dba = 80.0
    drv.run(0.1)
    drv.inp.noise_dba = 50.0
    assert drv.run(1.5)[-1] == 0.8
    assert drv.run(28)[-1] == 0.8
    drv.run(2.5 + 20)
    assert drv.tick() == 0.4


def test_presence_edge_is_reported_once() -> None:
    drv = Drive(dimmer(), NIGHT)
    drv.inp.presence = True
    drv.tick()
    assert drv.d.presence_edge is True
    drv.run(0.1)
    assert drv.d.presence_edge is False


def test_failsafe_without_valid_time_config_or_location() -> None:
    d = Dimmer()
    assert d.step(NIGHT, 0, Inputs()) == 1.0
    assert d.describe() == ("failsafe", "no configuration")
    d = dimmer()
    day = local(2026, 11, 10, 12, 0)
    assert d.step(day, 0, Inputs()) == 0.0
    assert d.step(day, 100, Inputs(time_valid=False)) == 1.0
    assert d.describe() == ("failsafe", "no valid wall time")
    d.set_override(0.0)  # not even an override dims a node that does not know the time
    assert d.step(day, 200, Inputs(time_valid=False)) == 1.0
    cfg = json.loads(json.dumps(CONFIG))
    del cfg["location"]
    d = dimmer(cfg)
    assert d.step(day, 0, Inputs()) == 1.0
    assert d.describe()[1] == "no location for the astronomical clock"
    d.configure(codec.check("config", cfg), location={"lat": 51.92, "lon": 4.48})
    assert d.step(day, 0, Inputs()) == 0.0


def test_faulty_presence_sensor_keeps_the_safe_level_at_night_only() -> None:
    d = dimmer()
    faulty = Inputs(presence=True, presence_fault=True)
    assert d.step(NIGHT, 0, faulty) == 0.6
    state, why = d.describe()
    assert state == "program" and "not below safe_level 0.60" in why
    assert d.step(local(2026, 11, 10, 12, 0), 100, faulty) == 0.0  # day: lamp stays off
    assert d.step(local(2026, 11, 10, 20, 0), 200, faulty) == 1.0  # above the floor anyway


def test_overrides_win_expire_on_time_and_the_last_wins() -> None:
    drv = Drive(dimmer(), NIGHT)
    drv.d.set_override(0.2, start=None, expiry=NIGHT + 600, ident="c-1")
    assert drv.tick() == 0.2
    assert drv.d.describe() == ("override", f"override c-1 to 0.20 until {NIGHT + 600}")
    drv.inp.presence = True  # an override wins over presence
    assert set(drv.run(5)) == {0.2}
    drv.inp.presence = False
    drv.d.set_override(0.9, start=NIGHT + 60, expiry=NIGHT + 120, ident="c-2")  # replaces c-1
    assert drv.d.override_ended == ("replaced", "c-1")
    assert drv.tick() == 1.0  # c-2 not yet started: program + presence hold
    drv.now = NIGHT + 59.9
    assert drv.tick() == 1.0
    drv.now = NIGHT + 60
    assert drv.tick() == 0.9
    drv.now = NIGHT + 119.9
    assert drv.tick() == 0.9
    drv.now = NIGHT + 120
    drv.tick()
    assert drv.d.state != "override" and drv.d.override is None
    assert drv.d.override_ended == ("expired", "c-2")
    drv.d.set_override(0.0, ident="c-3")  # no expiry: until revert
    assert drv.tick() == 0.0  # 0 is off, never raised to min_level
    drv.d.revert()
    assert drv.d.override_ended == ("reverted", "c-3")
    assert drv.tick() in (0.4, 1.0)


def test_commands_from_the_protocol_vectors() -> None:
    d = dimmer()
    vectors = [json.loads(line) for line in (VECTORS / "cmd.jsonl").read_text().splitlines()]
    valid = [v for v in vectors if v["valid"]]
    assert valid
    for v in valid:
        cmd = codec.decode("cmd", json.dumps(v["payload"]).encode())
        assert d.command(cmd) == (cmd["cmd"] in ("override", "revert"))
    assert d.override is None  # the revert came last


def test_wall_clock_jump_does_not_disturb_ramp_or_hold() -> None:
    def trace(jump: float) -> list[float]:
        drv = Drive(dimmer(), NIGHT)
        drv.inp.presence = True
        drv.run(0.1)
        drv.inp.presence = False
        out = drv.run(0.7)
        drv.now += jump  # NTP correction in the middle of the ramp
        out += drv.run(100)
        return out

    reference = trace(0)
    assert trace(1800) == reference  # half an hour forward, same program step
    assert trace(-1800) == reference
    assert trace(-86400 * 364) == reference  # 52 weeks back (bad RTC): a Tuesday, the 0.4 step


def test_controller_lost_changes_nothing() -> None:
    drv = Drive(dimmer(), local(2026, 11, 10, 12, 0))
    drv.d.set_override(0.5, expiry=local(2026, 11, 10, 20, 0), ident="c-9")
    seen = []
    for _ in range(24 * 60):  # a day without any message, one step a minute
        drv.now += 60
        drv.mono += 60000
        seen.append((drv.tick(), drv.d.state))
    assert seen[0] == (0.5, "override")
    assert (1.0, "program") in seen and (0.4, "program") in seen and (0.0, "program") in seen
    assert drv.d.override is None


def test_max_level_caps_presence() -> None:
    cfg = json.loads(json.dumps(CONFIG))
    cfg["dimming"]["max_level"] = 0.8
    drv = Drive(dimmer(cfg), NIGHT)
    drv.inp.presence = True
    assert max(drv.run(3)) == 0.8


def test_polar_night_keeps_the_sunset_step() -> None:
    cfg = json.loads(json.dumps(CONFIG))
    cfg["location"] = {"lat": 69.65, "lon": 18.96}
    cfg["dimming"]["calendar"] = []
    d = dimmer(cfg)
    noon = int(dt.datetime(2026, 12, 21, 11, 0, tzinfo=dt.UTC).timestamp())  # transit 10:44
    assert d.step(noon, 0, Inputs()) == 1.0  # sunset-10 min step at solar noon, no sunrise step
    assert d.step(noon - 3 * 3600, 0, Inputs()) == 0.4  # yesterday's 23:00 step


def test_a_control_step_is_cheap() -> None:
    drv = Drive(dimmer(), NIGHT)
    t0 = time.perf_counter()
    drv.run(1000)  # 10,000 steps
    assert time.perf_counter() - t0 < 1.0


def test_a_configure_that_fails_half_way_leaves_the_last_config_whole() -> None:
    """On the node a MemoryError can strike anywhere while a config is taken: nothing of a
    config that did not finish may be in force (the node went on with half a config once)."""
    d = dimmer()
    before = (d.cfg, d._p_level, d._hold_ms, d._n_thr, d._n_hold_ms)
    broken = json.loads(json.dumps(CONFIG))
    broken["version"] = 4
    broken["dimming"]["presence"]["hold_s"] = 30
    broken["dimming"]["noise_trigger"]["level"] = "loud"  # float() fails after the rest is built
    with pytest.raises(ValueError):
        d.configure(broken)
    assert (d.cfg, d._p_level, d._hold_ms, d._n_thr, d._n_hold_ms) == before
    assert d.cfg["version"] == 3
    fresh = Dimmer()
    with pytest.raises(ValueError):
        fresh.configure(broken)
    assert fresh.cfg is None and fresh.state == dimming.FAILSAFE
