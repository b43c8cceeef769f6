"""The street in the registry, through the operator API as an operator would do it: an owner,
a dimming program and profile, each pole with a lighting module and a module for each sensor a
simulated node may carry (ingest takes a reading only from a module that measures it), and
each node provisioned with
its own MQTT credentials (``POST /api/nodes``; the password is shown once, so every run
provisions again and the old password stops working)::

    with httpx.Client(base_url="http://127.0.0.1:8000") as http:
        creds = provision(http, token, layout)      # {pole id: Credentials}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from simulator.layout import Layout

OWNER = {"slug": "sim-city", "name": "Simulated city", "kind": "municipality"}
PROGRAM = {
    "name": "sim-night",
    "steps": [{"at": "sunset", "level": 0.2}, {"at": "sunrise", "level": 0.0}],
}
PROFILE: dict[str, Any] = {
    "name": "sim-presence",
    "default_program": "sim-night",
    "presence": {
        "level": 1.0,
        "hold_s": 60,
        "ramp_up_s": 1,
        "ramp_down_s": 10,
        "neighbour_level": 0.7,
    },
    "report_period_s": 60,
    "neighbour_radius_m": 45,
}
RATED_W = 60.0  # the simulated board's lamp (hardware/boards/sim.json)
# The simulated board's sensors (simulator/street.py SENSORS): a node reports each one's readings
# under the sensor's name as src; the module type says what it measures.
SENSOR_MODULES = {"pir": "motion", "pm": "air", "climate": "air"}


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str
    update_key: str
    ca: str | None = None  # the broker's CA (PEM) for node.json, when nodes use mqtts://
    server_name: str | None = None  # the name in the broker's certificate, if not the URL's host


class ApiError(RuntimeError):
    pass


def profile_body(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    body = dict(PROFILE)
    for k, v in (overrides or {}).items():
        if isinstance(v, dict) and isinstance(body.get(k), dict):
            body[k] = {**body[k], **v}
        else:
            body[k] = v
    return body


class _Api:
    def __init__(self, http: httpx.Client, token: str) -> None:
        self.http = http
        self.headers = {"Authorization": f"Bearer {token}"}

    def __call__(self, method: str, path: str, body: Any = None) -> Any:
        r = self.http.request(method, path, json=body, headers=self.headers)
        if r.status_code >= 300:
            raise ApiError(f"{method} {path}: {r.status_code} {r.text[:300]}")
        return r.json() if r.content else None


def demo_groups(poles: list[str]) -> dict[str, list[str]]:
    """The street in two sections along its poles, named by their first and last pole (unique
    per street, so two simulators on one controller keep their own), for group overrides,
    energy per group and campaigns to have something to work on."""
    if len(poles) < 2:
        return {}
    half = (len(poles) + 1) // 2
    parts = [poles[:half], poles[half:]]
    return {f"Section {part[0]}–{part[-1]}": part for part in parts}


def ensure_groups(api: _Api, poles: list[str]) -> None:
    have = {g["name"]: g for g in api("GET", "/api/groups")}
    for name, members in demo_groups(poles).items():
        if name in have:
            api("PATCH", f"/api/groups/{have[name]['id']}", {"poles": members})
        else:
            api("POST", "/api/groups", {"name": name, "poles": members})


def provision(
    http: httpx.Client,
    token: str,
    layout: Layout,
    profile: dict[str, Any] | None = None,
    node: str = "n1",
    log: Any = None,
) -> dict[str, Credentials]:
    """Register what is missing, provision every node; returns its credentials per pole."""
    api = _Api(http, token)
    owner = next((o for o in api("GET", "/api/owners") if o["slug"] == OWNER["slug"]), None)
    if owner is None:
        owner = api("POST", "/api/owners", OWNER)
    if not any(p["name"] == PROGRAM["name"] for p in api("GET", "/api/programs")):
        api("POST", "/api/programs", PROGRAM)
    body = profile_body(profile)
    prof = next((p for p in api("GET", "/api/profiles") if p["name"] == body["name"]), None)
    if prof is None:
        prof = api("POST", "/api/profiles", body)
    existing = {p["id"]: p for p in api("GET", "/api/poles")}
    creds: dict[str, Credentials] = {}
    for i, pole in enumerate(layout.poles):
        have = existing.get(pole.id)
        if have is None:
            api(
                "POST",
                "/api/poles",
                {
                    "id": pole.id,
                    "name": f"simulated pole {i + 1}",
                    "lat": pole.lat,
                    "lon": pole.lon,
                    "district": "Simulated",
                    "owner_id": owner["id"],
                    "profile_id": prof["id"],
                },
            )
        modules = [] if have is None else have["modules"]
        if not any(m["type"] == "lighting" for m in modules):
            api(
                "POST",
                f"/api/poles/{pole.id}/modules",
                {
                    "type": "lighting",
                    "owner_id": owner["id"],
                    "purpose": "street lighting (simulated)",
                    "node": node,
                    "src": "lamp",
                    "rated_power_w": RATED_W,
                },
            )
        for src, mtype in SENSOR_MODULES.items():
            if not any(m["src"] == src and m["node"] == node for m in modules):
                api(
                    "POST",
                    f"/api/poles/{pole.id}/modules",
                    {
                        "type": mtype,
                        "owner_id": owner["id"],
                        "purpose": f"{src} sensor (simulated)",
                        "node": node,
                        "src": src,
                    },
                )
        # replace: a new run takes over the nodes of the simulator's last run, which may have
        # been heard minutes ago (the controller refuses that otherwise; its password is gone)
        c = api(
            "POST", "/api/nodes", {"pole": pole.id, "node": node, "board": "sim", "replace": True}
        )
        creds[pole.id] = Credentials(
            c["mqtt_username"],
            c["mqtt_password"],
            c["update_key"],
            c.get("broker_ca"),
            c.get("broker_server_name"),
        )
        if log is not None and (i + 1) % 100 == 0:
            log(f"provisioned {i + 1}/{len(layout.poles)} poles")
    ensure_groups(api, [p.id for p in layout.poles])
    # Replacing the profile recompiles every node's config now that all poles exist, so the
    # first poles get their neighbours too (only changed configs are pushed).
    api("PUT", f"/api/profiles/{prof['id']}", body)
    return creds
