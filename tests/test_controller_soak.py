"""Soak: an afternoon of operator work against one controller while a street reports.

The controller runs as its own process (as `make run` does) with a real mosquitto and a
simulated street; four operators at once create and revert overrides, move poles between
groups, provision nodes, store commissioning records and log in, for SOAK_S seconds
(STREETPOLE_SOAK_S to change). Every request must answer in time and never 5xx (a 503 with
Retry-After is the one allowed refusal), the fleet loop must never fail on the registry's lock,
and the controller stays ready.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from controller.broker import Broker, BrokerConfig, free_port
from controller.registry.accounts import create_token, create_user
from controller.registry.db import Registry
from simulator.layout import grid
from simulator.provision import provision
from simulator.street import Street
from simulator.world import World
from tests.harness.api import wait_for
from tests.harness.controller_proc import ControllerProcess

SOAK_S = float(os.environ.get("STREETPOLE_SOAK_S", "120"))
WORKERS = 4
ANSWER_WITHIN_S = 10.0
POLES = 20
PASSWORD = "correct horse battery"


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    calls: int = 0
    slowest: float = 0.0
    failures: list[str] = field(default_factory=list)
    refused: int = 0

    def record(self, what: str, r: httpx.Response | None, took: float, error: str = "") -> None:
        with self.lock:
            self.calls += 1
            self.slowest = max(self.slowest, took)
            if r is None:
                self.failures.append(f"{what}: no answer in {took:.1f} s ({error})")
            elif r.status_code == 503 and "retry-after" in r.headers:
                self.refused += 1
            elif r.status_code >= 500:
                self.failures.append(f"{what}: {r.status_code} {r.text[:200]}")
            elif took > ANSWER_WITHIN_S:
                self.failures.append(f"{what}: answered after {took:.1f} s")


class Operator:
    def __init__(self, url: str, token: str, tally: Tally, seed: int) -> None:
        self.http = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        self.tally = tally
        self.rng = random.Random(seed)

    def call(self, method: str, path: str, **kw: Any) -> httpx.Response | None:
        t = time.monotonic()
        try:
            r = self.http.request(method, path, **kw)
        except httpx.HTTPError as e:
            self.tally.record(f"{method} {path}", None, time.monotonic() - t, repr(e))
            return None
        self.tally.record(f"{method} {path}", r, time.monotonic() - t)
        return r

    def step(self, poles: list[str], group_id: int, n: int) -> None:
        pole = self.rng.choice(poles)
        kind = self.rng.randrange(6)
        if kind == 0:  # an override, then its revert
            r = self.call(
                "POST",
                "/api/overrides",
                json={"pole": pole, "level": 0.5, "duration_s": 600, "reason": "soak"},
            )
            if r is not None and r.status_code == 201:
                self.call("POST", f"/api/overrides/{r.json()['id']}/revert")
        elif kind == 1:  # group edit
            members = self.rng.sample(poles, 3)
            self.call("PATCH", f"/api/groups/{group_id}", json={"poles": members})
        elif kind == 2:  # provisioning a new node on a pole
            self.call("POST", "/api/nodes", json={"pole": pole, "node": f"x{n}", "board": "sim"})
        elif kind == 3:  # a commissioning record
            self.call(
                "POST",
                "/api/commissioning",
                json={
                    "schema": "streetpole-commissioning/1",
                    "status": "commissioned",
                    "pole": pole,
                    "node": "n1",
                    "board": "sim",
                    "firmware": {"version": "0.1.0", "hash": "0" * 64},
                    "sensors": [{"name": "lamp", "ok": True}],
                    "location": {"lat": 52.0, "lon": 4.3},
                    "time": "2026-01-01T00:00:00Z",
                    "technician": "tess",
                },
            )
        elif kind == 4:  # a login
            t = time.monotonic()
            try:
                r = httpx.post(
                    str(self.http.base_url) + "/api/auth/token",
                    data={"username": "olga", "password": PASSWORD},
                    timeout=30,
                )
            except httpx.HTTPError as e:
                self.tally.record("login", None, time.monotonic() - t, repr(e))
            else:
                self.tally.record("login", r, time.monotonic() - t)
        else:
            self.call("GET", "/api/poles")
            self.call("GET", "/api/alarms")


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[Broker, ControllerProcess, str]]:
    broker = Broker(tmp_path / "broker", BrokerConfig(port=free_port()))
    broker.start()
    data = tmp_path / "ctl"
    data.mkdir()
    reg = Registry(f"sqlite:///{data / 'registry.db'}")
    create_user(reg, "admin", secrets.token_urlsafe(12), "admin")
    create_user(reg, "olga", PASSWORD, "operator")
    token = create_token(reg, "admin", "soak")
    reg.close()
    ctl = ControllerProcess(data, {"STREETPOLE_MQTT_URL": broker.url})
    ctl.env["STREETPOLE_PUBLIC_URL"] = ctl.url
    ctl.start()
    try:
        yield broker, ctl, token
    finally:
        ctl.stop()
        broker.stop()


@pytest.mark.slow
def test_an_afternoon_of_operator_work_with_a_street_reporting(
    stack: tuple[Broker, ControllerProcess, str],
) -> None:
    broker, ctl, token = stack
    lay = grid(POLES, prefix="SK-")
    with httpx.Client(base_url=ctl.url, timeout=30) as h:
        creds = provision(h, token, lay, {"report_period_s": 60})
        g = h.post(
            "/api/groups",
            json={"name": "soak", "poles": [p.id for p in lay.poles[:3]]},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert g.status_code == 201, g.text
    street = Street(lay, World(lay, seed=3, start=time.time()), broker.url, creds, speed=60)
    street_error: list[BaseException] = []

    def run_street() -> None:
        try:
            asyncio.run(street.run(None))
        except BaseException as e:  # reported below
            street_error.append(e)

    runner = threading.Thread(target=run_street, daemon=True)
    runner.start()
    wait_for(lambda: street.started_real > 0, 30, "street started")

    tally = Tally()
    ends = time.monotonic() + SOAK_S
    poles = [p.id for p in lay.poles]

    def work(seed: int) -> None:
        op = Operator(ctl.url, token, tally, seed)
        n = 0
        while time.monotonic() < ends:
            n += 1
            op.step(poles, g.json()["id"], seed * 100_000 + n)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(WORKERS)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(SOAK_S + 120)
    street.stop()
    runner.join(30)
    assert not street_error, street_error
    log = ctl.log.read_text()
    print(f"soak: {tally.calls} requests, slowest {tally.slowest:.1f} s, {tally.refused} refused")
    assert tally.calls > 50, tally.calls
    assert not tally.failures, f"{len(tally.failures)} of {tally.calls}: {tally.failures[:10]}"
    assert "database is locked" not in log, log[-3000:]
    assert "fleet loop failed" not in log, log[-3000:]
    ready = ctl.get("/readyz")
    assert ready.status_code == 200, ready.text
