"""One open alarm per condition (pole, node, code, src), also when two controllers sharing a
PostgreSQL registry raise it at the same moment: fleet.raise_alarm looks for the open alarm and
inserts one when there is none, so both could insert. The unique index ``alarms_open_once``
(migration 0006) refuses the second insert, and Registry.retrying runs that transaction again,
which then counts the first's alarm."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from controller.fleet import raise_alarm
from controller.registry.db import Registry, migrate
from controller.registry.models import Alarm, Owner, Pole
from tests.harness.postgres import Postgres


def _street(reg: Registry) -> None:
    with reg.session() as db:
        owner = Owner(slug="city", name="City")
        db.add(owner)
        db.flush()
        db.add(Pole(id="A1", lat=52.0, lon=4.3, owner_id=owner.id))


def test_two_controllers_raising_one_alarm_at_once_open_it_once(postgres: Postgres) -> None:
    url = postgres.create_database("alarm_race")
    regs = [Registry(url), Registry(url)]  # two controllers' connection pools
    _street(regs[0])
    both_looked = threading.Barrier(2, timeout=10)
    errors: list[BaseException] = []

    def controller(reg: Registry) -> None:
        tries = 0

        def work(db: Session) -> Alarm:
            nonlocal tries
            tries += 1
            if tries == 1:  # both look before either inserts: the race
                assert db.scalar(select(Alarm)) is None
                both_looked.wait()
            return raise_alarm(db, "A1", "n1", "sensorFault", "pm", "stuck")

        try:
            reg.retrying(work)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=controller, args=(r,)) for r in regs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    with regs[0].session() as db:
        alarms = db.scalars(select(Alarm)).all()
        assert [(a.state, a.count) for a in alarms] == [("active", 2)]
    for r in regs:
        r.close()


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_the_migration_clears_doubles_opened_before(
    engine: str, tmp_path: Path, postgres: Postgres
) -> None:
    """A registry with the same alarm open twice (as two controllers could open it) upgrades:
    the oldest stays open, the other is cleared with a reason; cleared alarms are left as they
    are, and a second open alarm is then refused."""
    url = (
        f"sqlite:///{tmp_path / 'r.db'}"
        if engine == "sqlite"
        else postgres.create_database("alarm_doubles")
    )
    migrate(url, "0005_outbox")
    engine_ = create_engine(url)
    with Session(engine_) as db, db.begin():  # the models add no column after 0005
        owner = Owner(slug="city", name="City")
        db.add(owner)
        db.flush()
        db.add(Pole(id="A1", lat=52.0, lon=4.3, owner_id=owner.id))
        db.flush()
        for state in ("cleared", "active", "active", "acknowledged"):
            db.add(Alarm(pole_id="A1", code="nodeOffline", severity="major", state=state))
            db.flush()
    engine_.dispose()
    migrate(url)
    reg = Registry(url)
    try:
        with reg.session() as db:
            alarms = db.scalars(select(Alarm).order_by(Alarm.id))
            got = [(a.id, a.state, a.cleared_by) for a in alarms]
        assert got == [
            (1, "cleared", None),
            (2, "active", None),
            (3, "cleared", "duplicate (migration 0006)"),
            (4, "cleared", "duplicate (migration 0006)"),
        ]
        with pytest.raises(Exception, match="alarms_open_once"), reg.session() as db:
            db.add(Alarm(pole_id="A1", node=None, code="nodeOffline", src="", severity="major"))
    finally:
        reg.close()
