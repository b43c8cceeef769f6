"""Commissioning never takes over a node in service (issue 18 item 7), against a real mosquitto
with accounts and the controller served by uvicorn.

Provisioning a node that was heard in the last few minutes is refused (409, naming the node and
when it was last heard), and the node keeps working; with ``replace`` it goes through and the old
credentials stop working; ``streetpole node remove`` removes a node and its credentials stop
working on the broker.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from controller.app import create_app
from controller.broker import Broker
from controller.registry.accounts import create_token, create_user
from controller.registry.db import Registry
from controller.settings import Settings
from fieldtools.errors import EXIT
from streetpole.cli import app as cli_app
from tests.harness.api import kept_accounts, prefill_nodes, running_api, wait_for
from tests.harness.server import serve
from tests.ingest_helpers import meas, meas_topic
from tests.test_mqtt_auth import Conn, accepted, connect, ok


@dataclass
class Site:
    url: str
    token: str
    broker: Broker
    conns: list[Conn]
    admin: str = ""  # an admin's token (removing a node takes an operator)

    def call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.request(method, self.url + path, headers=headers, timeout=10, **kw)

    def node(self, cred: dict[str, Any]) -> Conn:
        conn = connect(self.broker.port, cred["mqtt_username"], cred["mqtt_password"])
        self.conns.append(conn)
        return conn


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """mosquitto with per-node accounts, the controller keeping them, two poles 40 m apart."""
    kept = kept_accounts(tmp_path)
    broker = Broker(tmp_path / "broker", kept.config)
    broker.start()
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    reg = Registry(url)
    create_user(reg, "tess", "correct horse battery", "technician")
    create_user(reg, "admin", "correct horse battery", "admin")
    admin = create_token(reg, "admin", "test")
    token = create_token(reg, "tess", "test")
    reg.close()
    settings = Settings(
        data_dir=tmp_path,
        database_url=url,
        **kept.settings(broker.url),
        _env_file=None,  # type: ignore[call-arg]
    )
    s = Site("", token, broker, [], admin)
    try:
        with serve(create_app(settings)) as base:
            s.url = base
            # ingest's first connect may come before mosquitto took the controller's accounts;
            # a node's message before its retry would reach no session and be lost
            wait_for(
                lambda: httpx.get(base + "/readyz").json()["checks"]["broker"],
                what="ingest subscribed",
            )
            h = {"Authorization": f"Bearer {admin}"}
            city = httpx.post(
                base + "/api/owners", json={"slug": "city", "name": "City"}, headers=h
            ).json()
            for pole, lon in (("RTD-0001", 4.4800), ("RTD-0002", 4.4806)):
                body = {"id": pole, "lat": 51.9, "lon": lon, "owner_id": city["id"]}
                assert httpx.post(base + "/api/poles", json=body, headers=h).status_code == 201
                # ingest takes a reading only from a module that measures it
                air = {"type": "air", "owner_id": city["id"], "node": "n1", "src": "air"}
                air["purpose"] = "air quality"
                r = httpx.post(base + f"/api/poles/{pole}/modules", json=air, headers=h)
                assert r.status_code == 201, r.text
            yield s
    finally:
        for conn in s.conns:
            conn.close()
        broker.stop()


def provision(site: Site, pole: str, **extra: Any) -> httpx.Response:
    return site.call("POST", "/api/nodes", json={"pole": pole, "node": "n1", **extra})


def heard(site: Site, cred: dict[str, Any]) -> Conn:
    """The node connects with its credentials and sends a reading; wait until ingest heard it."""
    conn = site.node(cred)
    assert accepted(conn)
    pole = cred["node"]["pole_id"]
    assert ok(conn.publish(meas_topic(pole), meas(1, ts=int(time.time()) - 60)))
    node_id = cred["node"]["id"]
    wait_for(
        lambda: site.call("GET", f"/api/nodes/{node_id}").json()["last_seen"],
        what="ingest hears the node",
    )
    return conn


@pytest.mark.slow
def test_provisioning_a_node_heard_lately_is_refused_unless_replace(site: Site) -> None:
    first = provision(site, "RTD-0001")
    assert first.status_code == 201, first.text
    cred = first.json()
    node = heard(site, cred)
    # a technician at the neighbouring pole who typed this pole's id, or a second commissioning
    again = provision(site, "RTD-0001")
    assert again.status_code == 409, again.text
    reason = again.json()["detail"]
    last_seen = site.call("GET", f"/api/nodes/{cred['node']['id']}").json()["last_seen"]
    when = dt.datetime.fromtimestamp(last_seen, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    assert "RTD-0001/n1" in reason and "last heard" in reason and when in reason, reason
    assert "replace" in reason
    # nothing changed: the node is still on the broker and its credentials still work
    assert ok(node.publish(meas_topic("RTD-0001"), meas(2, ts=int(time.time()) - 30)))
    assert not node.disconnected.is_set()
    assert accepted(connect(site.broker.port, cred["mqtt_username"], cred["mqtt_password"]))
    # on purpose: new credentials, the old ones stop working
    replaced = provision(site, "RTD-0001", replace=True)
    assert replaced.status_code == 201, replaced.text
    new = replaced.json()
    assert new["mqtt_password"] != cred["mqtt_password"]
    wait_for(
        lambda: (
            not accepted(connect(site.broker.port, cred["mqtt_username"], cred["mqtt_password"]))
        ),
        what="the old password is refused",
    )
    assert accepted(site.node(new))


def test_a_node_not_heard_lately_is_provisioned_again_without_replace(site: Site) -> None:
    first = provision(site, "RTD-0002")
    assert first.status_code == 201, first.text
    again = provision(site, "RTD-0002")  # never heard: a node being set up again
    assert again.status_code == 201, again.text


@pytest.mark.slow
def test_cli_remove_and_its_credentials_stop_working(site: Site) -> None:
    cred = provision(site, "RTD-0002").json()
    node = heard(site, cred)
    args = ["--controller", site.url, "--token", site.admin, "--yes"]
    r = CliRunner().invoke(cli_app, ["node", "remove", "RTD-0002/n1", *args])
    assert r.exit_code == 0, r.output
    assert "removed RTD-0002/n1 and 1 module" in r.output and "last heard" in r.output, r.output
    assert node.disconnected.wait(10), "the broker drops the removed node"
    node.client.loop_stop()
    assert not accepted(connect(site.broker.port, cred["mqtt_username"], cred["mqtt_password"]))
    assert site.call("GET", "/api/nodes", params={"pole": "RTD-0002"}).json() == []
    r = CliRunner().invoke(cli_app, ["node", "remove", "RTD-0002/n1", *args])
    assert r.exit_code == EXIT["controller"] and "no node RTD-0002/n1" in r.output, r.output


@pytest.mark.slow  # a street of 10,000 nodes and 20 reloads of it: about 20 s here
def test_each_change_is_in_force_on_the_broker_when_the_api_answers(tmp_path: Path) -> None:
    """In a street of 10,000 nodes (a reload takes about a tenth of a second), ten nodes
    provisioned one right after another, then removed the same way: right after the last answer
    each time, every new password works, then none does. mosquitto drops a SIGHUP that comes
    while it reloads, so a controller that only signals leaves changes out until the next one."""
    kept = kept_accounts(tmp_path)
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    prefill_nodes(url, 10_000)
    with (
        Broker(tmp_path / "broker", kept.config) as broker,
        running_api(
            tmp_path / "ctl",
            database_url=url,
            ingest_enabled=False,
            dispatch_enabled=False,
            **kept.settings(broker.url),
        ) as api,
    ):
        owner = api.ok("admin", "GET", "/api/owners")[0]["id"]
        poles = [f"N{i:03d}" for i in range(10)]
        for pole in poles:
            body = {"id": pole, "lat": 51.9, "lon": 4.48, "owner_id": owner}
            api.ok("admin", "POST", "/api/poles", json=body)
        creds = [api.ok("admin", "POST", "/api/nodes", json={"pole": p}) for p in poles]
        missing = [c["mqtt_username"] for c in creds if not works(broker, c)]
        assert missing == [], f"provisioned, but refused by the broker: {missing}"
        for c in creds:
            api.ok("admin", "DELETE", f"/api/nodes/{c['node']['id']}")
        still = [c["mqtt_username"] for c in creds if works(broker, c)]
        assert still == [], f"removed, but still accepted by the broker: {still}"


def works(broker: Broker, cred: dict[str, Any]) -> bool:
    conn = connect(broker.port, cred["mqtt_username"], cred["mqtt_password"])
    conn.close()
    return accepted(conn)
