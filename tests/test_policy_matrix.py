"""The authorisation matrix: every route of the OpenAPI x every role x unscoped / owner-scoped
account x its own owner's things / another owner's things.

A street of three owners: the city (municipality), Air Co (the scoped accounts' owner) and Tel
Co (another market party). Air Co has its own pole with its own lamp and an air module on a city
pole; Tel Co has its own pole. Each case asserts the status, that a refused call changed
nothing at all, that an allowed call changed nothing of the owners it was not about, and that a
scoped account's answers hold nothing of the other owners. A route in the OpenAPI that this
file does not know fails ``test_every_route_is_in_the_matrix``, so a new route cannot slip
through without a decision.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from controller.registry.models import (
    Alarm,
    ApiToken,
    AuditEntry,
    Campaign,
    CampaignNode,
    Command,
    DimmingProfile,
    FirmwarePackage,
    Group,
    GroupPole,
    Module,
    Node,
    NodeConfig,
    Override,
    Owner,
    Pole,
    Program,
    User,
)
from controller.security import ROLE_RANK
from controller.store.base import Batch
from spnode.update import pack
from tests.harness.api import Api, running_api

pytestmark = pytest.mark.slow

ROLES = ("viewer", "technician", "operator", "admin")
QUIET = {"ingest_enabled": False, "dispatch_enabled": False}
SPA = pack([("spnode/__init__.py", b"VERSION = '9.9.9'\n")])  # the node's own format
_seq = itertools.count(1)


def uid(prefix: str) -> str:
    return f"{prefix}{next(_seq)}"


# ---- the street --------------------------------------------------------------------------------
@dataclass
class World:
    api: Api
    owner: dict[str, int] = field(default_factory=dict)  # city, airco, telco
    ids: dict[str, Any] = field(default_factory=dict)
    snapshots: Snapshots = field(init=False)

    def __post_init__(self) -> None:
        self.snapshots = Snapshots(self.api)

    def admin(self, method: str, path: str, **kw: Any) -> Any:
        return self.api.ok("admin", method, path, **kw)

    def pole(self, owner: str, pid: str | None = None, lamp: str | None = None) -> str:
        """A pole with a lamp (of the pole's owner unless ``lamp`` names another); 200 m from
        the last, so no pole has a neighbour (whose node would be in its config)."""
        pid = pid or uid({"airco": "AIR-F", "telco": "TEL-F", "city": "RTD-F"}[owner])
        lat = 51.0 + next(_seq) * 0.002
        body = {"id": pid, "lat": lat, "lon": 4.5, "owner_id": self.owner[owner]}
        self.admin("POST", "/api/poles", json=body)
        purpose = f"{owner}-lamp-purpose" if lamp is None else "guest-lamp"
        self.module(pid, lamp or owner, "lighting", "lamp", purpose)
        return pid

    def shared_pole(self) -> str:
        """A fresh city pole that carries an Air Co module (so Air Co sees it)."""
        pid = self.pole("city")
        self.module(pid, "airco", "air", "air", "airco-air-purpose")
        return pid

    def module(self, pole: str, owner: str, type_: str, src: str, purpose: str) -> int:
        body = {
            "type": type_,
            "owner_id": self.owner[owner],
            "node": "n1",
            "src": src,
            "purpose": purpose,
            "rated_power_w": 40,
            "openness": "restricted",
        }
        m = self.admin("POST", f"/api/poles/{pole}/modules", json=body)
        return int(m["id"])

    def node(self, pole: str, name: str = "n1") -> int:
        got = self.admin("POST", "/api/nodes", json={"pole": pole, "node": name})
        return int(got["node"]["id"])

    def override(self, who: str, body: dict[str, Any]) -> str:
        return str(self.api.ok(who, "POST", "/api/overrides", json=body)["id"])

    def alarm(self, pole: str, module_id: int | None, detail: str) -> int:
        """A new open alarm: a condition of its own (src), as one condition is one open alarm."""
        with self.api.state.registry.session() as db:
            a = Alarm(
                pole_id=pole,
                node="n1",
                module_id=module_id,
                src=uid("src-"),
                code="lampFailure",
                severity="major",
                detail=detail,
            )
            db.add(a)
            db.flush()
            return a.id

    def group(self, owner: str, poles: list[str], profile: int | None = None) -> int:
        body = {
            "name": uid(f"g-{owner}-"),
            "owner_id": self.owner[owner] if owner != "city" else None,
            "poles": poles,
            "profile_id": profile,
        }
        return int(self.admin("POST", "/api/groups", json=body)["id"])

    def campaign(self, group: str, package: str, halted: bool = False) -> int:
        body = {"package_id": self.ids[package], "group_id": self.ids[group]}
        c = int(self.admin("POST", "/api/campaigns", json=body)["id"])
        if halted:
            self.admin("POST", f"/api/campaigns/{c}/halt")
        return c

    def user(self, owner: str) -> int:
        body = {
            "username": uid(f"{owner}-u"),
            "password": "correct horse battery",
            "role": "viewer",
            "owner_id": self.owner[owner] if owner != "city" else None,
        }
        return int(self.admin("POST", "/api/users", json=body)["id"])


def build(api: Api) -> World:
    w = World(api)
    for slug, kind in (("city", "municipality"), ("airco", "market"), ("telco", "market")):
        o = w.admin("POST", "/api/owners", json={"slug": slug, "name": slug, "kind": kind})
        w.owner[slug] = o["id"]
    for role in ROLES:
        api.account(f"u-{role}", role)
        api.account(f"a-{role}", role, "airco")
    api.account("t-operator", "operator", "telco")
    # poles: two of the city (the first carries Air Co's and Tel Co's modules), one each of theirs
    w.pole("city", "RTD-0001")
    w.pole("city", "RTD-0002")
    w.pole("airco", "AIR-0001")
    w.pole("telco", "TEL-0001")
    w.ids["air_mod"] = w.module("RTD-0001", "airco", "air", "air", "airco-air-purpose")
    w.ids["tel_cell"] = w.module("RTD-0001", "telco", "small_cell", "cell", "telco-cell-purpose")
    with api.state.registry.session() as db:
        lamps = db.execute(select(Module.pole_id, Module.id).where(Module.type == "lighting"))
        w.ids.update({f"lamp:{pole}": mid for pole, mid in lamps})
    for pole in ("RTD-0001", "RTD-0002", "AIR-0001", "TEL-0001"):
        w.ids[f"node:{pole}"] = w.node(pole)
    # the library: shared entries and each party's own
    steps = [{"at": "sunset", "level": 1.0}, {"at": "sunrise", "level": 0.0}]
    for owner in ("shared", "airco", "telco"):
        o = None if owner == "shared" else w.owner[owner]
        prog = w.admin(
            "POST", "/api/programs", json={"name": f"p-{owner}", "steps": steps, "owner_id": o}
        )
        prof = w.admin(
            "POST",
            "/api/profiles",
            json={"name": f"prof-{owner}", "default_program": f"p-{owner}", "owner_id": o},
        )
        w.ids[f"program:{owner}"], w.ids[f"profile:{owner}"] = prog["id"], prof["id"]
    w.ids["group:city"] = w.group("city", ["RTD-0001", "RTD-0002"], w.ids["profile:shared"])
    w.ids["group:airco"] = w.group("airco", ["AIR-0001"], w.ids["profile:airco"])
    w.ids["group:telco"] = w.group("telco", ["TEL-0001"], w.ids["profile:telco"])
    # overrides: each party's own, and the city's emergency light over the whole street
    w.ids["ov:airco"] = w.override("a-operator", {"pole": "AIR-0001", "level": 0.5})
    w.ids["ov:telco"] = w.override("t-operator", {"pole": "TEL-0001", "level": 0.5})
    w.ids["ov:city"] = w.override("admin", {"area": {"bbox": [4, 51, 5, 52]}, "mode": "event"})
    # firmware: a package rolled out to Air Co's pole, another to Tel Co's
    for name, version in (("pkg:airco", "1.0.0"), ("pkg:telco", "7.7.7")):
        pkg = w.admin(
            "POST", "/api/firmware", data={"version": version}, files={"file": ("a.spa", SPA)}
        )
        w.ids[name] = pkg["id"]
    w.ids["campaign:airco"] = w.campaign("group:airco", "pkg:airco")
    w.ids["campaign:telco"] = w.campaign("group:telco", "pkg:telco")
    w.ids["alarm:airco"] = w.alarm("AIR-0001", None, "airco-pole-alarm")
    w.ids["alarm:airco-mod"] = w.alarm("RTD-0001", w.ids["air_mod"], "airco-module-alarm")
    w.ids["alarm:telco"] = w.alarm("TEL-0001", None, "telco-pole-alarm")
    w.ids["alarm:city-lamp"] = w.alarm("RTD-0001", w.ids["lamp:RTD-0001"], "city-lamp-alarm")
    for pole in ("AIR-0001", "TEL-0001"):
        rec = api.ok("admin", "POST", "/api/commissioning", json=record(pole))
        w.ids[f"record:{pole}"] = rec["id"]
    # what ingest saw from every node: state, an event, an ack, and readings of every module
    now = int(time.time())
    states, events, acks = [], [], []
    for pole in ("RTD-0001", "RTD-0002", "AIR-0001", "TEL-0001"):
        states.append((pole, "n1", {"status": "online", "fw": "1.0.0", "level": 1.0}))
        ev = {"boot": 1, "seq": 1, "ts": now, "kind": "alarm", "code": "lampFailure"}
        events.append((pole, "n1", ev | {"src": "lamp", "active": True}))
        acks.append(
            (pole, "n1", {"id": f"c-{pole}", "kind": "cmd", "status": "applied", "ts": now})
        )
    api.state.ops.write(states, events, acks, [])
    readings = {
        "RTD-0001": (("energyConsumed", "lamp"), ("pm25", "air"), ("rsrp", "cell")),
        "AIR-0001": (("illuminanceLevel", "lamp"),),
        "TEL-0001": (("rsrp", "cell"),),
    }
    api.state.store.write(
        [
            Batch(pole, "n1", 1, 1, [{"q": q, "src": s, "v": 1.0, "ts": now - 600, "dur": 60}])
            for pole, streams in readings.items()
            for q, s in streams
        ]
    )
    return w


_RECORD_TIMES = itertools.count()


def record(pole: str) -> dict[str, Any]:
    """A commissioning record; each call another commissioning (the controller keeps a record
    sent again once, by its pole/node and start time)."""
    when = dt.datetime(2026, 12, 3, 20, tzinfo=dt.UTC) + dt.timedelta(seconds=next(_RECORD_TIMES))
    return {
        "schema": "streetpole-commissioning/1",
        "status": "commissioned",
        "pole": pole,
        "node": "n1",
        "board": "streetpole-esp32-v1",
        "firmware": {"version": "1.0.0", "hash": "0" * 64},
        "sensors": [],
        "location": {"lat": 51.9, "lon": 4.5},
        "time": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "technician": "tech",
    }


# strings of the other owners that an Air Co account must never be shown
FOREIGN = (
    "TEL-",
    "RTD-0002",
    "city-lamp",
    "telco-",
    "t-operator",
    "p-telco",
    "prof-telco",
    "7.7.7",
    "g-telco",
    "g-city",
    "city-u",
)


# ---- who changed what ----------------------------------------------------------------------------
def snapshot(api: Api) -> dict[tuple[str, str | None], set[str]]:
    """Every registry row, by table and by the owner it belongs to (None: the municipality's
    shared things). Token use times are left out: reading refreshes them."""
    out: dict[tuple[str, str | None], set[str]] = {}
    with api.state.registry.session() as db:
        slug = {o.id: o.slug for o in db.scalars(select(Owner))}
        pole_owner = {p.id: slug[p.owner_id] for p in db.scalars(select(Pole))}
        node_owner = {n.id: pole_owner[n.pole_id] for n in db.scalars(select(Node))}
        module_owner = {m.id: slug[m.owner_id] for m in db.scalars(select(Module))}
        group_owner = {g.id: slug.get(g.owner_id or 0) for g in db.scalars(select(Group))}
        user_owner = {u.id: slug.get(u.owner_id or 0) for u in db.scalars(select(User))}
        by_name = {u.username: slug.get(u.owner_id or 0) for u in db.scalars(select(User))}
        whose: dict[type[Any], Callable[[Any], str | None]] = {
            Owner: lambda r: slug[r.id],
            Pole: lambda r: pole_owner[r.id],
            Module: lambda r: module_owner[r.id],
            Node: lambda r: node_owner[r.id],
            Group: lambda r: group_owner[r.id],
            GroupPole: lambda r: group_owner[r.group_id],
            Program: lambda r: slug.get(r.owner_id or 0),
            DimmingProfile: lambda r: slug.get(r.owner_id or 0),
            NodeConfig: lambda r: node_owner[r.node_id],
            Override: lambda r: by_name.get(r.created_by),
            Command: lambda r: node_owner[r.node_id],
            FirmwarePackage: lambda r: None,
            Campaign: lambda r: None,
            CampaignNode: lambda r: node_owner[r.node_id],
            Alarm: lambda r: module_owner[r.module_id] if r.module_id else pole_owner[r.pole_id],
            User: lambda r: user_owner[r.id],
            ApiToken: lambda r: user_owner[r.user_id],
        }
        for model, owner_of in whose.items():
            table = model.__table__
            for row in db.execute(select(table)):  # rows, not objects: a snapshot is frequent
                key = (table.name, owner_of(row))
                values = {k: v for k, v in row._mapping.items() if k != "last_used"}
                out.setdefault(key, set()).add(json.dumps(values, sort_keys=True, default=str))
        audit_n = len(db.scalars(select(AuditEntry.id)).all())
        out[("audit_log", None)] = {str(audit_n)}
    return out


class Snapshots:
    """``snapshot`` taken again only when something was committed since the last one: SQLite's
    ``data_version``, read on a connection of our own, changes with every commit made through
    any other connection. Most cases (reads, refusals) commit nothing, so their "before" is the
    last case's "after" and their "after" is the same again."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.probe = sqlite3.connect(api.registry_url.removeprefix("sqlite:///"))
        self.version: int | None = None
        self.last: dict[tuple[str, str | None], set[str]] = {}

    def take(self) -> dict[tuple[str, str | None], set[str]]:
        version = self.probe.execute("PRAGMA data_version").fetchone()[0]
        if version != self.version:
            self.last, self.version = snapshot(self.api), version
        return self.last


def rows_of(snap: dict[tuple[str, str | None], set[str]], owners: set[str | None]) -> Any:
    return {k: v for k, v in snap.items() if k[1] in owners and k[0] != "audit_log"}


# ---- the routes ----------------------------------------------------------------------------------
Make = Callable[[World], dict[str, Any]]  # the request: path params, query, json, files


@dataclass
class Target:
    """Whose thing a case is about, how to make the request, and what a scoped account gets
    (an unscoped account of a high enough role gets the route's success status unless said)."""

    owner: str  # airco (the scoped accounts' own), telco, city (municipality), shared
    make: Make
    scoped: int | None = None
    unscoped: int | None = None
    # owners an unscoped account's call must leave alone (default: the market party the case
    # is not about)
    spares: frozenset[str] | None = None


@dataclass
class Route:
    role: str
    ok: int
    targets: dict[str, Target]
    foreign: tuple[str, ...] = ()  # route-specific strings a scoped account must not see
    after: Callable[[World, str], None] | None = None


def own(make: Make) -> dict[str, Target]:
    """A route about the caller itself or a list: one case."""
    return {"own": Target("airco", make)}


def pair(own_make: Make, other_make: Make, denied: int = 404, **more: Target) -> dict[str, Target]:
    return {
        "own": Target("airco", own_make),
        "other": Target("telco", other_make, scoped=denied),
        **more,
    }


def req(**kw: Any) -> Make:
    """A fixed request; ``"{key}"`` strings in it name ids of the world (``World.ids``)."""
    return lambda w: kw


def fresh(fn: Make) -> Make:
    """A request about something made for this one case (it may be changed or removed)."""
    return fn


def _reissue(w: World, who: str) -> None:  # the caller revoked its own tokens
    role, owner = who.split("-", 1)[1], "airco" if who.startswith("a-") else None
    w.api.account(who, role, owner)


DAY = {"start": "2026-12-01"}
SERIES = {"start": int(time.time()) - 86400, "end": int(time.time()) + 86400}


def _campaign_of(owner: str, halted: bool) -> Make:
    return lambda w: {
        "params": {"campaign_id": w.campaign(f"group:{owner}", f"pkg:{owner}", halted)}
    }


def _steps() -> list[dict[str, Any]]:
    return [{"at": "sunset", "level": 1.0}, {"at": "sunrise", "level": 0.0}]


ROUTES: dict[tuple[str, str], Route] = {
    # ---- accounts
    ("GET", "/api/auth/me"): Route("viewer", 200, own(req())),
    ("POST", "/api/auth/tokens"): Route("viewer", 201, own(req(json={"name": "t"}))),
    ("DELETE", "/api/auth/tokens"): Route("viewer", 204, own(req()), after=_reissue),
    ("GET", "/api/users"): Route("admin", 200, own(req())),
    ("POST", "/api/users"): Route(
        "admin",
        201,
        pair(
            fresh(
                lambda w: {
                    "json": {
                        "username": uid("airco-u"),
                        "password": "correct horse battery",
                        "role": "viewer",
                        "owner_id": w.owner["airco"],
                    }
                }
            ),
            fresh(
                lambda w: {
                    "json": {
                        "username": uid("telco-u"),
                        "password": "correct horse battery",
                        "role": "admin",
                        "owner_id": w.owner["telco"],
                    }
                }
            ),
            denied=403,
        ),
    ),
    ("POST", "/api/users/{user_id}/disable"): Route(
        "admin",
        200,
        pair(
            fresh(lambda w: {"params": {"user_id": w.user("airco")}}),
            fresh(lambda w: {"params": {"user_id": w.user("telco")}}),
        ),
    ),
    # ---- registry
    ("GET", "/api/owners"): Route("viewer", 200, own(req()), foreign=("city", "telco")),
    ("POST", "/api/owners"): Route(
        "admin",
        201,
        {"own": Target("shared", lambda w: {"json": {"slug": uid("o"), "name": "x"}}, scoped=403)},
    ),
    ("GET", "/api/poles"): Route("viewer", 200, own(req())),
    ("POST", "/api/poles"): Route(
        "operator",
        201,
        pair(
            fresh(
                lambda w: {
                    "json": {"id": uid("AIR-P"), "lat": 1, "lon": 1, "owner_id": w.owner["airco"]}
                }
            ),
            fresh(
                lambda w: {
                    "json": {"id": uid("TEL-P"), "lat": 1, "lon": 1, "owner_id": w.owner["telco"]}
                }
            ),
            denied=403,
        ),
    ),
    ("GET", "/api/poles/{pole_id}"): Route(
        "viewer",
        200,
        pair(
            req(params={"pole_id": "AIR-0001"}),
            req(params={"pole_id": "TEL-0001"}),
            shared_pole=Target("city", req(params={"pole_id": "RTD-0001"}), scoped=200),
        ),
    ),
    ("PATCH", "/api/poles/{pole_id}"): Route(
        "operator",
        200,
        pair(
            req(params={"pole_id": "AIR-0001"}, json={"name": "renamed"}),
            req(params={"pole_id": "TEL-0001"}, json={"name": "renamed"}),
            # the city's pole that carries Air Co's module: visible, not theirs to change
            shared_pole=Target(
                "city", req(params={"pole_id": "RTD-0001"}, json={"name": "mine"}), scoped=403
            ),
            # a profile of Tel Co on Air Co's lamp: unknown to Air Co, refused to anyone
            foreign_profile=Target(
                "airco",
                req(params={"pole_id": "AIR-0001"}, json={"profile_id": "{profile:telco}"}),
                scoped=422,
                unscoped=403,
            ),
        ),
    ),
    ("DELETE", "/api/poles/{pole_id}"): Route(
        "operator",
        204,
        pair(
            fresh(lambda w: {"params": {"pole_id": w.pole("airco")}}),
            fresh(lambda w: {"params": {"pole_id": w.pole("telco")}}),
            # Air Co's own pole with a city module on it: not Air Co's alone to remove
            with_foreign_module=Target(
                "airco",
                fresh(lambda w: {"params": {"pole_id": w.pole("airco", lamp="city")}}),
                scoped=403,
            ),
        ),
    ),
    ("POST", "/api/poles/{pole_id}/modules"): Route(
        "operator",
        201,
        pair(
            fresh(
                lambda w: {
                    "params": {"pole_id": "AIR-0001"},
                    "json": {"type": "noise", "owner_id": w.owner["airco"], "node": "n1"},
                }
            ),
            fresh(
                lambda w: {
                    "params": {"pole_id": "TEL-0001"},
                    "json": {"type": "noise", "owner_id": w.owner["telco"], "node": "n1"},
                }
            ),
            # a second lamp on the city's pole would share its light
            shared_pole=Target(
                "city",
                fresh(
                    lambda w: {
                        "params": {"pole_id": w.shared_pole()},
                        "json": {"type": "lighting", "owner_id": w.owner["airco"]},
                    }
                ),
                scoped=403,
                spares=frozenset({"telco"}),
            ),
        ),
    ),
    ("GET", "/api/modules"): Route("viewer", 200, own(req()), foreign=("city-", "telco-")),
    ("GET", "/api/modules/{module_id}"): Route(
        "viewer",
        200,
        pair(
            req(params={"module_id": "{air_mod}"}),
            req(params={"module_id": "{tel_cell}"}),
            city_lamp=Target("city", req(params={"module_id": "{lamp:RTD-0001}"}), scoped=404),
        ),
    ),
    ("PATCH", "/api/modules/{module_id}"): Route(
        "operator",
        200,
        pair(
            req(params={"module_id": "{air_mod}"}, json={"purpose": "airco-air-purpose"}),
            req(params={"module_id": "{tel_cell}"}, json={"purpose": "telco-cell-purpose"}),
            # claiming the city lamp's stream (src) from a module on the city's pole
            rewire=Target(
                "airco",
                fresh(
                    lambda w: {
                        "params": {
                            "module_id": w.module(w.pole("city"), "airco", "air", "air", "airco-x")
                        },
                        "json": {"src": "lamp"},
                    }
                ),
                scoped=403,
            ),
        ),
    ),
    ("DELETE", "/api/modules/{module_id}"): Route(
        "operator",
        204,
        pair(
            fresh(
                lambda w: {
                    "params": {"module_id": w.module("AIR-0001", "airco", "noise", "nz", "x")}
                }
            ),
            fresh(
                lambda w: {
                    "params": {"module_id": w.module("TEL-0001", "telco", "noise", "nz", "x")}
                }
            ),
        ),
    ),
    ("GET", "/api/groups"): Route("viewer", 200, own(req())),
    ("POST", "/api/groups"): Route(
        "operator",
        201,
        pair(
            fresh(
                lambda w: {
                    "json": {
                        "name": uid("g-airco-"),
                        "owner_id": w.owner["airco"],
                        "poles": ["AIR-0001"],
                    }
                }
            ),
            fresh(
                lambda w: {
                    "json": {
                        "name": uid("g-telco-"),
                        "owner_id": w.owner["telco"],
                        "poles": ["TEL-0001"],
                    }
                }
            ),
            denied=403,
            # the reported takeover: a group of one's own over the city's pole, with a profile
            takeover=Target(
                "city",
                fresh(
                    lambda w: {
                        "json": {
                            "name": uid("g-x"),
                            "poles": ["RTD-0001"],
                            "profile_id": w.ids["profile:shared"],
                        }
                    }
                ),
                scoped=403,
            ),
        ),
    ),
    ("GET", "/api/groups/{group_id}"): Route(
        "viewer",
        200,
        pair(
            req(params={"group_id": "{group:airco}"}),
            req(params={"group_id": "{group:telco}"}),
            city=Target("city", req(params={"group_id": "{group:city}"}), scoped=404),
        ),
    ),
    ("PATCH", "/api/groups/{group_id}"): Route(
        "operator",
        200,
        pair(
            req(params={"group_id": "{group:airco}"}, json={"description": "d"}),
            req(params={"group_id": "{group:telco}"}, json={"description": "d"}),
            # Air Co's group with its profile may not take in the city's pole, whoever asks
            takeover=Target(
                "airco",
                req(params={"group_id": "{group:airco}"}, json={"poles": ["AIR-0001", "RTD-0001"]}),
                scoped=403,
                unscoped=403,
            ),
        ),
    ),
    ("DELETE", "/api/groups/{group_id}"): Route(
        "operator",
        204,
        pair(
            fresh(lambda w: {"params": {"group_id": w.group("airco", ["AIR-0001"])}}),
            fresh(lambda w: {"params": {"group_id": w.group("telco", ["TEL-0001"])}}),
        ),
    ),
    ("GET", "/api/stats"): Route("viewer", 200, own(req())),
    # ---- nodes
    ("GET", "/api/nodes"): Route("viewer", 200, own(req()), foreign=("RTD-",)),
    ("POST", "/api/nodes"): Route(
        "technician",
        201,
        pair(
            fresh(lambda w: {"json": {"pole": w.pole("airco")}}),
            fresh(lambda w: {"json": {"pole": w.pole("telco")}}),
            shared_pole=Target(
                "city",
                fresh(lambda w: {"json": {"pole": "RTD-0001", "node": uid("n")}}),
                scoped=403,
            ),
        ),
    ),
    ("GET", "/api/nodes/{node_id}"): Route(
        "viewer",
        200,
        pair(
            req(params={"node_id": "{node:AIR-0001}"}),
            req(params={"node_id": "{node:TEL-0001}"}),
            shared_pole=Target("city", req(params={"node_id": "{node:RTD-0001}"}), scoped=404),
        ),
    ),
    ("DELETE", "/api/nodes/{node_id}"): Route(
        "operator",
        204,
        pair(
            fresh(lambda w: {"params": {"node_id": w.node(w.pole("airco"))}}),
            fresh(lambda w: {"params": {"node_id": w.node(w.pole("telco"))}}),
        ),
    ),
    ("GET", "/api/nodes/{node_id}/configs"): Route(
        "viewer",
        200,
        pair(
            req(params={"node_id": "{node:AIR-0001}"}), req(params={"node_id": "{node:TEL-0001}"})
        ),
    ),
    ("GET", "/api/nodes/{node_id}/config"): Route(
        "viewer",
        200,
        pair(
            req(params={"node_id": "{node:AIR-0001}"}), req(params={"node_id": "{node:TEL-0001}"})
        ),
    ),
    ("POST", "/api/nodes/{node_id}/config"): Route(
        "operator",
        200,
        pair(
            req(params={"node_id": "{node:AIR-0001}"}), req(params={"node_id": "{node:TEL-0001}"})
        ),
    ),
    ("POST", "/api/nodes/{node_id}/commands"): Route(
        "technician",
        202,
        pair(
            req(params={"node_id": "{node:AIR-0001}"}, json={"cmd": "selftest"}),
            req(params={"node_id": "{node:TEL-0001}"}, json={"cmd": "selftest"}),
            shared_pole=Target(
                "city",
                req(params={"node_id": "{node:RTD-0001}"}, json={"cmd": "revert"}),
                scoped=404,
            ),
        ),
    ),
    ("GET", "/api/nodes/{node_id}/commands"): Route(
        "viewer",
        200,
        pair(
            req(params={"node_id": "{node:AIR-0001}"}), req(params={"node_id": "{node:TEL-0001}"})
        ),
    ),
    # ---- dimming
    ("GET", "/api/programs"): Route("viewer", 200, own(req())),
    ("POST", "/api/programs"): Route(
        "operator",
        201,
        pair(
            fresh(
                lambda w: {
                    "json": {
                        "name": uid("p-airco-"),
                        "steps": _steps(),
                        "owner_id": w.owner["airco"],
                    }
                }
            ),
            fresh(
                lambda w: {
                    "json": {
                        "name": uid("p-telco-"),
                        "steps": _steps(),
                        "owner_id": w.owner["telco"],
                    }
                }
            ),
            denied=403,
        ),
    ),
    ("PUT", "/api/programs/{program_id}"): Route(
        "operator",
        200,
        pair(
            req(
                params={"program_id": "{program:airco}"},
                json={"name": "p-airco", "steps": _steps()},
            ),
            req(
                params={"program_id": "{program:telco}"},
                json={"name": "p-telco", "steps": _steps()},
            ),
            # the reported attack: the shared program every city pole runs
            shared=Target(
                "shared",
                req(
                    params={"program_id": "{program:shared}"},
                    json={"name": "p-shared", "steps": _steps()},
                ),
                scoped=403,
            ),
        ),
    ),
    ("GET", "/api/profiles"): Route("viewer", 200, own(req())),
    ("POST", "/api/profiles"): Route(
        "operator",
        201,
        pair(
            fresh(
                lambda w: {
                    "json": {
                        "name": uid("prof-airco-"),
                        "default_program": "p-airco",
                        "owner_id": w.owner["airco"],
                    }
                }
            ),
            fresh(
                lambda w: {
                    "json": {
                        "name": uid("prof-telco-"),
                        "default_program": "p-telco",
                        "owner_id": w.owner["telco"],
                    }
                }
            ),
            denied=403,
        ),
    ),
    ("PUT", "/api/profiles/{profile_id}"): Route(
        "operator",
        200,
        pair(
            req(
                params={"profile_id": "{profile:airco}"},
                json={"name": "prof-airco", "default_program": "p-airco"},
            ),
            req(
                params={"profile_id": "{profile:telco}"},
                json={"name": "prof-telco", "default_program": "p-telco"},
            ),
            shared=Target(
                "shared",
                req(
                    params={"profile_id": "{profile:shared}"},
                    json={"name": "prof-shared", "default_program": "p-shared"},
                ),
                scoped=403,
            ),
        ),
    ),
    ("POST", "/api/overrides"): Route(
        "operator",
        201,
        pair(
            req(json={"pole": "AIR-0001", "level": 0.3}),
            req(json={"pole": "TEL-0001", "level": 0.3}),
            shared_pole=Target("city", req(json={"pole": "RTD-0001", "level": 0}), scoped=404),
            telco_group=Target("telco", req(json={"group": "{group:telco}"}), scoped=404),
        ),
    ),
    ("GET", "/api/overrides"): Route("viewer", 200, own(req())),
    ("GET", "/api/overrides/{override_id}"): Route(
        "viewer",
        200,
        pair(
            req(params={"override_id": "{ov:airco}"}),
            req(params={"override_id": "{ov:telco}"}),
            # the city's emergency light reaches Air Co's lamp too: shown
            city=Target("city", req(params={"override_id": "{ov:city}"}), scoped=200),
        ),
    ),
    ("GET", "/api/overrides/{override_id}/commands"): Route(
        "viewer",
        200,
        pair(
            req(params={"override_id": "{ov:airco}"}),
            req(params={"override_id": "{ov:telco}"}),
            city=Target("city", req(params={"override_id": "{ov:city}"}), scoped=200),
        ),
    ),
    ("POST", "/api/overrides/{override_id}/revert"): Route(
        "operator",
        200,
        pair(
            fresh(
                lambda w: {
                    "params": {
                        "override_id": w.override("a-operator", {"pole": "AIR-0001", "level": 0})
                    }
                }
            ),
            fresh(
                lambda w: {
                    "params": {
                        "override_id": w.override("t-operator", {"pole": "TEL-0001", "level": 0})
                    }
                }
            ),
            # the reported attack: reverting the city's emergency light over the whole street
            city=Target(
                "city",
                fresh(
                    lambda w: {
                        "params": {
                            "override_id": w.override(
                                "admin", {"area": {"bbox": [4, 51, 5, 52]}, "mode": "event"}
                            )
                        }
                    }
                ),
                scoped=403,
                spares=frozenset(),  # it reached every owner's lamp: the revert does too
            ),
        ),
    ),
    # ---- firmware
    ("GET", "/api/firmware"): Route("viewer", 200, own(req())),
    ("POST", "/api/firmware"): Route(
        "operator",
        201,
        {
            "own": Target(
                "shared",
                fresh(
                    lambda w: {
                        "data": {"version": f"2.0.{next(_seq)}"},
                        "files": {"file": ("a.spa", SPA)},
                    }
                ),
                scoped=403,
            )
        },
    ),
    ("GET", "/api/campaigns"): Route("viewer", 200, own(req())),
    ("POST", "/api/nodes/{node_id}/rollback"): Route(
        "operator",
        202,
        pair(
            req(params={"node_id": "{node:AIR-0001}"}, json={"package_id": "{pkg:airco}"}),
            req(params={"node_id": "{node:TEL-0001}"}, json={"package_id": "{pkg:telco}"}),
            denied=403,
        )
        | {
            "own": Target(
                "airco",
                req(params={"node_id": "{node:AIR-0001}"}, json={"package_id": "{pkg:airco}"}),
                scoped=403,
            )
        },
    ),
    ("POST", "/api/campaigns"): Route(
        "operator",
        201,
        pair(
            req(json={"package_id": "{pkg:airco}", "group_id": "{group:airco}"}),
            req(json={"package_id": "{pkg:telco}", "group_id": "{group:telco}"}),
            denied=403,
        )
        | {
            "own": Target(
                "airco",
                req(json={"package_id": "{pkg:airco}", "group_id": "{group:airco}"}),
                scoped=403,
            )
        },
    ),
    ("GET", "/api/campaigns/{campaign_id}"): Route(
        "viewer",
        200,
        pair(
            req(params={"campaign_id": "{campaign:airco}"}),
            req(params={"campaign_id": "{campaign:telco}"}),
        ),
    ),
    ("GET", "/api/campaigns/{campaign_id}/nodes"): Route(
        "viewer",
        200,
        pair(
            req(params={"campaign_id": "{campaign:airco}"}),
            req(params={"campaign_id": "{campaign:telco}"}),
        ),
    ),
    **{
        ("POST", f"/api/campaigns/{{campaign_id}}/{verb}"): Route(
            "operator",
            200,
            {
                "own": Target(
                    "airco",
                    fresh(_campaign_of("airco", halted)),
                    scoped=403,  # rollouts are the municipality's, even to Air Co's nodes
                ),
                "other": Target(
                    "telco",
                    fresh(_campaign_of("telco", halted)),
                    scoped=404,
                ),
            },
        )
        for verb, halted in (("halt", False), ("resume", True), ("cancel", False))
    },
    # ---- alarms, energy, audit
    ("GET", "/api/alarms"): Route("viewer", 200, own(req())),
    **{
        ("POST", f"/api/alarms/{{alarm_id}}/{verb}"): Route(
            "operator",
            200,
            pair(
                fresh(lambda w: {"params": {"alarm_id": w.alarm("AIR-0001", None, "a")}}),
                fresh(lambda w: {"params": {"alarm_id": w.alarm("TEL-0001", None, "t")}}),
                city_lamp=Target(
                    "city",
                    fresh(
                        lambda w: {
                            "params": {"alarm_id": w.alarm("RTD-0001", w.ids["lamp:RTD-0001"], "c")}
                        }
                    ),
                    scoped=404,
                ),
            ),
        )
        for verb in ("acknowledge", "clear")
    },
    ("GET", "/api/energy/poles/{pole_id}"): Route(
        "viewer",
        200,
        pair(
            req(params={"pole_id": "AIR-0001"}, query=DAY),
            req(params={"pole_id": "TEL-0001"}, query=DAY),
            # the reported leak: the city lamp's energy on the pole that carries Air Co's module
            city_lamp=Target("city", req(params={"pole_id": "RTD-0001"}, query=DAY), scoped=404),
        ),
    ),
    ("GET", "/api/energy/groups/{group_id}"): Route(
        "viewer",
        200,
        pair(
            req(params={"group_id": "{group:airco}"}, query=DAY),
            req(params={"group_id": "{group:telco}"}, query=DAY),
        ),
    ),
    ("GET", "/api/audit"): Route("viewer", 200, own(req())),
    # ---- ingest
    ("GET", "/api/ingest/stats"): Route(
        "viewer", 200, {"own": Target("shared", req(), scoped=403)}
    ),
    ("GET", "/api/ingest/dead-letters"): Route(
        "viewer", 200, {"own": Target("shared", req(), scoped=403)}
    ),
    ("GET", "/api/ingest/nodes"): Route("viewer", 200, own(req()), foreign=("RTD-",)),
    ("GET", "/api/ingest/events"): Route("viewer", 200, own(req()), foreign=("RTD-",)),
    ("GET", "/api/ingest/acks"): Route("viewer", 200, own(req()), foreign=("RTD-",)),
    # ---- commissioning
    ("POST", "/api/commissioning"): Route(
        "technician",
        201,
        pair(
            fresh(lambda w: {"json": record("AIR-0001")}),
            fresh(lambda w: {"json": record("TEL-0001")}),
            shared_pole=Target("city", fresh(lambda w: {"json": record("RTD-0001")}), scoped=403),
        ),
    ),
    ("GET", "/api/commissioning"): Route("viewer", 200, own(req())),
    ("GET", "/api/commissioning/{record_id}"): Route(
        "viewer",
        200,
        pair(
            req(params={"record_id": "{record:AIR-0001}"}),
            req(params={"record_id": "{record:TEL-0001}"}),
        ),
    ),
    # ---- the dashboard's own API
    ("GET", "/api/dashboard/poles/{pole_id}/latest"): Route(
        "viewer",
        200,
        pair(
            req(params={"pole_id": "AIR-0001"}),
            req(params={"pole_id": "TEL-0001"}),
            shared_pole=Target("city", req(params={"pole_id": "RTD-0001"}), scoped=200),
        ),
        foreign=("energyConsumed", "rsrp"),
    ),
    ("GET", "/api/dashboard/poles/{pole_id}/series"): Route(
        "viewer",
        200,
        pair(
            req(params={"pole_id": "AIR-0001"}, query=SERIES),
            req(params={"pole_id": "TEL-0001"}, query=SERIES),
            shared_pole=Target(
                "city", req(params={"pole_id": "RTD-0001"}, query=SERIES), scoped=200
            ),
        ),
        foreign=("energyConsumed", "rsrp"),
    ),
    ("POST", "/api/events/ticket"): Route("viewer", 200, own(req())),
}

# Routes that take no operator token, and why they are outside the matrix.
PUBLIC = {
    ("GET", "/healthz"): "liveness",
    ("GET", "/readyz"): "readiness",
    ("GET", "/metrics"): "metrics (issue #19 item 7 decides its protection)",
    ("POST", "/api/auth/token"): "log in",
    ("GET", "/firmware/{name}"): "nodes download packages; integrity by the signed hash",
    ("GET", "/api/events/stream"): "takes a single-use ticket from /api/events/ticket",
}
PUBLIC_PREFIXES = ("/sta/", "/opendata")  # open data: the token adds restricted streams only


def openapi_routes(api: Api) -> set[tuple[str, str]]:
    spec = api.client.app.openapi()  # type: ignore[attr-defined]
    return {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}


# ---- the fixtures and the cases ------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp: Path = tmp_path_factory.mktemp("policy")
    with running_api(tmp, **QUIET) as api:
        w = build(api)
        yield w
        w.snapshots.probe.close()


def test_every_route_is_in_the_matrix(world: World) -> None:
    routes = {r for r in openapi_routes(world.api) if not r[1].startswith(PUBLIC_PREFIXES)}
    unknown = sorted(routes - ROUTES.keys() - PUBLIC.keys())
    assert not unknown, f"routes with no authorisation decision in the matrix: {unknown}"
    stale = sorted((ROUTES.keys() | PUBLIC.keys()) - routes)
    assert not stale, f"matrix entries for routes that no longer exist: {stale}"


def _resolve(v: Any, ids: dict[str, Any]) -> Any:
    if isinstance(v, dict):
        return {k: _resolve(x, ids) for k, x in v.items()}
    if isinstance(v, list):
        return [_resolve(x, ids) for x in v]
    if isinstance(v, str) and v.startswith("{") and v.endswith("}") and v[1:-1] in ids:
        return ids[v[1:-1]]
    return v


def _call(w: World, who: str, method: str, route: str, r: dict[str, Any]) -> Any:
    r = _resolve(r, w.ids)
    path = route
    for k, v in r.get("params", {}).items():
        path = path.replace("{" + k + "}", str(v))
    return w.api.call(
        who,
        method,
        path,
        json=r.get("json"),
        params=r.get("query"),
        data=r.get("data"),
        files=r.get("files"),
    )


def _no_foreign(w: World, text: str, extra: tuple[str, ...]) -> None:
    leaked = [m for m in FOREIGN + extra if m in text]
    assert not leaked, f"shown to an Air Co account: {leaked}: {text[:600]}"


def _node_ids(v: Any) -> Iterator[int]:
    if isinstance(v, dict):
        for k, x in v.items():
            if k == "node_id" and isinstance(x, int):
                yield x
            else:
                yield from _node_ids(x)
    elif isinstance(v, list):
        for x in v:
            yield from _node_ids(x)


def _airco_nodes(w: World) -> set[int]:
    with w.api.state.registry.session() as db:
        q = select(Node.id).join(Pole, Pole.id == Node.pole_id)
        return set(db.scalars(q.where(Pole.owner_id == w.owner["airco"])))


@pytest.mark.parametrize(("method", "path"), sorted(ROUTES))
def test_route_x_role_x_owner(world: World, method: str, path: str) -> None:
    route = ROUTES[(method, path)]
    failures: list[str] = []
    for (name, target), who in itertools.product(
        route.targets.items(), [f"{s}-{role}" for s in ("u", "a") for role in ROLES]
    ):
        role, scoped = who.split("-", 1)[1], who.startswith("a-")
        request = target.make(world)
        if ROLE_RANK[role] < ROLE_RANK[route.role]:
            want = 403
        elif scoped:
            want = route.ok if target.scoped is None else target.scoped
        else:
            want = route.ok if target.unscoped is None else target.unscoped
        before = world.snapshots.take()
        got = _call(world, who, method, path, request)
        after = world.snapshots.take()
        if route.after is not None and got.status_code < 300:
            route.after(world, who)
        case = f"{method} {path} [{name}] as {who}: {got.status_code} {got.text[:200]}"
        if got.status_code != want:
            failures.append(f"{case} (wanted {want})")
            continue
        if got.status_code >= 400:
            if before != after:
                failures.append(f"{case}: refused, yet the registry changed")
            continue
        untouched: set[str | None] = (
            {None, "city", "telco"}
            if scoped
            else set(target.spares)
            if target.spares is not None
            else {"airco", "telco"} - {target.owner}
        )
        if rows_of(before, untouched) != rows_of(after, untouched):
            changed = sorted(
                k
                for k in rows_of(after, untouched).keys() | rows_of(before, untouched).keys()
                if before.get(k) != after.get(k)
            )
            failures.append(f"{case}: changed what belongs to {untouched}: {changed}")
        if scoped and got.content:
            try:
                _no_foreign(world, got.text, route.foreign)
            except AssertionError as e:
                failures.append(f"{case}: {e}")
            stray = set(_node_ids(got.json())) - _airco_nodes(world)
            if stray:
                failures.append(f"{case}: shows nodes of other owners {sorted(stray)}")
    assert not failures, "\n".join(failures)


def test_the_compiler_never_lets_a_foreign_profile_light_a_pole(world: World) -> None:
    """Defence behind the routes: rows that slipped past them (a stale membership, a lamp that
    changed owner) still do not let a group's or profile's owner set another owner's light."""
    w = world
    with w.api.state.registry.session() as db:
        g = db.get(Group, w.ids["group:airco"])
        assert g is not None
        db.add(GroupPole(group_id=g.id, pole_id="TEL-0001"))
        tel = db.get(Pole, "TEL-0001")
        assert tel is not None
        tel.profile_id = w.ids["profile:airco"]
        db.flush()
        from controller.fleet import profile_for

        chosen = profile_for(db, tel)
        assert chosen is not None and chosen.id == w.ids["profile:telco"]
        db.rollback()


def test_open_data_with_a_scoped_token_adds_only_its_owners_restricted_streams(
    world: World,
) -> None:
    """The open-data reads that take a token: every stream of the street is restricted, so the
    public sees none, Air Co's token adds its air module's and nothing of the others."""
    api = world.api

    def quantities(who: str, path: str, key: str) -> set[str]:
        r = api.call(who, "GET", path)
        assert r.status_code == 200, r.text
        return {str(x[key]) for x in r.json()["value"]}

    latest = "/opendata/v1/latest"
    assert quantities("", latest, "quantity") == set()
    assert not {"rsrp", "energyConsumed"} & quantities("a-viewer", latest, "quantity")
    assert "pm25" in quantities("a-viewer", latest, "quantity")
    assert {"energyConsumed", "pm25"} <= quantities("u-viewer", latest, "quantity")
    names = " ".join(quantities("a-viewer", "/sta/v1.1/Datastreams", "name"))
    assert "TEL-" not in names and "rsrp" not in names and "energyConsumed" not in names
