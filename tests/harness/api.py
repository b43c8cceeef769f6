"""The controller in-process (FastAPI TestClient, lifespan and all) with accounts to call it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient

from controller.app import create_app
from controller.broker import BrokerConfig, free_port
from controller.mqtt_auth import MqttAccounts, generate_secret, hash_password
from controller.registry.accounts import create_token, create_user
from controller.registry.db import Registry
from controller.registry.models import Node, Owner, Pole
from controller.settings import Settings
from tests.harness.wait import wait_for as wait_for  # where most tests import it from


class Api:
    """A running controller and a bearer token per account name."""

    def __init__(self, client: TestClient, registry_url: str) -> None:
        self.client = client
        self.registry_url = registry_url
        self.tokens: dict[str, str] = {}

    def account(self, name: str, role: str, owner: str | None = None) -> str:
        reg = Registry(self.registry_url)
        try:
            create_user(reg, name, "correct horse battery", role, owner)
            self.tokens[name] = create_token(reg, name, "test")
        finally:
            reg.close()
        return name

    def call(self, who: str, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        response: httpx.Response = self.client.request(method, path, headers=headers, **kw)
        return response

    def ok(self, who: str, method: str, path: str, **kw: Any) -> Any:
        r = self.call(who, method, path, **kw)
        assert r.status_code < 300, f"{method} {path}: {r.status_code} {r.text}"
        return r.json() if r.content else None

    @property
    def state(self) -> Any:
        return self.client.app.state.streetpole  # type: ignore[attr-defined]


@contextmanager
def running_api(data_dir: Path, database_url: str | None = None, **settings: Any) -> Iterator[Api]:
    url = database_url or f"sqlite:///{data_dir / 'registry.db'}"
    Registry(url).close()  # migrate first, so accounts exist before the app starts
    s = Settings(data_dir=data_dir, database_url=url, _env_file=None, **settings)
    reg = Registry(url, run_migrations=False)
    create_user(reg, "admin", "correct horse battery", "admin")
    token = create_token(reg, "admin", "test")
    reg.close()
    with TestClient(create_app(s)) as client:
        api = Api(client, url)
        api.tokens["admin"] = token
        yield api


@dataclass(frozen=True)
class KeptAccounts:
    """A broker whose password and ACL files a controller keeps: the broker's config, and the
    settings that make a controller keep them (``Settings(**kept.settings(broker_url))``)."""

    auth_dir: Path
    pid_file: Path
    config: BrokerConfig

    def settings(self, mqtt_url: str) -> dict[str, Any]:
        return {
            "mqtt_url": mqtt_url,
            "mqtt_username": "controller",
            "mqtt_password": generate_secret(),
            "broker_auth_dir": self.auth_dir,
            "broker_pid_file": self.pid_file,
        }


def kept_accounts(root: Path) -> KeptAccounts:
    """Empty account files under ``root`` (the controller fills them at start) and a broker
    config that reads them."""
    accounts = MqttAccounts(root / "auth")
    accounts.write()
    pid = root / "mosquitto.pid"
    config = BrokerConfig(
        port=free_port(),
        password_file=accounts.password_file,
        acl_file=accounts.acl_file,
        pid_file=pid,
    )
    return KeptAccounts(root / "auth", pid, config)


def prefill_nodes(url: str, n: int) -> None:
    """A street of ``n`` provisioned nodes (poles E000000...), straight into the registry: an
    owner "city", one pole and node each, all with one password hash (what hashing costs is not
    what these tests measure)."""
    reg = Registry(url)
    pw_hash = hash_password(generate_secret())
    with reg.session() as db:
        owner = Owner(slug="city", name="City")
        db.add(owner)
        db.flush()
        for i in range(n):
            pid = f"E{i:06d}"
            db.add(Pole(id=pid, name=pid, lat=51.9, lon=4.48, owner_id=owner.id))
            db.add(
                Node(
                    pole_id=pid,
                    node="n1",
                    mqtt_username=f"{pid}/n1",
                    mqtt_password_hash=pw_hash,
                    update_key="0" * 64,
                )
            )
    reg.close()
