"""The soak: an afternoon of operator work against one controller while a street reports.

The controller runs as its own process (as `make run` does) with a real mosquitto and a
simulated street; operators at once create and revert overrides, move poles between groups,
provision nodes, store commissioning records and log in, for a given time. Used by
tests/test_controller_soak.py (a short run, with the assertions) and by `make bench-soak`
(the long run, with figures).
"""

from __future__ import annotations

import asyncio
import random
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from controller.broker import Broker, BrokerConfig, free_port
from controller.registry.accounts import create_token, create_user
from controller.registry.db import Registry
from simulator.layout import grid
from simulator.provision import provision
from simulator.street import Street
from simulator.world import World
from tests.harness.controller_proc import ControllerProcess
from tests.harness.wait import wait_for

ANSWER_WITHIN_S = 10.0
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

    def close(self) -> None:
        self.http.close()


@dataclass
class Soak:
    """What a soak leaves to judge: the requests' tally, the street's error if it failed, the
    controller's log and its /readyz answer at the end."""

    tally: Tally
    seconds: float
    street_error: list[BaseException]
    log: str
    ready: httpx.Response


def soak(tmp: Path, seconds: float, workers: int = 4, poles: int = 20) -> Soak:
    broker = Broker(tmp / "broker", BrokerConfig(port=free_port()))
    broker.start()
    data = tmp / "ctl"
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
        return _operate(broker, ctl, token, seconds, workers, poles)
    finally:
        ctl.stop()
        broker.stop()


def _operate(
    broker: Broker, ctl: ControllerProcess, token: str, seconds: float, workers: int, n: int
) -> Soak:
    lay = grid(n, prefix="SK-")
    with httpx.Client(base_url=ctl.url, timeout=30) as h:
        creds = provision(h, token, lay, {"report_period_s": 60})
        g = h.post(
            "/api/groups",
            json={"name": "soak", "poles": [p.id for p in lay.poles[:3]]},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert g.status_code == 201, g.text
    group_id = int(g.json()["id"])
    street = Street(lay, World(lay, seed=3, start=time.time()), broker.url, creds, speed=60)
    street_error: list[BaseException] = []

    def run_street() -> None:
        try:
            asyncio.run(street.run(None))
        except BaseException as e:  # reported to the caller
            street_error.append(e)

    runner = threading.Thread(target=run_street, daemon=True)
    runner.start()
    wait_for(lambda: street.started_real > 0, 30, "street started")

    tally = Tally()
    ends = time.monotonic() + seconds
    poles = [p.id for p in lay.poles]

    def work(seed: int) -> None:
        op = Operator(ctl.url, token, tally, seed)
        n = 0
        while time.monotonic() < ends:
            n += 1
            op.step(poles, group_id, seed * 100_000 + n)
        op.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 120)
    street.stop()
    runner.join(30)
    return Soak(tally, seconds, street_error, ctl.log.read_text(), ctl.get("/readyz"))
