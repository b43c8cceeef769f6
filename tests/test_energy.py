"""Energy against the always-on baseline (controller/energy.py): only the time the lamps
reported for counts. The old arithmetic counted every dark hour of every day asked for, so a
street that started this evening "saved 100 %" of the days before and of the rest of the night."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.energy import dark_hours, pole_energy, summary
from controller.registry.models import Module, Node, Pole
from controller.store.base import Batch
from controller.store.sqlite import SqliteStore

RATED_W = 60.0
DAY1 = dt.date(2026, 11, 10)  # a November night in Rotterdam: dark from about 16:00 to 07:00
T0 = int(dt.datetime(2026, 11, 10, tzinfo=dt.UTC).timestamp())
HOUR = 3600


def _pole() -> Pole:
    return Pole(
        id="P000",
        lat=51.88,
        lon=4.53,
        nodes=[Node(node="n1", mqtt_username="P000/n1", update_key="00")],
        modules=[Module(type="lighting", node="n1", src="lamp", rated_power_w=RATED_W)],
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "ts.db")
    try:
        yield s
    finally:
        s.close()


def _report(store: SqliteStore, start: int, end: int, level: float = 0.5, period: int = 60) -> None:
    """The lamp's energy readings, one per period, each for the period before its ts."""
    readings = [
        {
            "ts": t,
            "q": "energyConsumed",
            "v": RATED_W * level * period / HOUR,
            "dur": period,
            "src": "lamp",
        }
        for t in range(start + period, end + 1, period)
    ]
    store.write(
        [Batch("P000", "n1", 1, i, readings[i : i + 100]) for i in range(0, len(readings), 100)]
    )


def test_minutes_of_data_tonight_count_minutes_of_baseline(store: SqliteStore) -> None:
    """Ten minutes of reports at 20:00 UTC: the baseline is ten minutes at full power, not the
    whole night (old code: about 15 dark hours, 900 Wh, "saving 99 %")."""
    _report(store, T0 + 20 * HOUR, T0 + 20 * HOUR + 600)
    got = summary([pole_energy(store, _pole(), DAY1, DAY1, now=T0 + 20 * HOUR + 660)], DAY1, DAY1)
    assert got["baseline_wh"] == pytest.approx(RATED_W * 600 / HOUR)  # 10 Wh
    assert got["energy_wh"] == pytest.approx(RATED_W * 0.5 * 600 / HOUR)
    assert got["saving_pct"] == pytest.approx(50.0)
    assert got["covered_h"] == pytest.approx(600 / HOUR, abs=0.01)
    assert got["covered_from"] == "2026-11-10T20:00:00Z"
    assert got["covered_to"] == "2026-11-10T20:10:00Z"


def test_days_before_the_street_existed_are_not_savings(store: SqliteStore) -> None:
    """A week asked for, data only on its last day: the first six days have no baseline."""
    last = DAY1 + dt.timedelta(days=6)
    start = T0 + 6 * 86400
    _report(store, start, start + 86400, period=300)
    got = summary([pole_energy(store, _pole(), DAY1, last, now=start + 2 * 86400)], DAY1, last)
    days = got["days"]
    assert [d["baseline_wh"] for d in days[:6]] == [0.0] * 6
    assert [d["covered_h"] for d in days[:6]] == [0.0] * 6
    # the one whole day: the always-on lamp burns through all its dark hours
    assert days[6]["covered_h"] == pytest.approx(24.0)
    assert days[6]["baseline_wh"] == pytest.approx(
        RATED_W * dark_hours(last, 51.88, 4.53), rel=1e-3
    )
    # the reading stamped at midnight belongs to the next day (readings count by their ts)
    assert got["energy_wh"] == pytest.approx(RATED_W * 0.5 * (86400 - 300) / HOUR)
    assert got["saving_pct"] == pytest.approx(
        100 * (1 - got["energy_wh"] / got["baseline_wh"]), abs=0.1
    )


def test_daylight_reports_add_no_baseline_and_a_gap_is_left_out(store: SqliteStore) -> None:
    """Reports from 10:00 to 12:00 (daylight) and from 22:00 to 23:00, nothing between."""
    _report(store, T0 + 10 * HOUR, T0 + 12 * HOUR, level=0.0)
    _report(store, T0 + 22 * HOUR, T0 + 23 * HOUR)
    got = summary([pole_energy(store, _pole(), DAY1, DAY1, now=T0 + 86400)], DAY1, DAY1)
    assert got["baseline_wh"] == pytest.approx(RATED_W)  # the one dark hour
    assert got["covered_h"] == pytest.approx(3.0)


def test_nothing_after_now_counts(store: SqliteStore) -> None:
    """A reading stamped in the future (a node's clock ahead) does not stretch the baseline."""
    _report(store, T0 + 20 * HOUR, T0 + 21 * HOUR)
    got = summary([pole_energy(store, _pole(), DAY1, DAY1, now=T0 + 20 * HOUR + 1800)], DAY1, DAY1)
    assert got["baseline_wh"] == pytest.approx(RATED_W / 2)


def test_a_group_sums_its_poles_and_covers_their_union(store: SqliteStore) -> None:
    _report(store, T0 + 20 * HOUR, T0 + 21 * HOUR)
    other = _pole()
    other.id = "P001"
    for n in other.nodes:
        n.pole_id = "P001"
    readings = [
        {"ts": T0 + 21 * HOUR + 60 * i, "q": "energyConsumed", "v": 1.0, "dur": 60, "src": "lamp"}
        for i in range(1, 31)
    ]
    store.write([Batch("P001", "n1", 1, 0, readings)])
    now = T0 + 86400
    both = [pole_energy(store, p, DAY1, DAY1, now=now) for p in (_pole(), other)]
    got = summary(both, DAY1, DAY1)
    assert got["baseline_wh"] == pytest.approx(RATED_W * 1.5)
    assert got["energy_wh"] == pytest.approx(30.0 + 30.0)
    assert got["covered_from"] == "2026-11-10T20:00:00Z"
    assert got["covered_to"] == "2026-11-10T21:30:00Z"
    assert got["covered_h"] == pytest.approx(1.5)


def test_no_data_gives_no_saving(store: SqliteStore) -> None:
    got = summary([pole_energy(store, _pole(), DAY1, DAY1, now=T0 + 86400)], DAY1, DAY1)
    assert got["baseline_wh"] == 0.0 and got["saving_pct"] is None
    assert got["covered_from"] is None
