"""A node provisioned but never heard raises ``nodeNeverHeard`` after a grace period
(fleet.mark_never_heard, run by the controller's fleet loop), once, and the alarm clears when
the node is heard. Before, such a node stayed "unknown" with no alarm at all."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller import fleet
from controller.ingest.decode import Sorted
from controller.registry.db import Registry
from controller.registry.models import Alarm, Node, Owner, Pole
from controller.settings import Settings
from controller.store.base import Batch

GRACE_S = 3600


@pytest.fixture
def reg(tmp_path: Path) -> Iterator[Registry]:
    r = Registry(f"sqlite:///{tmp_path / 'registry.db'}")
    now = time.time()
    with r.session() as db:
        o = Owner(slug="city", name="City")
        db.add(o)
        db.flush()
        for pid, age in (("P000", GRACE_S + 60), ("P001", GRACE_S - 60)):
            db.add(Pole(id=pid, lat=51.88, lon=4.53, owner_id=o.id))
            db.add(
                Node(
                    pole_id=pid,
                    node="n1",
                    mqtt_username=f"{pid}/n1",
                    update_key="00",
                    provisioned_at=now - age,
                )
            )
    try:
        yield r
    finally:
        r.close()


def _open(reg: Registry) -> list[tuple[str, str, int, str]]:
    with reg.session() as db:
        return [
            (a.pole_id, a.code, a.count, a.severity)
            for a in db.query(Alarm).filter(Alarm.state == "active")
        ]


def test_a_node_never_heard_after_the_grace_raises_once_and_clears_when_heard(
    reg: Registry,
) -> None:
    with reg.session() as db:
        assert fleet.mark_never_heard(db, time.time(), GRACE_S) == 1
    assert _open(reg) == [("P000", "nodeNeverHeard", 1, "major")]  # P001 is still in its grace
    with reg.session() as db:  # the next rounds raise nothing more
        assert fleet.mark_never_heard(db, time.time(), GRACE_S) == 0
        assert db.query(Node).filter_by(pole_id="P000").one().status == "silent"
    assert _open(reg) == [("P000", "nodeNeverHeard", 1, "major")]
    reading = {"ts": int(time.time()), "q": "energyConsumed", "v": 1.0, "dur": 60, "src": "lamp"}
    with reg.session() as db:  # its first batch arrives
        fleet.apply_ingest(
            db, Sorted(batches=[Batch("P000", "n1", 1, 1, [reading])]), fleet.Heard()
        )
    assert _open(reg) == []
    with reg.session() as db:
        assert db.query(Node).filter_by(pole_id="P000").one().status == "online"
        assert fleet.mark_never_heard(db, time.time() + 10 * GRACE_S, GRACE_S) == 1  # P001 now


def test_a_node_heard_once_is_never_raised_as_never_heard(reg: Registry) -> None:
    state = {"status": "online", "ts": int(time.time()), "fw": "0.1.0", "boot": 1}
    with reg.session() as db:
        fleet.apply_ingest(db, Sorted(states=[("P000", "n1", state)]), fleet.Heard())
        assert fleet.mark_never_heard(db, time.time(), GRACE_S) == 0
    assert _open(reg) == []


def test_the_grace_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().never_heard_grace_s == 3600
    monkeypatch.setenv("STREETPOLE_NEVER_HEARD_GRACE_S", "120")
    assert Settings().never_heard_grace_s == 120
