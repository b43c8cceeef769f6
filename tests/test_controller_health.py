"""The controller under load and faults (issue 19, items 2-5): many concurrent requests, a held
registry lock, a full disk, a corrupt store; readiness that says so; login back-off.

The controller is served by uvicorn on loopback (tests/harness/server.py) where answer times
matter, else through the TestClient; the registry is a real SQLite file, the lock is taken by a
real second connection, "disk full" is SQLite's own max_page_count on the registry.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from controller.app import create_app
from controller.broker import Broker
from controller.registry.accounts import create_token, create_user
from controller.registry.db import Registry
from controller.settings import Settings
from controller.store.sqlite import SqliteStore
from spnode.update import pack
from tests.harness.api import Api, running_api, wait_for
from tests.harness.controller_proc import ControllerProcess
from tests.harness.load import burst
from tests.harness.paths import ROOT
from tests.harness.server import serve

PASSWORD = "correct horse battery"
QUIET = {"ingest_enabled": False, "dispatch_enabled": False}


def accounts(data: Path) -> dict[str, str]:
    reg = Registry(f"sqlite:///{data / 'registry.db'}")
    try:
        create_user(reg, "admin", PASSWORD, "admin")
        create_user(reg, "vera", PASSWORD, "viewer")
        return {"admin": create_token(reg, "admin", "t"), "vera": create_token(reg, "vera", "t")}
    finally:
        reg.close()


@contextmanager
def served(data: Path, **settings: Any) -> Iterator[str]:
    with serve(create_app(Settings(data_dir=data, _env_file=None, **{**QUIET, **settings}))) as url:
        yield url


@contextmanager
def registry_write_lock(data: Path) -> Iterator[None]:
    """Another connection holds the registry's write lock (as a wedged writer would)."""
    db = sqlite3.connect(data / "registry.db", isolation_level=None, timeout=10)
    db.execute("BEGIN IMMEDIATE")
    db.execute("UPDATE users SET active = active")
    try:
        yield
    finally:
        db.execute("ROLLBACK")
        db.close()


def refused_properly(r: httpx.Response) -> bool:
    return r.status_code == 503 and "retry-after" in r.headers


def in_flight(metrics: str) -> float:
    """Requests holding a turn at the registry, from /metrics (controller/api/admission.py)."""
    (value,) = (
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("streetpole_api_requests_in_flight ")
    )
    return value


# ---- item 2: load ------------------------------------------------------------------------------
@contextmanager
def controller_process(data: Path) -> Iterator[str]:
    """The controller in a process of its own: the load below must not share its interpreter."""
    ctl = ControllerProcess(
        data, {"STREETPOLE_INGEST_ENABLED": "false", "STREETPOLE_DISPATCH_ENABLED": "false"}
    )
    ctl.start()
    try:
        yield ctl.url
    finally:
        ctl.stop()


@pytest.mark.slow
def test_200_concurrent_requests_never_500_and_healthz_stays_fast(tmp_path: Path) -> None:
    tokens = accounts(tmp_path)
    with controller_process(tmp_path) as url:
        b = burst(url, tokens["vera"], ["/api/poles", "/api/alarms", "/api/nodes", "/api/auth/me"])
    assert not b.failures, b.failures[:5]
    assert b.statuses.count(200) > 150  # refusals are allowed, but this load is not an overload
    assert b.healthz_p99_ms < 1000, f"/healthz p99 {b.healthz_p99_ms:.0f} ms"


@pytest.mark.slow
def test_a_full_queue_is_refused_with_503_and_retry_after(tmp_path: Path) -> None:
    tokens = accounts(tmp_path)
    # one turn, no queue: while one request holds the turn, the others are refused
    with served(tmp_path, api_concurrency=1, api_queue=0) as url, registry_write_lock(tmp_path):

        async def main() -> list[httpx.Response]:
            h = {"Authorization": f"Bearer {tokens['admin']}"}
            async with httpx.AsyncClient(base_url=url, timeout=30) as c:
                slow = asyncio.create_task(
                    c.post("/api/owners", json={"slug": "x", "name": "X"}, headers=h)
                )
                # the write above takes the one turn, then waits for the lock holding it
                deadline = time.monotonic() + 10
                while in_flight((await c.get("/metrics")).text) < 1:
                    assert time.monotonic() < deadline, "the write never took its turn"
                    await asyncio.sleep(0.02)
                rest = await asyncio.gather(*(c.get("/api/poles", headers=h) for _ in range(5)))
                return [*rest, await slow]

        got = asyncio.run(main())
    assert all(refused_properly(r) for r in got[:5]), [(r.status_code, r.text) for r in got]
    assert "busy" in got[0].json()["detail"]
    assert refused_properly(got[5]) and "lock" in got[5].json()["detail"], got[5].text


# ---- item 3: the lock --------------------------------------------------------------------------
@pytest.mark.slow
def test_a_held_registry_lock_answers_503_in_seconds_and_turns_readyz_red(tmp_path: Path) -> None:
    accounts(tmp_path)
    with served(tmp_path) as url, httpx.Client(base_url=url, timeout=60) as c:
        assert c.get("/readyz").status_code == 200
        with registry_write_lock(tmp_path):
            t = time.monotonic()
            r = c.post("/api/auth/token", data={"username": "vera", "password": PASSWORD})
            took = time.monotonic() - t
            assert refused_properly(r), (r.status_code, r.text)
            assert "lock" in r.json()["detail"]
            assert took < 10, took
            ready = c.get("/readyz")
            assert ready.status_code == 503
            assert "lock" in ready.json()["reasons"]["registry"], ready.text
        # the lock is given back: ready again, and the login works
        wait_for(lambda: c.get("/readyz").status_code == 200, 10, "ready again")
        r = c.post("/api/auth/token", data={"username": "vera", "password": PASSWORD})
        assert r.status_code == 200


def test_a_write_waiting_for_the_lock_never_stalls_the_event_loop(tmp_path: Path) -> None:
    """Firmware upload ran its registry work on the event loop: a wait for the write lock froze
    every request, /healthz included (and the holder's commit, which the loop dispatches)."""
    tokens = accounts(tmp_path)
    with served(tmp_path) as url, httpx.Client(base_url=url, timeout=60) as c:
        result: list[httpx.Response] = []
        with registry_write_lock(tmp_path):
            up = threading.Thread(
                target=lambda: result.append(
                    c.post(
                        "/api/firmware",
                        headers={"Authorization": f"Bearer {tokens['admin']}"},
                        data={"version": "9.9.9"},
                        files={
                            "file": (
                                "a.spa",
                                pack([("spnode/__init__.py", b"VERSION = '9.9.9'\n")]),
                            )
                        },
                    )
                )
            )
            up.start()
            # the upload has its turn and waits for the lock; the probes below are the test
            wait_for(lambda: in_flight(c.get("/metrics").text) == 1, 10, "the upload's turn")
            worst = 0.0
            for _ in range(10):
                t = time.monotonic()
                assert c.get("/healthz").status_code == 200
                worst = max(worst, time.monotonic() - t)
                time.sleep(0.1)  # probes spread over a second: the wait is not an instant
        up.join(30)
        assert worst < 1.0, f"/healthz took {worst:.2f} s while a write waited"
        assert result and result[0].status_code in (201, 503), result[0].text


# ---- item 4: readiness -------------------------------------------------------------------------
@pytest.mark.slow
def test_a_full_disk_refuses_login_with_503_and_readyz_says_why(tmp_path: Path) -> None:
    accounts(tmp_path)
    with running_api(tmp_path, **QUIET) as api:
        engine = api.state.registry.engine

        @event.listens_for(engine, "connect")
        def _full(dbapi: Any, _rec: Any) -> None:
            # SQLite's own "disk full": no page past those the file has now
            pages = dbapi.execute("PRAGMA page_count").fetchone()[0]
            dbapi.execute(f"PRAGMA max_page_count = {pages}")

        engine.dispose()
        statuses = []
        for _ in range(300):
            r = api.client.post("/api/auth/token", data={"username": "vera", "password": PASSWORD})
            statuses.append(r.status_code)
            if r.status_code != 200:
                break
        assert statuses[-1] == 503, statuses[-5:]
        assert "full" in r.json()["detail"] and "retry-after" in r.headers
        ready = api.client.get("/readyz")
        assert ready.status_code == 503 and "full" in ready.json()["reasons"]["registry"]


def test_too_little_free_space_turns_readyz_red(tmp_path: Path) -> None:
    with running_api(tmp_path, min_free_mb=10**12, **QUIET) as api:
        ready = api.client.get("/readyz")
        assert ready.status_code == 503
        assert "MiB free" in ready.json()["reasons"]["disk"]


def test_a_corrupt_store_turns_readyz_red(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "streetpole.db", retention_raw_days=0)
    store.close()
    db = sqlite3.connect(tmp_path / "streetpole.db")
    db.execute("CREATE TABLE filler (x)")
    db.executemany("INSERT INTO filler VALUES (?)", ((str(i) * 50,) for i in range(20_000)))
    db.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page = db.execute("PRAGMA page_size").fetchone()[0]
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.close()
    with open(tmp_path / "streetpole.db", "r+b") as f:  # garbage over a page of the filler
        f.seek(page * (pages - 3))
        f.write(b"\xa5" * page)
    with running_api(tmp_path, **QUIET) as api:
        ready = api.client.get("/readyz")
        assert ready.status_code == 503, ready.text
        assert "integrity" in ready.json()["reasons"]["store"]


def test_readyz_is_red_without_the_broker(tmp_path: Path, broker: Broker) -> None:
    with running_api(tmp_path, mqtt_url=broker.url) as api:
        wait_for(lambda: api.client.get("/readyz").status_code == 200, 15, "ready")
        broker.stop()
        wait_for(lambda: api.client.get("/readyz").status_code == 503, 15, "red")
        assert "broker" in api.client.get("/readyz").json()["reasons"]


# ---- item 5: login -----------------------------------------------------------------------------
def login(api: Api, user: str, password: str) -> httpx.Response:
    r: httpx.Response = api.client.post(
        "/api/auth/token", data={"username": user, "password": password}
    )
    return r


def test_failed_logins_back_off_per_account_and_are_audited(tmp_path: Path) -> None:
    with running_api(tmp_path, **QUIET) as api:
        api.account("vera", "viewer")
        got = [login(api, "vera", f"guess{i}").status_code for i in range(8)]
        assert got[:5] == [401] * 5
        assert 429 in got[5:], got
        r = login(api, "vera", PASSWORD)  # even the right password waits its turn
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        audit = api.ok("admin", "GET", "/api/audit", params={"actor": "vera"})
        failed = [a for a in audit if a["action"] == "login.failed"]
        assert len(failed) >= 5 and failed[0]["detail"]["reason"] == "wrong password"
        assert login(api, "nobody", "x").status_code == 401
        audit = api.ok("admin", "GET", "/api/audit", params={"actor": "nobody"})
        assert audit[0]["detail"]["reason"] == "unknown account"


@pytest.mark.slow
def test_failed_logins_back_off_per_address(tmp_path: Path) -> None:
    with running_api(tmp_path, login_free_failures_ip=10, **QUIET) as api:
        api.account("vera", "viewer")
        got = [login(api, f"user{i}", "x").status_code for i in range(12)]
        assert got[:10] == [401] * 10 and got[11] == 429, got
        # another account from the same address waits too
        assert login(api, "vera", PASSWORD).status_code == 429


@pytest.mark.slow
def test_unknown_accounts_take_as_long_to_refuse_as_known_ones(tmp_path: Path) -> None:
    with running_api(
        tmp_path, login_free_failures_account=100, login_free_failures_ip=100, **QUIET
    ) as api:
        api.account("vera", "viewer")

        def took(user: str) -> float:
            t = time.perf_counter()
            assert login(api, user, "wrong").status_code == 401
            return time.perf_counter() - t

        known, unknown = [], []
        for i in range(12):
            known.append(took("vera"))
            unknown.append(took(f"ghost{i}"))
        k, u = statistics.median(known), statistics.median(unknown)
        assert 0.6 < u / k < 1.6, f"known {k * 1000:.0f} ms, unknown {u * 1000:.0f} ms"


@pytest.mark.slow
def test_the_cli_says_one_line_when_the_registry_is_locked(tmp_path: Path) -> None:
    accounts(tmp_path)
    env = dict(os.environ, STREETPOLE_DATA_DIR=str(tmp_path))
    with registry_write_lock(tmp_path):
        r = subprocess.run(
            [sys.executable, "-m", "controller", "create-token", "vera"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert r.returncode == 1
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "locked" in r.stderr


def test_writers_of_one_process_queue_and_every_exit_gives_the_lock_back(tmp_path: Path) -> None:
    from sqlalchemy import update
    from sqlalchemy.exc import IntegrityError

    from controller.registry.db import RegistryBusy
    from controller.registry.models import Owner, User

    reg = Registry(f"sqlite:///{tmp_path / 'registry.db'}", busy_timeout_s=0.5)
    try:
        create_user(reg, "vera", PASSWORD, "viewer")
        touch = update(User).values(active=True)
        holding = threading.Event()
        release = threading.Event()

        def hold() -> None:
            with reg.session() as db:
                db.execute(touch)
                holding.set()
                release.wait(10)

        t = threading.Thread(target=hold)
        t.start()
        holding.wait(10)
        started = time.monotonic()
        with pytest.raises(RegistryBusy, match="held for"), reg.session() as db:
            db.execute(touch)
        assert time.monotonic() - started < 2
        release.set()
        t.join()
        # after an error (a constraint), after a session closed without commit, after a commit
        with pytest.raises(IntegrityError), reg.session() as db:
            db.add(Owner(slug="a", name="A"))
            db.add(Owner(slug="a", name="A"))
            db.flush()
        db2 = reg.sessions()
        db2.execute(touch)
        db2.close()
        with reg.session() as db:
            db.execute(touch)
        assert reg.write_lock is not None and reg.write_lock.held_for() == 0.0
    finally:
        reg.close()


@pytest.mark.slow
def test_open_event_streams_hold_no_registry_connection(tmp_path: Path) -> None:
    tokens = accounts(tmp_path)
    app = create_app(Settings(data_dir=tmp_path, _env_file=None, **QUIET))
    with serve(app) as url, httpx.Client(base_url=url, timeout=30) as c:
        h = {"Authorization": f"Bearer {tokens['vera']}"}
        host, port = url.removeprefix("http://").split(":")
        streams = []
        for _ in range(20):
            ticket = c.post("/api/events/ticket", headers=h).json()["ticket"]
            s = socket.create_connection((host, int(port)), timeout=10)
            s.sendall(
                f"GET /api/events/stream?ticket={ticket} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
            )
            assert b" 200 " in s.recv(4096).split(b"\r\n")[0]
            streams.append(s)
        try:
            pool = app.state.streetpole.registry.engine.pool
            # the hub's poll takes a connection for a moment once a second; streams take none
            wait_for(lambda: pool.checkedout() == 0, 10, "every connection back in the pool")
            b = burst(url, tokens["vera"], ["/api/poles", "/api/auth/me"], 100)
            assert not b.failures and b.statuses.count(200) == 100, b.failures[:3]
        finally:
            for s in streams:
                s.close()
