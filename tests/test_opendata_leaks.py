"""Restricted, closed and personal streams never leak into public responses: not through
$expand, navigation, filters, aggregates, CSV, archives, the register, GeoJSON or latest. A
token adds restricted streams (its own owner's when scoped), never closed or personal ones."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from controller.opendata.entities import OBS_ID_BASE
from controller.opendata.render import iso
from tests.harness.api import Api
from tests.opendata_helpers import hidden_ids, make_street, street_api


@pytest.fixture(scope="module")
def street(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Api, dict[str, Any]]]:
    d = tmp_path_factory.mktemp("leaks")
    made = make_street(d, poles=12, days=1, period_s=600)
    with street_api(d, opendata_catalog_ttl_s=0, opendata_max_top=100_000) as api:
        yield api, made


def public_texts(
    api: Api, made: dict[str, Any], headers: dict[str, str] | None = None
) -> dict[str, str]:
    c = api.client
    day = iso(made["end"] - 86400)[:10]
    start, end = iso(made["start"]), iso(made["end"] + 1)
    urls = [
        "/sta/v1.1/Things?$expand=Datastreams($expand=Sensor,ObservedProperty,Observations($top=1000))&$top=100",
        "/sta/v1.1/Datastreams?$top=1000",
        "/sta/v1.1/Sensors?$expand=Datastreams",
        "/sta/v1.1/ObservedProperties?$expand=Datastreams",
        "/sta/v1.1/FeaturesOfInterest?$expand=Observations($top=100000)",
        "/sta/v1.1/Observations?$top=100000&$expand=Datastream",
        "/sta/v1.1/Observations?$resultFormat=dataArray&$top=100000",
        "/opendata/v1/latest",
        "/opendata/v1/poles.geojson",
        "/opendata/v1/register",
        "/opendata/v1/register.csv",
        f"/opendata/v1/archives/{day}.csv",
    ]
    for i in range(12):
        urls.append(f"/opendata/v1/csv?pole=RTD-{i:04d}&start={start}&end={end}")
        urls.append(f"/opendata/v1/aggregates?pole=RTD-{i:04d}&window=day&start={start}&end={end}")
        urls.append(f"/sta/v1.1/Things('RTD-{i:04d}')/Datastreams?$expand=Observations($top=1)")
    out = {}
    for u in urls:
        r = c.get(u, headers=headers or {})
        assert r.status_code == 200, f"{u}: {r.status_code} {r.text[:200]}"
        out[u] = r.text
    return out


def stream_ids_in(text: str) -> set[int]:
    ids = {int(m) for m in re.findall(r"Datastreams\((\d+)\)", text)}
    ids |= {int(m) // OBS_ID_BASE for m in re.findall(r"Observations\((\d+)\)", text)}
    ids |= {int(m) for m in re.findall(r'"datastream":(\d+)', text)}
    ids |= {
        int(line.split(",")[0]) for line in text.splitlines()[1:] if re.match(r"^\d+,RTD", line)
    }
    return ids


@pytest.mark.slow
def test_nothing_hidden_appears_anywhere(street: tuple[Api, dict[str, Any]]) -> None:
    api, made = street
    hidden = hidden_ids(made["index"])
    assert len(hidden) == 3 + 3 + 2  # no2 on 0,4,8; cam on 0,5,10; wifi on 0,6
    texts = public_texts(api, made)
    seen: set[int] = set()
    for url, text in texts.items():
        ids = stream_ids_in(text)
        seen |= ids
        assert not ids & set(hidden), f"{url} shows hidden streams {ids & set(hidden)}"
        for word in ("no2", "NO2-B43F", "wifi-counter", "Air Co research"):
            if "register" in url:
                continue
            assert word not in text, f"{url} mentions {word}"
    # the public ones did appear, so the search above was looking at real output
    public = {i.id for k, i in made["index"].items()} - set(hidden)
    assert public and public <= seen


def test_hidden_streams_cannot_be_reached_directly(street: tuple[Api, dict[str, Any]]) -> None:
    api, made = street
    c = api.client
    hidden = hidden_ids(made["index"])
    assert hidden  # else the loop below checks nothing
    for sid in hidden:
        assert c.get(f"/sta/v1.1/Datastreams({sid})").status_code == 404
        assert c.get(f"/sta/v1.1/Datastreams({sid})/Observations").status_code == 404
        obs = sid * OBS_ID_BASE + made["end"]
        assert c.get(f"/sta/v1.1/Observations({obs})").status_code == 404
        assert c.get(f"/opendata/v1/csv?datastream={sid}").status_code == 404
        assert c.get(f"/opendata/v1/aggregates?datastream={sid}").status_code == 404
        r = c.get("/sta/v1.1/Observations", params={"$filter": f"Datastream/@iot.id eq {sid}"})
        assert r.status_code == 200 and r.json()["value"] == []


def test_register_lists_every_sensor_but_data_only_of_open_ones(
    street: tuple[Api, dict[str, Any]],
) -> None:
    api, _ = street
    reg = api.client.get("/opendata/v1/register").json()["value"]
    by_cat = {(e["pole"], e["sensorType"]): e for e in reg}
    cam = by_cat[("RTD-0005", "camera")]
    assert cam["isOpenData"] is False and cam["containsPersonalInfoData"] is True
    assert cam["isPublic"] is False and cam["datastreams"] == [] and cam["dataLink"] is None
    no2 = by_cat[("RTD-0004", "NO2-B43F")]
    assert no2["isPublic"] is True and no2["isOpenData"] is False and no2["datastreams"] == []
    wifi = by_cat[("RTD-0006", "wifi-counter")]
    assert wifi["isOpenData"] is False and wifi["quantities"] == []
    air = by_cat[("RTD-0004", "SPS30")]
    assert air["isOpenData"] and air["license"] == "CC-BY-4.0" and len(air["datastreams"]) == 4
    assert {e["observationGoal"] for e in reg} >= {"air quality monitoring", "crowd counting pilot"}


def test_motion_has_no_finer_aggregates(street: tuple[Api, dict[str, Any]]) -> None:
    api, made = street
    motion = [i.id for k, i in made["index"].items() if k.src == "motion"]
    r = api.client.get(f"/opendata/v1/aggregates?datastream={motion[0]}&window=minute")
    assert r.status_code == 400 and "900" in r.json()["message"]
    hourly = api.client.get(f"/opendata/v1/aggregates?datastream={motion[0]}&window=hour").json()
    assert set(hourly["value"][0]["value"][0]) == {"time", "sum"}
    # a whole pole's minutes (the portal's charts) leave the count out, and give the rest
    pole = next(k.pole for k in made["index"] if k.src == "motion")
    fine = api.client.get(f"/opendata/v1/aggregates?pole={pole}&window=minute")
    assert fine.status_code == 200, fine.text
    got = {s["quantity"] for s in fine.json()["value"]}
    assert got and "presenceCount" not in got


def test_tokens_add_restricted_only(street: tuple[Api, dict[str, Any]]) -> None:
    api, made = street
    hidden = hidden_ids(made["index"])
    no2 = {i for i, k in hidden.items() if k.src == "no2"}
    assert no2  # else "adds restricted" and "adds nothing" look alike
    api.account("viewer1", "viewer")
    api.account("other", "viewer", owner="telco")
    api.account("airco", "viewer", owner="airco")
    for who, expect in (("viewer1", no2), ("airco", no2), ("other", set())):
        headers = {"Authorization": f"Bearer {api.tokens[who]}"}
        r = api.client.get("/sta/v1.1/Datastreams?$top=1000&$select=id", headers=headers)
        ids = {v["@iot.id"] for v in r.json()["value"]}
        assert ids & set(hidden) == expect, who
        latest = api.client.get("/opendata/v1/latest", headers=headers).json()["value"]
        assert {v["datastream"] for v in latest} & set(hidden) == expect, who
    r = api.client.get("/sta/v1.1/Things", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401
