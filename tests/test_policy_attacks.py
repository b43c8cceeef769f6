"""The attacks of issue #19 by a market party's operator on the city's light and data, each as
it was reported: a scoped account with one air module on one city pole (and, for the override,
one lamp of its own in the area)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from controller.registry.models import Command, Node, NodeConfig, Override
from spnode.update import pack
from tests.harness.api import Api, running_api

QUIET = {"ingest_enabled": False, "dispatch_enabled": False}
CITY_POLES = [f"RTD-{i:04d}" for i in range(3)]
STEPS = [{"at": "sunset", "level": 1.0}, {"at": "sunrise", "level": 0.0}]


@pytest.fixture
def street(tmp_path: Path) -> Iterator[tuple[Api, dict[str, Any]]]:
    with running_api(tmp_path, **QUIET) as api:
        ids: dict[str, Any] = {}
        city = api.ok("admin", "POST", "/api/owners", json={"slug": "city", "name": "City"})
        airco = api.ok(
            "admin", "POST", "/api/owners", json={"slug": "airco", "name": "Air", "kind": "market"}
        )
        ids["city"], ids["airco"] = city["id"], airco["id"]
        api.ok("admin", "POST", "/api/programs", json={"name": "night", "steps": STEPS})
        prof = api.ok(
            "admin", "POST", "/api/profiles", json={"name": "city", "default_program": "night"}
        )
        ids["profile"] = prof["id"]
        ids["program"] = api.ok("admin", "GET", "/api/programs")[0]["id"]
        for i, (pole, owner) in enumerate([(p, city) for p in CITY_POLES] + [("AIR-1", airco)]):
            body = {"id": pole, "lat": 51.9 + i * 0.01, "lon": 4.5, "owner_id": owner["id"]}
            api.ok("admin", "POST", "/api/poles", json=body | {"profile_id": prof["id"]})
            lamp = {"type": "lighting", "owner_id": owner["id"], "node": "n1", "src": "lamp"}
            api.ok("admin", "POST", f"/api/poles/{pole}/modules", json=lamp)
            api.ok("admin", "POST", "/api/nodes", json={"pole": pole})
        air = {"type": "air", "owner_id": airco["id"], "node": "n1", "src": "air"}
        api.ok("admin", "POST", "/api/poles/RTD-0001/modules", json=air)
        api.account("airops", "operator", "airco")
        yield api, ids


def city_configs(api: Api) -> int:
    """How many configs the city's nodes have been sent."""
    with api.state.registry.session() as db:
        n = db.scalar(
            select(func.count())
            .select_from(NodeConfig)
            .join(Node, Node.id == NodeConfig.node_id)
            .where(Node.pole_id.in_(CITY_POLES))
        )
        return int(n or 0)


def test_a_market_party_cannot_dim_the_city_through_its_profile_or_program(
    street: tuple[Api, dict[str, Any]],
) -> None:
    api, ids = street
    before = city_configs(api)
    dark = {"name": "city", "default_program": "night", "max_level": 0.0}
    r = api.call("airops", "PUT", f"/api/profiles/{ids['profile']}", json=dark)
    assert r.status_code == 403, r.text
    r = api.call(
        "airops",
        "PUT",
        f"/api/programs/{ids['program']}",
        json={"name": "night", "steps": [{"at": "sunset", "level": 0.0}]},
    )
    assert r.status_code == 403, r.text
    assert city_configs(api) == before
    assert api.ok("admin", "GET", "/api/profiles")[0]["max_level"] == 1.0


def test_a_market_party_cannot_take_a_city_lamp_into_a_group_of_its_own(
    street: tuple[Api, dict[str, Any]],
) -> None:
    api, _ids = street
    dark = api.ok(
        "airops",
        "POST",
        "/api/profiles",
        json={"name": "dark", "default_program": "night", "max_level": 0.0},
    )
    before = city_configs(api)
    body = {"name": "mine", "poles": ["RTD-0001"], "profile_id": dark["id"]}
    r = api.call("airops", "POST", "/api/groups", json=body)
    assert r.status_code == 403, r.text
    assert city_configs(api) == before
    # a group without a profile is fine, but giving it the profile later is not
    g = api.ok("airops", "POST", "/api/groups", json={"name": "mine", "poles": ["RTD-0001"]})
    r = api.call("airops", "PATCH", f"/api/groups/{g['id']}", json={"profile_id": dark["id"]})
    assert r.status_code == 403, r.text
    assert city_configs(api) == before


def test_a_market_party_cannot_revert_the_citys_emergency_light(
    street: tuple[Api, dict[str, Any]],
) -> None:
    api, _ids = street
    ov = api.ok(
        "admin", "POST", "/api/overrides", json={"area": {"bbox": [4, 51, 5, 53]}, "mode": "event"}
    )
    assert ov["nodes"] == 4
    r = api.call("airops", "POST", f"/api/overrides/{ov['id']}/revert")
    assert r.status_code == 403, r.text
    with api.state.registry.session() as db:
        row = db.get(Override, ov["id"])
        assert row is not None and row.reverted_at is None
        reverts = db.scalar(select(func.count()).where(Command.kind == "revert"))
        assert reverts == 0
    # it still sees the override (it reached its lamp), and only its own node's command
    cmds = api.ok("airops", "GET", f"/api/overrides/{ov['id']}/commands")
    assert len(cmds) == 1


def test_a_market_party_reads_only_its_own_nodes_energy_and_rollouts(
    street: tuple[Api, dict[str, Any]],
) -> None:
    api, _ids = street
    now = int(time.time())
    states = [(p, "n1", {"status": "online", "level": 1.0}) for p in [*CITY_POLES, "AIR-1"]]
    acks = [
        (p, "n1", {"id": "c1", "kind": "cmd", "status": "applied", "ts": now}) for p, *_ in states
    ]
    api.state.ops.write(states, [], acks, [])
    assert [n["pole"] for n in api.ok("airops", "GET", "/api/ingest/nodes")] == ["AIR-1"]
    assert [a["pole"] for a in api.ok("airops", "GET", "/api/ingest/acks")] == ["AIR-1"]
    assert api.call("airops", "GET", "/api/ingest/dead-letters").status_code == 403
    day = {"start": "2026-12-01"}
    assert api.call("airops", "GET", "/api/energy/poles/RTD-0001", params=day).status_code == 404
    assert api.call("airops", "GET", "/api/energy/poles/AIR-1", params=day).status_code == 200
    pkg = api.ok(
        "admin",
        "POST",
        "/api/firmware",
        data={"version": "1.2.3"},
        files={"file": ("a.spa", pack([("spnode/__init__.py", b"VERSION = '9.9.9'\n")]))},
    )
    g = api.ok("admin", "POST", "/api/groups", json={"name": "city", "poles": CITY_POLES})
    c = api.ok(
        "admin", "POST", "/api/campaigns", json={"package_id": pkg["id"], "group_id": g["id"]}
    )
    assert api.ok("airops", "GET", "/api/campaigns") == []
    assert api.ok("airops", "GET", "/api/firmware") == []
    assert api.call("airops", "GET", f"/api/campaigns/{c['id']}").status_code == 404


def test_an_owners_private_profiles_and_programs_are_its_own(
    street: tuple[Api, dict[str, Any]],
) -> None:
    api, ids = street
    api.ok(
        "admin",
        "POST",
        "/api/programs",
        json={"name": "city-only", "steps": STEPS, "owner_id": ids["city"]},
    )
    api.ok(
        "admin",
        "POST",
        "/api/profiles",
        json={"name": "city-only", "default_program": "night", "owner_id": ids["city"]},
    )
    assert "city-only" not in {p["name"] for p in api.ok("airops", "GET", "/api/programs")}
    assert "city-only" not in {p["name"] for p in api.ok("airops", "GET", "/api/profiles")}
    # the shared library stays readable (it is what a party may use)
    assert "night" in {p["name"] for p in api.ok("airops", "GET", "/api/programs")}
