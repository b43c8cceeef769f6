"""Attacks on the open-data caches: a module made non-open stayed public up to 10 s (the
catalog's TTL) and a revoked token kept reading restricted streams for 60 s (the token cache).
Both now take effect on the next request, whether the change is made through this process's
API or by another process writing the registry (a second controller, a command-line tool)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.store.base import StreamKey
from tests.harness.api import Api
from tests.opendata_helpers import make_street, street_api


@pytest.fixture
def street(tmp_path: Path) -> Iterator[tuple[Api, dict[str, Any], Path]]:
    made = make_street(tmp_path, poles=4, days=0.05, period_s=600)
    # the default TTLs: what an operator runs
    with street_api(tmp_path) as api:
        api.account("airco-reader", "viewer", "airco")
        yield api, made, tmp_path / "registry.db"


def _datastreams(api: Api, token: str | None = None) -> set[int]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = api.client.get("/sta/v1.1/Datastreams?$top=1000&$select=id", headers=headers)
    assert r.status_code == 200, r.text
    return {d["@iot.id"] for d in r.json()["value"]}


def _module_of(api: Api, pole: str, src: str) -> int:
    modules = api.ok("admin", "GET", "/api/modules")
    (m,) = [m for m in modules if m["pole_id"] == pole and m["src"] == src]
    return int(m["id"])


def _elsewhere(db: Path, sql: str, *params: Any) -> None:
    """Change the registry from another process, as a second controller or a tool would."""
    code = (
        "import sqlite3, sys, json\n"
        "c = sqlite3.connect(sys.argv[1])\n"
        "c.execute(sys.argv[2], json.loads(sys.argv[3]))\n"
        "c.commit()\n"
    )
    import json

    subprocess.run(
        [sys.executable, "-c", code, str(db), sql, json.dumps(params)], check=True, timeout=30
    )


def test_closing_a_module_hides_it_on_the_next_request(
    street: tuple[Api, dict[str, Any], Path],
) -> None:
    api, made, _db = street
    air = made["index"][StreamKey("RTD-0001", "n1", "air", "pm25")].id
    assert air in _datastreams(api)
    module = _module_of(api, "RTD-0001", "air")
    api.ok("admin", "PATCH", f"/api/modules/{module}", json={"openness": "closed"})
    assert air not in _datastreams(api)
    r = api.client.get(f"/sta/v1.1/Datastreams({air})/Observations")
    assert r.status_code == 404
    assert f'"datastream":{air},' not in api.client.get("/opendata/v1/latest").text
    api.ok("admin", "PATCH", f"/api/modules/{module}", json={"personal_data": True})
    api.ok("admin", "PATCH", f"/api/modules/{module}", json={"openness": "open"})
    assert air not in _datastreams(api)  # personal data never is public
    api.ok("admin", "PATCH", f"/api/modules/{module}", json={"personal_data": False})
    assert air in _datastreams(api)


def test_closing_a_module_in_another_process_hides_it_on_the_next_request(
    street: tuple[Api, dict[str, Any], Path],
) -> None:
    api, made, db = street
    noise = made["index"][StreamKey("RTD-0002", "n1", "noise", "LAeq")].id
    assert noise in _datastreams(api)
    module = _module_of(api, "RTD-0002", "noise")
    _elsewhere(db, "UPDATE modules SET openness = 'closed' WHERE id = ?", module)
    assert noise not in _datastreams(api)
    _elsewhere(db, "UPDATE modules SET openness = 'open' WHERE id = ?", module)
    assert noise in _datastreams(api)
    _elsewhere(db, "DELETE FROM modules WHERE id = ?", module)
    assert noise not in _datastreams(api)


def test_a_revoked_token_is_refused_on_the_next_request(
    street: tuple[Api, dict[str, Any], Path],
) -> None:
    api, made, _db = street
    no2 = made["index"][StreamKey("RTD-0000", "n1", "no2", "no2")].id
    token = api.tokens["airco-reader"]
    assert no2 in _datastreams(api, token) and no2 not in _datastreams(api)
    api.ok("airco-reader", "DELETE", "/api/auth/tokens")  # revokes the caller's tokens
    r = api.client.get("/sta/v1.1/Datastreams", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401 and "revoked" in r.json()["message"]


def test_a_token_revoked_or_an_account_disabled_elsewhere_is_refused_on_the_next_request(
    street: tuple[Api, dict[str, Any], Path],
) -> None:
    api, made, db = street
    no2 = made["index"][StreamKey("RTD-0000", "n1", "no2", "no2")].id
    token = api.tokens["airco-reader"]
    assert no2 in _datastreams(api, token)
    _elsewhere(db, "UPDATE users SET active = 0 WHERE username = ?", "airco-reader")
    r = api.client.get("/opendata/v1/latest", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401
    _elsewhere(db, "UPDATE users SET active = 1 WHERE username = ?", "airco-reader")
    assert no2 in _datastreams(api, token)
    _elsewhere(db, "UPDATE api_tokens SET revoked = 1")
    r = api.client.get(
        "/opendata/v1/csv?pole=RTD-0000", headers={"Authorization": f"Bearer {token}"}
    )
    assert r.status_code == 401


@pytest.mark.slow
@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_registry_stamp_moves_with_every_publishing_change(
    request: pytest.FixtureRequest, tmp_path: Path, db: str
) -> None:
    """The stamp the catalog reads per request is kept by the database itself (triggers), so
    no writer, however it writes, can change what is published without moving it."""
    from sqlalchemy import create_engine, text

    from controller.registry.db import Registry
    from controller.registry.stamp import read_stamp

    url = f"sqlite:///{tmp_path / 'registry.db'}"
    if db == "postgresql":
        url = request.getfixturevalue("postgres").create_database("stamp")
    reg = Registry(url)
    other = create_engine(url)  # another writer: plain SQL, none of the application's code
    try:
        seen = [read_stamp(reg)]
        for sql in [
            "INSERT INTO owners (id, slug, name, kind, created_at) VALUES (1, 'c', 'C', 'm', 0)",
            "INSERT INTO poles (id, name, lat, lon, owner_id, created_at)"
            " VALUES ('P', 'P', 51.9, 4.5, 1, 0)",
            "INSERT INTO modules (id, pole_id, type, owner_id, purpose, openness, personal_data,"
            " attributes, created_at) VALUES (1, 'P', 'air', 1, '', 'open', false, '{}', 0)",
            "UPDATE modules SET openness = 'closed'",
            "UPDATE poles SET lat = 52.0",
            "UPDATE owners SET name = 'City'",
            "DELETE FROM modules",
            "DELETE FROM poles",
        ]:
            with other.begin() as conn:
                conn.execute(text(sql))
            seen.append(read_stamp(reg))
        assert len(set(seen)) == len(seen), seen
    finally:
        other.dispose()
        reg.close()
