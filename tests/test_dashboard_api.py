"""The dashboard's own routes without a browser: pages and their assets are served locally
with a strict CSP, a pole's series follow owner scope (restricted and closed modules are seen by
their owner only), and the live event stream needs a single-use ticket and carries node state
changes and alarms, filtered by scope."""

from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from controller.app import create_app
from controller.dashboard import assets
from controller.registry.accounts import create_token, create_user
from controller.registry.db import Registry
from controller.registry.models import Alarm, Node
from controller.settings import Settings
from controller.store.base import Batch
from tests.harness.api import running_api, wait_for
from tests.harness.server import serve

QUIET = {"ingest_enabled": False, "dispatch_enabled": False}


def test_pages_and_assets_are_local(tmp_path: Path) -> None:
    if assets.missing():
        pytest.fail(f"dashboard assets missing ({assets.missing()}): run `make assets`")
    with running_api(tmp_path, **QUIET) as api:
        for page in ("/dashboard", "/portal"):
            r = api.client.get(page)
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
            csp = r.headers["content-security-policy"]
            assert "default-src 'self'" in csp and "connect-src 'self'" in csp
            refs = re.findall(r'(?:src|href)="([^"#]+)"', r.text)
            local = [u for u in refs if u.startswith("/ui/")]
            assert len(local) >= 5
            # nothing external (a language link is this page with ?lang=)
            assert all(u.startswith(("/", "data:", "?lang=")) for u in refs), refs
            for u in local:
                assert api.client.get(u).status_code == 200, u
        js = api.client.get("/ui/js/api.js").text  # the token lives for the tab only
        assert "sessionStorage" in js and "localStorage" not in js


def test_missing_assets_say_how_to_get_them(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(assets, "VENDOR", tmp_path / "nothing")
    with running_api(tmp_path, **QUIET) as api:
        r = api.client.get("/dashboard")
        assert r.status_code == 503 and "make assets" in r.text


def _street(api: Any) -> dict[str, Any]:
    muni = api.ok("admin", "POST", "/api/owners", json={"slug": "muni", "name": "City"})
    airco = api.ok("admin", "POST", "/api/owners", json={"slug": "airco", "name": "AirCo"})
    api.ok(
        "admin",
        "POST",
        "/api/poles",
        json={"id": "P1", "lat": 51.9, "lon": 4.48, "owner_id": muni["id"], "district": "D"},
    )
    for body in (
        {"type": "lighting", "owner_id": muni["id"], "node": "n1", "src": "lamp"},
        {
            "type": "air",
            "owner_id": airco["id"],
            "node": "n1",
            "src": "no2cell",
            "openness": "closed",
        },
    ):
        api.ok("admin", "POST", "/api/poles/P1/modules", json=body)
    now = int(time.time())
    readings = [
        {"q": q, "src": src, "v": v, "ts": now - 3600 + 60 * i, "dur": 60}
        for i in range(30)
        for q, src, v in (
            ("illuminanceLevel", "lamp", 0.5),
            ("energyConsumed", "lamp", 1.0),
            ("no2", "no2cell", 30.0),
        )
    ]
    api.state.store.write([Batch("P1", "n1", 1, 1, readings)])
    return {"muni": muni, "airco": airco, "now": now}


def test_series_follow_owner_scope(tmp_path: Path) -> None:
    with running_api(tmp_path, **QUIET) as api:
        s = _street(api)
        api.account("cityops", "operator", "muni")
        api.account("airops", "operator", "airco")
        span = f"start={s['now'] - 7200}&end={s['now'] + 60}"

        def qs(who: str, window: str = "raw") -> dict[str, Any]:
            r = api.ok(who, "GET", f"/api/dashboard/poles/P1/series?{span}&window={window}")
            return {x["q"]: x for x in r["value"]}

        assert set(qs("admin")) == {"illuminanceLevel", "energyConsumed", "no2"}
        assert set(qs("cityops")) == {"illuminanceLevel", "energyConsumed"}
        assert set(qs("airops")) == {"no2"}  # its own closed module: yes; the light: no
        assert len(qs("admin")["illuminanceLevel"]["points"]) == 30
        hourly = qs("admin", "hour")
        assert sum(p[1] for p in hourly["energyConsumed"]["points"]) == pytest.approx(30.0)
        assert {p[1] for p in hourly["illuminanceLevel"]["points"]} == {0.5}
        latest = api.ok("airops", "GET", "/api/dashboard/poles/P1/latest")["value"]
        assert [(x["q"], x["module_type"], x["openness"]) for x in latest] == [
            ("no2", "air", "closed")
        ]
        # not in the public API, whatever the operators see
        assert "no2" not in api.client.get("/opendata/v1/latest").text
        r = api.call("admin", "GET", "/api/dashboard/poles/P1/series?start=10&end=5")
        assert r.status_code == 422
        assert api.call("", "GET", f"/api/dashboard/poles/P1/series?{span}").status_code == 401


class SseReader:
    """A plain socket reading one event stream (closing it is an immediate disconnect)."""

    def __init__(self, base: str, path: str) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=5)
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        self.buf = b""
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.head = ""

    def pump(self, wait: float = 0.1) -> None:
        self.sock.settimeout(wait)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            return
        self.buf += chunk
        if not self.head and b"\r\n\r\n" in self.buf:
            head, self.buf = self.buf.split(b"\r\n\r\n", 1)
            self.head = head.decode()
        for block in re.findall(rb"event: (\w+)\r?\ndata: (.*?)\r?\n", self.buf):
            self.events.append((block[0].decode(), json.loads(block[1])))
        self.buf = self.buf[self.buf.rfind(b"\n\n") + 2 :] if b"\n\n" in self.buf else self.buf

    def kinds(self) -> list[str]:
        return [k for k, _ in self.events]

    def close(self) -> None:
        self.sock.close()


@pytest.mark.slow
def test_event_stream(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    Registry(url).close()
    reg = Registry(url, run_migrations=False)
    create_user(reg, "admin", "correct horse battery", "admin")
    admin = create_token(reg, "admin", "t")
    settings = Settings(data_dir=tmp_path, database_url=url, _env_file=None, **QUIET)
    app = create_app(settings)
    with serve(app) as base, httpx.Client(base_url=base, timeout=10) as http:
        h = {"Authorization": f"Bearer {admin}"}
        muni = http.post("/api/owners", json={"slug": "muni", "name": "City"}, headers=h).json()
        airco = http.post("/api/owners", json={"slug": "airco", "name": "Air"}, headers=h).json()
        for pid, owner in (("P1", muni), ("P2", airco)):
            body = {"id": pid, "lat": 51.9, "lon": 4.48, "owner_id": owner["id"]}
            assert http.post("/api/poles", json=body, headers=h).status_code == 201
        # the city's lamp on Air Co's pole: its alarms are the city's, not the pole owner's
        lamp = {"type": "lighting", "owner_id": muni["id"], "node": "n1", "src": "lamp"}
        city_lamp = http.post("/api/poles/P2/modules", json=lamp, headers=h).json()["id"]
        create_user(reg, "airops", "correct horse battery", "operator", "airco")
        air = create_token(reg, "airops", "t")
        with reg.session() as db:
            for pid in ("P1", "P2"):
                db.add(Node(pole_id=pid, node="n1", mqtt_username=f"{pid}/n1", update_key="0"))

        assert http.post("/api/events/ticket").status_code == 401
        readers: dict[str, SseReader] = {}
        for who, tok in (("admin", admin), ("airops", air)):
            t = http.post("/api/events/ticket", headers={"Authorization": f"Bearer {tok}"})
            ticket = t.json()["ticket"]
            readers[who] = SseReader(base, f"/api/events/stream?ticket={ticket}")

            def head(r: SseReader = readers[who]) -> str:
                r.pump()
                return r.head

            wait_for(head, 5, "stream headers")
            assert " 200 " in readers[who].head.splitlines()[0]
            assert "text/event-stream" in readers[who].head
            # a ticket is good once
            assert http.get(f"/api/events/stream?ticket={ticket}").status_code == 401

        def pumped(cond: Any) -> Any:
            def check() -> Any:
                for r in readers.values():
                    r.pump(0.02)
                return cond()

            return check

        wait_for(pumped(lambda: all("hello" in r.kinds() for r in readers.values())), 5, "hello")
        hub = app.state.dashboard_hub
        wait_for(lambda: hub.primed, 10, "the poller's first look (its baseline)")
        # what the ingest does when nodes report: a state and an alarm per pole
        with reg.session() as db:
            for n in db.query(Node).all():
                n.status, n.level = "online", 0.4
            for pid in ("P1", "P2"):
                db.add(Alarm(pole_id=pid, node="n1", code="lampFailure", severity="major"))
            db.add(
                Alarm(
                    pole_id="P2",
                    node="n1",
                    module_id=city_lamp,
                    code="lampFailure",
                    src="lamp",
                    severity="major",
                )
            )
        wait_for(pumped(lambda: len(readers["admin"].events) >= 6), 10, "events")
        # one more whole poll after those: whatever it adds is counted in hub.sent, and every
        # event sent reaches its stream
        polls = hub.polls
        wait_for(lambda: hub.polls >= polls + 2, 10, "another poll")
        wait_for(
            pumped(lambda: sum(len(r.events) - 1 for r in readers.values()) >= hub.sent),
            10,
            "every event sent",
        )
        assert hub.sent == 7
        seen = {
            who: sorted((k, d.get("pole") or d.get("pole_id")) for k, d in r.events if k != "hello")
            for who, r in readers.items()
        }
        assert seen["admin"] == [
            ("alarm", "P1"),
            ("alarm", "P2"),
            ("alarm", "P2"),
            ("node", "P1"),
            ("node", "P2"),
        ]
        assert seen["airops"] == [("alarm", "P2"), ("node", "P2")]
        node = next(d for k, d in readers["admin"].events if k == "node")
        assert node["status"] == "online" and node["level"] == 0.4
        for r in readers.values():
            r.close()
        wait_for(lambda: not hub.subscribers, 5, "streams closed on disconnect")
    reg.close()
