"""Ingest against a real mosquitto: exactly once, dead letters, restarts, SIGKILL, shared
subscriptions, and that acknowledgement waits for the commit."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from controller.broker import Broker, BrokerConfig, free_port
from controller.ingest.worker import SHARED_GROUP, IngestWorker, leave_group
from controller.metrics import Metrics
from controller.settings import Settings
from controller.store.ops import OpsStore
from controller.store.sqlite import SqliteStore
from protocols import codec, topics
from tests.harness import procs
from tests.harness.controller_proc import ControllerProcess
from tests.harness.wait import until, wait_for
from tests.ingest_helpers import (
    QUANTITIES,
    T0,
    FailingStore,
    meas,
    meas_topic,
    publish_all,
    register,
)


def settings_for(broker: Broker, tmp: Path, **kw: object) -> Settings:
    return Settings(mqtt_url=broker.url, data_dir=tmp, **kw)  # type: ignore[arg-type]


def count_points(db: Path) -> tuple[int, int]:
    conn = sqlite3.connect(db)
    try:
        points = conn.execute(  # the store keeps points in one of two tables (store/sqlite.py)
            "SELECT (SELECT count(*) FROM readings) + (SELECT count(*) FROM recent)"
        ).fetchone()[0]
        batches = conn.execute("SELECT count(*) FROM batches").fetchone()[0]
        return points, batches
    finally:
        conn.close()


class Harness:
    """An in-process ingest worker with its own stores."""

    def __init__(self, settings: Settings, store: SqliteStore | None = None) -> None:
        self.settings = settings
        self.store = store or SqliteStore(settings.database_path)
        self.ops = OpsStore(settings.data_dir / "ops.db", settings.dead_letter_max)
        self.worker = IngestWorker(settings, self.store, self.ops, Metrics())


@pytest.mark.slow
def test_one_malformed_among_ten_thousand(broker: Broker, tmp_path: Path) -> None:
    h = Harness(settings_for(broker, tmp_path))
    good = [(meas_topic(f"p{i % 100}"), meas(i)) for i in range(10_000)]
    bad = (
        meas_topic("p7"),
        b'{"boot":1,"seq":5,"readings":[{"ts":%d,"q":"pm25","v":"x"}]}' % T0,
    )
    messages = [*good[:5000], bad, *good[5000:]]

    async def main() -> None:
        task = asyncio.create_task(h.worker.run())
        await asyncio.wait_for(h.worker.connected.wait(), 10)
        await asyncio.to_thread(publish_all, broker, messages)
        await until(lambda: h.worker.stats.messages >= len(messages), 60)
        task.cancel()

    asyncio.run(main())
    assert count_points(h.settings.database_path) == (100_000, 10_000)
    assert h.worker.stats.dead_letters == 1
    assert h.worker.stats.dropped_by_reason == {"readings[0].v": 1}
    (dead,) = h.ops.dead_letters()
    assert dead["field"] == "readings[0].v" and dead["topic"] == bad[0]
    assert "number" in dead["reason"]


def test_an_in_process_worker_leaves_the_gc_alone(broker: Broker, tmp_path: Path) -> None:
    """Freezing the GC is for the controller's and the ingest child's process (their entry
    points do it), never for whoever runs a worker: here, the test session."""
    h = Harness(settings_for(broker, tmp_path))
    before = gc.get_freeze_count(), gc.get_threshold()

    async def main() -> None:
        task = asyncio.create_task(h.worker.run())
        await asyncio.wait_for(h.worker.connected.wait(), 10)
        await asyncio.to_thread(publish_all, broker, [(meas_topic("p1"), meas(1))])
        await until(lambda: h.worker.stats.messages >= 1, 30, "the message stored")
        task.cancel()

    asyncio.run(main())
    assert count_points(h.settings.database_path) == (len(QUANTITIES), 1)
    assert (gc.get_freeze_count(), gc.get_threshold()) == before


def test_resends_are_stored_once_and_state_events_acks_kept(broker: Broker, tmp_path: Path) -> None:
    h = Harness(settings_for(broker, tmp_path))
    pole = "p1"
    state = codec.encode(
        topics.STATE,
        {
            "status": "online",
            "ts": T0,
            "fw": "0.1.0",
            "boot": 1,
            "uptime_s": 5,
            "heap_free": 50000,
            "reset_cause": "power_on",
            "level": 0.4,
        },
    )
    event = codec.encode(
        topics.EVENT,
        {
            "boot": 1,
            "seq": 1,
            "ts": T0,
            "kind": "alarm",
            "code": "lampFailure",
            "active": True,
        },
    )
    ack = codec.encode(topics.ACK, {"id": "c-1", "kind": "cmd", "ts": T0, "status": "applied"})
    msgs = [(meas_topic(pole), meas(i)) for i in range(50)]
    msgs += msgs[:20]  # resent batches
    msgs += [
        (str(topics.Topic(pole, "n1", ch)), p)
        for ch, p in (
            (topics.STATE, state),
            (topics.EVENT, event),
            (topics.EVENT, event),
            (topics.ACK, ack),
        )
    ]

    async def main() -> None:
        task = asyncio.create_task(h.worker.run())
        await asyncio.wait_for(h.worker.connected.wait(), 10)
        await asyncio.to_thread(publish_all, broker, msgs)
        await until(lambda: h.worker.stats.messages >= len(msgs), 60)
        task.cancel()

    asyncio.run(main())
    assert count_points(h.settings.database_path) == (500, 50)
    assert h.worker.stats.duplicate_points == 200
    (node,) = h.ops.node_states()
    assert (node["pole"], node["status"], node["fw"], node["level"]) == (
        pole,
        "online",
        "0.1.0",
        0.4,
    )
    assert len(h.ops.events()) == 1 and h.ops.events()[0]["code"] == "lampFailure"
    assert h.ops.acks()[0]["status"] == "applied"


@pytest.mark.slow
def test_broker_restart_ingest_resumes(tmp_path: Path) -> None:
    broker = Broker(tmp_path / "b", BrokerConfig(port=free_port(), persistence_dir=tmp_path / "b"))
    broker.start()
    h = Harness(settings_for(broker, tmp_path))

    async def main() -> None:
        task = asyncio.create_task(h.worker.run())
        await asyncio.wait_for(h.worker.connected.wait(), 10)
        await asyncio.to_thread(
            publish_all, broker, [(meas_topic("p1"), meas(i)) for i in range(100)]
        )
        await until(lambda: h.worker.stats.messages >= 100, 60)
        await asyncio.to_thread(broker.restart)
        await until(lambda: h.worker.stats.connects >= 2, 30)
        await asyncio.to_thread(
            publish_all, broker, [(meas_topic("p1"), meas(i)) for i in range(100, 200)]
        )
        await until(lambda: count_points(h.settings.database_path)[1] >= 200, 30)
        task.cancel()

    try:
        asyncio.run(main())
    finally:
        broker.stop()
    assert count_points(h.settings.database_path) == (2000, 200)


def test_nothing_is_acknowledged_before_it_is_stored(broker: Broker, tmp_path: Path) -> None:
    """A failed write is not acknowledged: the broker sends the messages again and they are
    stored."""
    settings = settings_for(broker, tmp_path)
    h = Harness(settings, FailingStore(settings.database_path))

    async def main() -> None:
        task = asyncio.create_task(h.worker.run())
        await asyncio.wait_for(h.worker.connected.wait(), 10)
        await asyncio.to_thread(
            publish_all, broker, [(meas_topic("p1"), meas(i)) for i in range(300)]
        )
        await until(lambda: count_points(settings.database_path)[1] >= 300, 30)
        task.cancel()

    asyncio.run(main())
    assert h.store.failures == 0  # the injected failure happened
    assert h.worker.stats.connects >= 2  # and the worker reconnected to get the messages again
    assert count_points(settings.database_path) == (3000, 300)


def test_two_workers_share_the_stream_exactly_once(broker: Broker, tmp_path: Path) -> None:
    """MQTT 5 shared subscription ($share/ingest/...) through mosquitto: each message goes to one
    of the workers, none to both, none lost."""
    workers = [
        Harness(
            Settings(
                mqtt_url=broker.url,
                data_dir=tmp_path / f"w{i}",
                mqtt_client_id=f"ingest-{i}",
                mqtt_shared_group="ingest",
            )
        )
        for i in range(2)
    ]

    async def main() -> None:
        tasks = [asyncio.create_task(w.worker.run()) for w in workers]
        for w in workers:
            await asyncio.wait_for(w.worker.connected.wait(), 10)
        await asyncio.to_thread(
            publish_all, broker, [(meas_topic(f"p{i % 20}"), meas(i)) for i in range(2000)]
        )
        # counted after each batch's commit (IngestWorker._store)
        await until(lambda: sum(w.worker.stats.messages for w in workers) >= 2000, 60)
        for t in tasks:
            t.cancel()

    asyncio.run(main())
    seen = []
    for w in workers:
        conn = sqlite3.connect(w.settings.database_path)
        seen.append({tuple(r) for r in conn.execute("SELECT pole, boot, seq FROM batches")})
        conn.close()
    assert all(len(s) > 200 for s in seen), "both workers take a share"
    assert not seen[0] & seen[1]
    assert len(seen[0] | seen[1]) == 2000


def test_a_session_that_left_the_group_takes_no_more_of_the_stream(
    broker: Broker, tmp_path: Path
) -> None:
    """mosquitto hands a stopped member of a shared group its turn of the stream, kept in its
    persistent session, until the session is taken up again or expires. ``streetpole
    ingest-leave`` (leave_group) ends the session: the member left takes every message."""
    gone, kept = (
        Harness(
            Settings(
                mqtt_url=broker.url,
                data_dir=tmp_path / name,
                mqtt_client_id=f"ingest-{name}",
                mqtt_shared_group="ingest",
            )
        )
        for name in ("gone", "kept")
    )

    async def main() -> None:
        first = asyncio.create_task(gone.worker.run())
        await asyncio.wait_for(gone.worker.connected.wait(), 10)
        first.cancel()  # stopped: its session stays in the group
        assert await leave_group(gone.settings) == ["ingest-gone"]
        task = asyncio.create_task(kept.worker.run())
        await asyncio.wait_for(kept.worker.connected.wait(), 10)
        await asyncio.to_thread(
            publish_all, broker, [(meas_topic(f"p{i % 20}"), meas(i)) for i in range(400)]
        )
        await until(lambda: kept.worker.stats.messages >= 400, 30)
        task.cancel()

    asyncio.run(main())
    assert count_points(kept.settings.database_path)[1] == 400


def test_the_ingest_leave_command_names_the_sessions_it_ended(
    broker: Broker, tmp_path: Path
) -> None:
    """`streetpole ingest-leave` with a controller's settings (two ingest processes): both of
    its sessions, and only from ``--from`` on when given."""
    from typer.testing import CliRunner

    from streetpole.cli import app

    env = {
        "STREETPOLE_MQTT_URL": broker.url,
        "STREETPOLE_DATA_DIR": str(tmp_path),
        "STREETPOLE_INGEST_PROCESSES": "2",
        "STREETPOLE_MQTT_CLIENT_ID": "ctl",
    }
    r = CliRunner().invoke(app, ["ingest-leave"], env=env)
    assert r.exit_code == 0, r.output
    assert r.output.split() == ["left:", "ctl", "left:", "ctl-1"]
    r = CliRunner().invoke(app, ["ingest-leave", "--from", "1"], env=env)
    assert r.exit_code == 0 and r.output.split() == ["left:", "ctl-1"], r.output
    assert broker.log().count("New client connected") >= 3


@pytest.mark.slow
def test_sigkill_mid_ingest_loses_nothing_and_doubles_nothing(
    broker: Broker, tmp_path: Path
) -> None:
    ctl = ControllerProcess(tmp_path / "ctl", {"STREETPOLE_MQTT_URL": broker.url})
    register(f"sqlite:///{tmp_path / 'ctl' / 'registry.db'}", [f"p{i}" for i in range(60)])
    ctl.start()
    total = 6000
    messages = [(meas_topic(f"p{i % 60}"), meas(i)) for i in range(total)]
    done = threading.Event()

    def publish() -> None:
        publish_all(broker, messages)  # returns when the broker acknowledged every message
        done.set()

    threading.Thread(target=publish, daemon=True).start()
    db = tmp_path / "ctl" / "streetpole.db"
    wait_for(lambda: db.exists() and count_points(db)[1] >= total // 4, 60, "a quarter stored")
    stored_before = count_points(db)[1]
    ctl.kill()
    assert 0 < stored_before < total, "the kill should land mid-ingest"
    assert done.wait(60)
    ctl.start()
    wait_for(lambda: count_points(db)[1] >= total, 60, "everything stored")
    ctl.stop()
    assert count_points(db) == (total * len(QUANTITIES), total)


@pytest.mark.slow
def test_ingest_over_tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The subscriber (controller/ingest/subscriber.py) over TLS, the broker's certificate checked
    against the default CAs: every message stored, on one connection."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from tests.test_mqtt_auth import _cert, _write_pem

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _cert("Streetpole test CA", ca_key, None, ca=True)
    ca_pem = _write_pem(tmp_path / "ca.pem", ca, ca_key)
    server = _write_pem(
        tmp_path / "server.pem", _cert("127.0.0.1", key, (ca.subject, ca_key), ca=False), key
    )
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_pem))  # the worker trusts the default CAs
    config = BrokerConfig(
        port=free_port(),
        tls_port=free_port(),
        cafile=ca_pem,
        certfile=server,
        keyfile=server.with_suffix(".key"),
    )
    broker = Broker(tmp_path / "broker", config)
    broker.start()
    try:
        h = Harness(Settings(mqtt_url=f"mqtts://127.0.0.1:{config.tls_port}", data_dir=tmp_path))
        messages = [(meas_topic(f"p{i % 30}"), meas(i)) for i in range(3000)]

        async def main() -> None:
            task = asyncio.create_task(h.worker.run())
            await asyncio.wait_for(h.worker.connected.wait(), 15)
            await asyncio.to_thread(publish_all, broker, messages)  # plain listener
            await until(lambda: h.worker.stats.messages >= len(messages), 60)
            task.cancel()

        asyncio.run(main())
        assert count_points(h.settings.database_path) == (30_000, 3000)
        assert h.worker.stats.connects == 1
    finally:
        broker.stop()


def _gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists():
        try:  # a zombie has not been reaped by its (new) parent yet: it runs no more
            if procs.stat(pid)[0] == "Z":
                return True
        except OSError:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# mosquitto's log line when the ingest child subscribes to the measurements' shared stream (the
# broker below logs subscriptions: "<client id> <qos> <filter>")
CHILD_SUBSCRIBED = (
    f"streetpole-controller-1 1 $share/{SHARED_GROUP}/{topics.subscription(topics.MEAS)}"
)


def _child_up(ctl: ControllerProcess, broker: Broker, subscribed: int, seen: list[int]) -> int:
    """The controller's one ingest child not in ``seen``, once it has subscribed."""
    assert ctl.proc is not None
    pid = ctl.proc.pid
    kids = wait_for(lambda: [k for k in procs.children(pid) if k not in seen], 20, "a child")
    seen.extend(kids)
    assert len(kids) == 1
    wait_for(lambda: broker.log().count(CHILD_SUBSCRIBED) > subscribed, 20, "its subscription")
    return int(kids[0])


@pytest.mark.slow
def test_ingest_in_two_processes_stores_everything_once(tmp_path: Path) -> None:
    """STREETPOLE_INGEST_PROCESSES=2: the controller starts a child that shares the stream and
    the SQLite file; every message is stored once, both take a share, and the child ends with
    the controller, even when that is killed (else it would fight the next one's child); a
    child that dies is started again."""
    config = BrokerConfig(port=free_port(), extra=["log_type subscribe"])
    broker = Broker(tmp_path / "broker", config)
    broker.start()
    env = {"STREETPOLE_MQTT_URL": broker.url, "STREETPOLE_INGEST_PROCESSES": "2"}
    ctl = ControllerProcess(tmp_path / "ctl", env)
    register(f"sqlite:///{tmp_path / 'ctl' / 'registry.db'}", [f"p{i}" for i in range(40)])
    db = tmp_path / "ctl" / "streetpole.db"
    seen: list[int] = []
    total = 0
    try:
        for round_ in range(2):
            subscribed = broker.log().count(CHILD_SUBSCRIBED)
            ctl.start()
            kid = _child_up(ctl, broker, subscribed, seen)
            if round_ == 1:  # a child that dies is started again
                subscribed = broker.log().count(CHILD_SUBSCRIBED)
                os.kill(kid, signal.SIGKILL)
                kid = _child_up(ctl, broker, subscribed, seen)
                assert kid == seen[-1] != seen[-2]
            messages = [(meas_topic(f"p{i % 40}"), meas(i)) for i in range(total, total + 3000)]
            publish_all(broker, messages)
            total += len(messages)
            wait_for(lambda n=total: count_points(db)[1] >= n, 60, "everything stored")
            assert count_points(db) == (total * len(QUANTITIES), total)
            assert 0 < ctl.ingest_share() < len(messages), "the child takes a share"
            if round_ == 0:
                ctl.kill()  # SIGKILL: the child must notice by itself
            else:
                ctl.stop()
            assert _gone(kid, 10), "the ingest child outlived the controller"
    finally:
        ctl.stop()
        for pid in seen:  # only if the test failed: do not leave them running
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        broker.stop()
    assert not broker.dropped_messages_logged(), broker.log()
