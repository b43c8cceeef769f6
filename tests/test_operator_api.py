"""The operator API: registry CRUD with field-named errors, owner scope, audit, roles.
Runs on SQLite and on a real PostgreSQL (Alembic migrations on both)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.broker import Broker
from tests.harness.api import Api, running_api
from tests.harness.postgres import Postgres


@pytest.fixture(params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest, tmp_path: Path, broker: Broker) -> Iterator[Api]:
    url = None
    if request.param == "postgresql":
        pg: Postgres = request.getfixturevalue("postgres")
        url = pg.create_database("t" + str(abs(hash(request.node.name)))[:12])
    with running_api(tmp_path, url, mqtt_url=broker.url) as a:
        yield a


def setup_street(api: Api) -> dict[str, int]:
    city = api.ok("admin", "POST", "/api/owners", json={"slug": "rotterdam", "name": "Rotterdam"})
    shop = api.ok(
        "admin", "POST", "/api/owners", json={"slug": "airco", "name": "Air Co", "kind": "market"}
    )
    for i in range(3):
        api.ok(
            "admin",
            "POST",
            "/api/poles",
            json={
                "id": f"RTD-{i:04d}",
                "name": f"Pole {i}",
                "lat": 51.88 + i * 0.0004,
                "lon": 4.53,
                "district": "Feijenoord",
                "owner_id": city["id"],
            },
        )
        api.ok(
            "admin",
            "POST",
            f"/api/poles/RTD-{i:04d}/modules",
            json={
                "type": "lighting",
                "owner_id": city["id"],
                "purpose": "street light",
                "node": "n1",
                "src": "lamp",
                "rated_power_w": 40,
            },
        )
    api.ok(
        "admin",
        "POST",
        "/api/poles/RTD-0001/modules",
        json={
            "type": "air",
            "owner_id": shop["id"],
            "purpose": "PM2.5 research",
            "node": "n1",
            "src": "air",
        },
    )
    return {"city": city["id"], "shop": shop["id"]}


def test_crud_validation_names_the_field_and_audit_has_the_author(api: Api) -> None:
    ids = setup_street(api)
    r = api.call(
        "admin",
        "POST",
        "/api/poles",
        json={"id": "RTD+9", "lat": 51.9, "lon": 4.5, "owner_id": ids["city"]},
    )
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "id"]
    r = api.call(
        "admin",
        "POST",
        "/api/poles",
        json={"id": "RTD-9", "lat": 91, "lon": 4.5, "owner_id": ids["city"]},
    )
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "lat"]
    r = api.call(
        "admin",
        "POST",
        "/api/poles",
        json={"id": "RTD-0000", "lat": 51.9, "lon": 4.5, "owner_id": ids["city"]},
    )
    assert r.status_code == 409 and "id" in r.json()["detail"]
    r = api.call(
        "admin",
        "POST",
        "/api/poles",
        json={"id": "RTD-9", "lat": 51.9, "lon": 4.5, "owner_id": 999},
    )
    assert r.status_code == 422 and r.json()["detail"].startswith("owner_id")
    assert api.call("admin", "GET", "/api/poles/NOPE").status_code == 404

    pole = api.ok("admin", "PATCH", "/api/poles/RTD-0002", json={"district": "Charlois"})
    assert pole["district"] == "Charlois"
    g = api.ok(
        "admin",
        "POST",
        "/api/groups",
        json={"name": "Hillevliet", "poles": ["RTD-0000", "RTD-0001"]},
    )
    assert g["poles"] == ["RTD-0000", "RTD-0001"]
    r = api.call("admin", "PATCH", f"/api/groups/{g['id']}", json={"poles": ["RTD-0000", "X-1"]})
    assert r.status_code == 422 and "X-1" in r.json()["detail"]
    listed = api.ok("admin", "GET", "/api/poles", params={"district": "Feijenoord"})
    assert [p["id"] for p in listed] == ["RTD-0000", "RTD-0001"]
    by_type = api.ok("admin", "GET", "/api/poles", params={"module_type": "air"})
    assert [p["id"] for p in by_type] == ["RTD-0001"]
    api.ok("admin", "DELETE", "/api/poles/RTD-0002")
    assert api.call("admin", "GET", "/api/poles/RTD-0002").status_code == 404

    log = api.ok("admin", "GET", "/api/audit", params={"limit": 100})
    actions = [(e["actor"], e["action"], e["target_id"]) for e in log]
    for expected in [
        ("admin", "pole.create", "RTD-0000"),
        ("admin", "pole.update", "RTD-0002"),
        ("admin", "pole.delete", "RTD-0002"),
        ("admin", "group.create", str(g["id"])),
        ("admin", "owner.create", str(ids["shop"])),
    ]:
        assert expected in actions
    # a refused write leaves no trace
    assert not any(e["target_id"] == "RTD-9" for e in log)


def test_roles_and_tokens(api: Api) -> None:
    setup_street(api)
    api.account("vera", "viewer")
    api.account("tom", "technician")
    assert api.call("", "GET", "/api/poles").status_code == 401
    assert api.call("vera", "GET", "/api/poles").status_code == 200
    r = api.call("vera", "PATCH", "/api/poles/RTD-0000", json={"name": "x"})
    assert r.status_code == 403 and "operator" in r.json()["detail"]
    assert (
        api.call("tom", "POST", "/api/owners", json={"slug": "x", "name": "x"}).status_code == 403
    )
    # password login, then revocation
    r = api.client.post(
        "/api/auth/token", data={"username": "vera", "password": "correct horse battery"}
    )
    assert r.status_code == 200
    login = r.json()["access_token"]
    h = {"Authorization": f"Bearer {login}"}
    assert api.client.get("/api/auth/me", headers=h).json()["role"] == "viewer"
    bad = api.client.post("/api/auth/token", data={"username": "vera", "password": "nope"})
    assert bad.status_code == 401
    assert api.client.delete("/api/auth/tokens", headers=h).status_code == 204
    assert api.client.get("/api/auth/me", headers=h).status_code == 401


def test_owner_scoped_account_sees_and_steers_only_its_own(api: Api) -> None:
    ids = setup_street(api)
    api.account("airco-ops", "operator", owner="airco")
    # sees the pole that carries its module, and only its module there
    poles = api.ok("airco-ops", "GET", "/api/poles")
    assert [p["id"] for p in poles] == ["RTD-0001"]
    assert [m["type"] for m in poles[0]["modules"]] == ["air"]
    assert api.call("airco-ops", "GET", "/api/poles/RTD-0000").status_code == 404
    mods = api.ok("airco-ops", "GET", "/api/modules")
    assert {m["owner_id"] for m in mods} == {ids["shop"]}
    city_module = api.ok("admin", "GET", "/api/modules", params={"type": "lighting"})[0]
    r = api.call("airco-ops", "PATCH", f"/api/modules/{city_module['id']}", json={"purpose": "x"})
    assert r.status_code == 404
    r = api.call("airco-ops", "PATCH", "/api/poles/RTD-0001", json={"name": "mine"})
    assert r.status_code == 403
    r = api.call("airco-ops", "POST", "/api/overrides", json={"pole": "RTD-0001", "level": 1})
    assert r.status_code == 404  # the light is not theirs
    r = api.call(
        "airco-ops",
        "POST",
        "/api/poles",
        json={"id": "AIR-1", "lat": 51.9, "lon": 4.5, "owner_id": ids["city"]},
    )
    assert r.status_code == 403 and r.json()["detail"].startswith("owner_id")
    assert api.ok("airco-ops", "GET", "/api/owners") == [
        o for o in api.ok("admin", "GET", "/api/owners") if o["id"] == ids["shop"]
    ]


def test_programs_and_profiles_are_named_once(api: Api) -> None:
    steps = [{"at": "sunset", "offset_min": 0, "level": 1.0}, {"at": "sunrise", "level": 0}]
    prog = api.ok("admin", "POST", "/api/programs", json={"name": "std", "steps": steps})
    # stored as a node gets it: defaults left out, the level always in
    assert prog["steps"] == [{"at": "sunset", "level": 1.0}, {"at": "sunrise", "level": 0}]
    r = api.call("admin", "POST", "/api/programs", json={"name": "std", "steps": steps})
    assert r.status_code == 409 and r.json()["detail"] == "name: program 'std' exists"
    body = {"name": "street", "default_program": "std"}
    api.ok("admin", "POST", "/api/profiles", json=body)
    r = api.call("admin", "POST", "/api/profiles", json=body)
    assert r.status_code == 409 and r.json()["detail"] == "name: profile 'street' exists"
