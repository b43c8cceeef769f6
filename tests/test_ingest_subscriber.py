"""Ingest's subscriber (controller/ingest/subscriber.py) against a broker that misbehaves: frames
that are not MQTT, a refusal, silence. Each ends the connection with a reason and the worker
connects again; nothing crashes, and a PUBACK still goes out only after the commit.

The misbehaving broker is a scripted MQTT server on loopback, built on the same framing; the
well-behaved cases run against mosquitto in test_ingest.py."""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from controller.ingest.subscriber import Session, SessionEnded, Subscriber
from controller.ingest.worker import IngestWorker
from controller.metrics import Metrics
from controller.settings import Settings
from controller.store.base import TimeSeriesStore
from controller.store.ops import OpsStore
from controller.store.postgres import PostgresStore
from controller.store.sqlite import SqliteStore
from protocols import mqtt_framing as mf
from tests.harness.postgres import Postgres, fresh_schema
from tests.ingest_helpers import meas, meas_topic

Packet = tuple[int, int, int, str | None, bytes]


class ScriptedBroker:
    """Answers CONNECT, UNSUBSCRIBE and SUBSCRIBE as a broker does; after the SUBACK of the
    n-th connection it sends ``after_subscribe[n]`` (raw bytes). Records what each connection
    received."""

    def __init__(self, after_subscribe: list[bytes], connack_code: int = 0) -> None:
        self.after_subscribe = after_subscribe
        self.connack_code = connack_code
        self.answer_pings = True
        self.received: list[list[Packet]] = []
        self.stored_at_puback: list[int] = []  # batches in the database at each PUBACK
        self.count_batches: Callable[[], int] | None = None  # in the database, now
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        n = len(self.received)
        got: list[Packet] = []
        self.received.append(got)
        rx = mf.Receiver(1 << 20)
        while data := await reader.read(65536):
            for p in rx.receive_data(data):
                got.append(p)
                pid = p[2].to_bytes(2, "big")
                if p[0] == 1:  # CONNECT
                    writer.write(bytes((0x20, 2, 0, self.connack_code)))
                elif p[0] == 10:  # UNSUBSCRIBE
                    writer.write(b"\xb0\x02" + pid)
                elif p[0] == 8:  # SUBSCRIBE: grant QoS 1 to each filter
                    filters = _count_filters(p[4])
                    writer.write(bytes((0x90, 2 + filters)) + pid + b"\x01" * filters)
                    if n < len(self.after_subscribe):
                        writer.write(self.after_subscribe[n])
                elif p[0] == 12 and self.answer_pings:
                    writer.write(b"\xd0\x00")
                elif p[0] == mf.PUBACK and self.count_batches is not None:
                    self.stored_at_puback.append(self.count_batches())
        writer.close()


def _count_filters(body: bytes) -> int:
    i = count = 0
    while i < len(body):
        i += 2 + int.from_bytes(body[i : i + 2], "big") + 1
        count += 1
    return count


def _batches(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT count(*) FROM batches").fetchone()[0])
    finally:
        conn.close()


def _pg_batches(url: str) -> int:
    with psycopg.connect(url) as conn:
        return int(conn.execute("SELECT count(*) FROM batches").fetchone()[0])  # type: ignore[index]


def _worker(port: int, tmp: Path, store: TimeSeriesStore | None = None) -> IngestWorker:
    s = Settings(mqtt_url=f"mqtt://127.0.0.1:{port}", data_dir=tmp)
    return IngestWorker(
        s,
        store or SqliteStore(s.database_path),
        OpsStore(tmp / "ops.db", s.dead_letter_max),
        Metrics(),
    )


async def _until(cond: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.02)


GOOD = mf.send_publish(meas_topic("p1"), meas(1), 1, False, False, 7)


@pytest.mark.parametrize(
    "garbage,reason",
    [
        (b"\x30\xff\xff\xff\xff\x01", "longer than four bytes"),
        (b"\xf0\x00", "reserved packet type"),
        (b"\x36\x05\x00\x01a\x00\x01", "QoS 3"),
        (b"\x32\x05\x00\x09p\x00\x01", "runs past the packet"),
        (b"\x30\x03\x00\x01\xff", "not UTF-8"),
        (b"\x90\x03\x12\x34\x01", "unexpected packet type 9"),  # a SUBACK nobody asked for
        (b"\x20\x02\x00\x00", "unexpected packet type 2"),  # a second CONNACK
        (b"\x34\x06\x00\x01a\x00\x01x", "unexpected packet type 3"),  # QoS 2: not subscribed so
    ],
)
def test_malformed_frames_end_the_connection_with_a_reason_then_ingest_goes_on(
    tmp_path: Path, garbage: bytes, reason: str
) -> None:
    """A good message before the garbage on the first connection is not acknowledged (the
    connection ends before its batch is flushed); it comes again on the second and is stored,
    and acknowledged only after the commit."""
    broker = ScriptedBroker([GOOD + garbage, GOOD])

    async def main() -> IngestWorker:
        await broker.start()
        worker = _worker(broker.port, tmp_path)
        broker.count_batches = functools.partial(_batches, worker.settings.database_path)
        task = asyncio.create_task(worker.run())
        await _until(lambda: worker.stats.connects >= 2 and bool(broker.stored_at_puback))
        task.cancel()
        await broker.stop()
        return worker

    worker = asyncio.run(main())
    assert worker.stats.last_error is not None and reason in worker.stats.last_error
    assert "not MQTT" in worker.stats.last_error or "unexpected" in worker.stats.last_error
    assert not [p for p in broker.received[0] if p[0] == mf.PUBACK]
    assert [p[2] for p in broker.received[1] if p[0] == mf.PUBACK] == [7]
    assert broker.stored_at_puback == [1]  # committed before the PUBACK
    assert worker.stats.messages == 1


def test_a_puback_waits_for_the_postgresql_commit(tmp_path: Path, postgres: Postgres) -> None:
    """As above with the PostgreSQL store: the message cut short by garbage is not
    acknowledged, and its resend is acknowledged only once its batch is committed (counted
    from another connection when the PUBACK arrives)."""
    broker = ScriptedBroker([GOOD + b"\xf0\x00", GOOD])
    url = fresh_schema(postgres)
    store = PostgresStore(url)

    async def main() -> IngestWorker:
        await broker.start()
        worker = _worker(broker.port, tmp_path, store)
        broker.count_batches = functools.partial(_pg_batches, url)
        task = asyncio.create_task(worker.run())
        await _until(lambda: worker.stats.connects >= 2 and bool(broker.stored_at_puback))
        task.cancel()
        await broker.stop()
        return worker

    asyncio.run(main())
    store.close()
    assert not [p for p in broker.received[0] if p[0] == mf.PUBACK]
    assert [p[2] for p in broker.received[1] if p[0] == mf.PUBACK] == [7]
    assert broker.stored_at_puback == [1]


def test_a_refused_connect_says_why_and_is_tried_again(tmp_path: Path) -> None:
    broker = ScriptedBroker([], connack_code=5)

    async def main() -> IngestWorker:
        await broker.start()
        worker = _worker(broker.port, tmp_path)
        task = asyncio.create_task(worker.run())
        await _until(lambda: len(broker.received) >= 2)
        task.cancel()
        await broker.stop()
        return worker

    worker = asyncio.run(main())
    assert worker.stats.last_error == "connection refused: not authorised"
    assert worker.stats.connects == 0


def test_a_silent_broker_is_declared_dead_after_one_and_a_half_keepalives() -> None:
    broker = ScriptedBroker([])
    broker.answer_pings = False

    async def main() -> float:
        await broker.start()
        session = Session("127.0.0.1", broker.port, "silent", keepalive=1, timeout=5)
        sub = await Subscriber.connect(session, lambda ps: None)
        await sub.subscribe([("a/#", 1)])
        started = time.monotonic()
        with pytest.raises(SessionEnded, match=r"nothing from the broker in 1\.5 s"):
            await asyncio.wait_for(sub.run(), 10)
        await broker.stop()
        return time.monotonic() - started

    took = asyncio.run(main())
    assert 1.5 <= took < 5
    assert [p[0] for p in broker.received[0]].count(12) >= 2  # it pinged, every half keepalive


def test_a_refused_subscription_ends_the_connection() -> None:
    async def main() -> None:
        async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            rx = mf.Receiver()
            while data := await reader.read(4096):
                for p in rx.receive_data(data):
                    if p[0] == 1:
                        writer.write(b"\x20\x02\x00\x00")
                    elif p[0] == 8:
                        writer.write(b"\x90\x03" + p[2].to_bytes(2, "big") + b"\x80")

        server = await asyncio.start_server(refuse, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        sub = await Subscriber.connect(Session("127.0.0.1", port, "x"), lambda ps: None)
        with pytest.raises(SessionEnded, match="subscription refused"):
            await sub.subscribe([("$share/g/a/#", 1)])
        server.close()

    asyncio.run(main())
