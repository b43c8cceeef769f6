"""SensorThings 1.1 read side: entities, navigation, query options, paging, errors, and that
filters run in the store's SQL with the same answers as a plain reading of the data."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.opendata.entities import OBS_ID_BASE, TYPES
from controller.opendata.query import parse_filter
from controller.store.base import ObservationQuery, StreamKey
from controller.store.sqlite import SqliteStore
from tests.harness.api import Api
from tests.opendata_helpers import make_street, street_api

STA = "/sta/v1.1"


@pytest.fixture(scope="module")
def street(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Api, dict[str, Any]]]:
    d = tmp_path_factory.mktemp("sta")
    made = make_street(d, poles=12, days=1, period_s=300)
    with street_api(d, opendata_max_top=50, opendata_catalog_ttl_s=60) as api:
        yield api, made


def get(api: Api, path: str, status: int = 200, **params: Any) -> Any:
    r = api.client.get(STA + path, params=params)
    assert r.status_code == status, f"{path} {params}: {r.status_code} {r.text[:300]}"
    return r.json() if r.headers["content-type"].startswith("application/json") else r.text


def pm25_id(made: dict[str, Any], pole: str = "RTD-0001") -> int:
    return int(made["index"][StreamKey(pole, "n1", "air", "pm25")].id)


def test_landing_and_entity_sets(street: tuple[Api, dict[str, Any]]) -> None:
    api, _ = street
    root = get(api, "")
    names = {v["name"] for v in root["value"]}
    assert names == {t.plural for t in TYPES.values()}
    assert any("request-data" in c for c in root["serverSettings"]["conformance"])
    for plural in names:
        body = get(api, f"/{plural}", **{"$top": "1"})
        assert len(body["value"]) == 1, plural
        item = body["value"][0]
        assert item["@iot.selfLink"].endswith(")")
        assert all(v.startswith("http") for k, v in item.items() if k.endswith("navigationLink"))


def test_navigation_entities_property_value_and_ref(street: tuple[Api, dict[str, Any]]) -> None:
    api, made = street
    ds = get(api, "/Things('RTD-0001')/Datastreams", **{"$count": "true"})
    qs = {d["properties"]["quantity"] for d in ds["value"]}
    assert qs == {"illuminanceLevel", "powerConsumption", "pm25", "pm10", "temperature"} | {
        "relativeHumidity"
    }
    assert ds["@iot.count"] == 6
    one = get(api, f"/Datastreams({pm25_id(made)})")
    assert one["unitOfMeasurement"]["symbol"] == "µg/m³"
    assert one["observationType"].endswith("OM_Measurement")
    assert get(api, f"/Datastreams({pm25_id(made)})/Thing")["@iot.id"] == "RTD-0001"
    assert get(api, f"/Datastreams({pm25_id(made)})/Sensor")["name"] == "SPS30"
    assert get(api, f"/Datastreams({pm25_id(made)})/ObservedProperty")["@iot.id"] == "pm25"
    assert get(api, "/Things('RTD-0001')/Locations")["value"][0]["location"]["type"] == "Point"
    assert get(api, "/Things('RTD-0001')/HistoricalLocations")["value"][0]["time"].endswith("Z")
    assert get(api, "/Things('RTD-0001')/name") == {"name": "Pole 1"}
    assert get(api, "/Things('RTD-0001')/name/$value") == "Pole 1"
    refs = get(api, "/Things('RTD-0001')/Datastreams/$ref")
    assert all(set(v) == {"@iot.selfLink"} for v in refs["value"])
    obs = get(api, f"/Datastreams({pm25_id(made)})/Observations", **{"$top": "1"})["value"][0]
    again = get(api, f"/Observations({obs['@iot.id']})")
    assert again["result"] == obs["result"]
    assert get(api, f"/Observations({obs['@iot.id']})/Datastream")["@iot.id"] == pm25_id(made)
    assert get(api, f"/Observations({obs['@iot.id']})/FeatureOfInterest")["@iot.id"] == "RTD-0001"
    foi_obs = get(api, "/FeaturesOfInterest('RTD-0001')/Observations", **{"$count": "true"})
    assert foi_obs["@iot.count"] == 6 * 288


def test_errors_say_why(street: tuple[Api, dict[str, Any]]) -> None:
    api, made = street
    assert get(api, "/Things('NOPE')", 404)["code"] == 404
    assert get(api, "/Datastreams(999999)", 404)
    assert get(api, f"/Observations({pm25_id(made) * OBS_ID_BASE + 1})", 404)
    assert get(api, "/Nothing", 404)
    assert "name eq" in get(api, "/Things", 400, **{"$filter": "name eq"})["message"]
    assert "nope" in get(api, "/Things", 400, **{"$filter": "nope eq 1"})["message"]
    assert get(api, "/Things", 400, **{"$top": "-1"})
    assert get(api, "/Things", 400, **{"$select": "bogus"})
    assert get(api, "/Things", 400, **{"$expand": "Bogus"})
    assert get(api, "/Things", 400, **{"$bogus": "1"})
    assert get(api, "/Things", 501, **{"$search": "x"})["code"] == 501
    assert get(api, "/Things", 501, **{"$filter": "Datastreams/any(d: d/name eq 'x')"})
    assert get(
        api, "/Things", 501, **{"$filter": "st_crosses(Locations/location, geography'POINT(4 51)')"}
    )


def test_filters_functions_geo_order(street: tuple[Api, dict[str, Any]]) -> None:
    api, made = street
    names = get(api, "/Things", **{"$filter": "startswith(name, 'Pole 1')", "$select": "name"})
    assert [v["name"] for v in names["value"]] == ["Pole 1", "Pole 10", "Pole 11"]
    got = get(api, "/Things", **{"$filter": "tolower(name) eq 'pole 3' or length(name) eq 7"})
    assert {v["name"] for v in got["value"]} == {"Pole 3", "Pole 10", "Pole 11"}
    got = get(
        api,
        "/Datastreams",
        **{
            "$filter": "Thing/properties/district eq 'IJsselmonde'"
            " and ObservedProperty/name eq 'LAeq'",
            "$select": "id,name",
        },
    )
    assert [v["name"] for v in got["value"]] == [f"LAeq at Pole {i}" for i in range(0, 12, 2)]
    things = get(api, "/Things", **{"$filter": "Datastreams/ObservedProperty/@iot.id eq 'LAeq'"})
    assert [t["@iot.id"] for t in things["value"]] == [f"RTD-{i:04d}" for i in range(0, 12, 2)]
    # an area: the first row of poles (lat 51.8800), all columns
    poly = "POLYGON((4.52 51.8798, 4.54 51.8798, 4.54 51.8802, 4.52 51.8802, 4.52 51.8798))"
    inside = get(api, "/Locations", **{"$filter": f"st_within(location, geography'{poly}')"})
    assert sorted(v["@iot.id"] for v in inside["value"]) == [f"RTD-{i:04d}" for i in range(8)]
    inter = get(
        api, "/Things", **{"$filter": f"geo.intersects(Locations/location, geography'{poly}')"}
    )
    assert len(inter["value"]) == 8
    near = get(
        api,
        "/FeaturesOfInterest",
        **{"$filter": "geo.distance(feature, geography'POINT(4.53 51.88)') lt 0.0003"},
    )
    assert [v["@iot.id"] for v in near["value"]] == ["RTD-0000"]
    desc = get(api, "/Things", **{"$orderby": "name desc", "$top": "2", "$select": "name"})
    assert [v["name"] for v in desc["value"]] == ["Pole 9", "Pole 8"]
    start = made["end"] - 3600
    iso = __import__("controller.opendata.render", fromlist=["iso"]).iso(start)
    obs = get(
        api,
        f"/Datastreams({pm25_id(made)})/Observations",
        **{
            "$filter": f"phenomenonTime gt {iso} and result ge 0 and round(result) ge 0"
            " and hour(resultTime) ge 0",
            "$count": "true",
        },
    )
    assert obs["@iot.count"] == 12
    top = get(
        api,
        "/Observations",
        **{
            "$filter": "Datastream/ObservedProperty/name eq 'pm25'",
            "$orderby": "result desc",
            "$top": "1",
        },
    )
    best = top["value"][0]["result"]
    above = get(
        api,
        "/Observations",
        **{
            "$filter": f"Datastream/ObservedProperty/name eq 'pm25' and result gt {best}",
            "$count": "true",
        },
    )
    assert above["@iot.count"] == 0


def test_paging_is_stable_complete_and_capped(street: tuple[Api, dict[str, Any]]) -> None:
    api, made = street
    path = f"/Datastreams({pm25_id(made)})/Observations"
    first = get(api, path, **{"$top": "5000", "$count": "true"})
    assert len(first["value"]) == 50  # the server maximum
    total = first["@iot.count"]
    assert total == 288
    seen: list[int] = []
    url: str | None = STA + path + "?$top=40&$orderby=phenomenonTime desc"
    while url:
        r = api.client.get(url)
        assert r.status_code == 200
        body = r.json()
        seen += [v["@iot.id"] for v in body["value"]]
        url = body.get("@iot.nextLink")
    assert len(seen) == total == len(set(seen))
    assert seen == sorted(seen, reverse=True)


def test_select_expand_nested_and_data_array(street: tuple[Api, dict[str, Any]]) -> None:
    api, _ = street
    body = get(
        api,
        "/Things('RTD-0003')",
        **{
            "$select": "name,Datastreams",
            "$expand": "Datastreams($filter=ObservedProperty/name eq 'presenceCount';"
            "$expand=Observations($top=2;$orderby=phenomenonTime desc;"
            "$select=result,phenomenonTime),"
            "ObservedProperty;$count=true)",
        },
    )
    assert set(body) == {
        "name",
        "Datastreams",
        "Datastreams@iot.count",
        "Datastreams@iot.navigationLink",
    }
    (ds,) = body["Datastreams"]
    assert ds["ObservedProperty"]["name"] == "presenceCount"
    assert len(ds["Observations"]) == 2
    assert all(set(o) == {"result", "phenomenonTime"} for o in ds["Observations"])
    arr = get(
        api,
        "/Observations",
        **{
            "$resultFormat": "dataArray",
            "$filter": "Datastream/Thing/@iot.id eq 'RTD-0002'",
            "$select": "result,phenomenonTime",
            "$top": "50",
        },
    )
    assert arr["value"][0]["components"] == ["result", "phenomenonTime"]
    assert sum(len(g["dataArray"]) for g in arr["value"]) == 50
    assert "@iot.nextLink" in arr


def test_motion_only_as_counts_per_interval(street: tuple[Api, dict[str, Any]]) -> None:
    api, made = street
    ds = made["index"][StreamKey("RTD-0003", "n1", "motion", "presenceCount")].id
    obs = get(api, f"/Datastreams({ds})/Observations", **{"$top": "50", "$count": "true"})
    assert obs["@iot.count"] == 24 * 4  # one day of 15-minute windows, from 5-minute readings
    assert len(obs["value"]) == 50
    for o in obs["value"]:
        _start, end = o["phenomenonTime"].split("/")
        assert end[14:16] in ("00", "15", "30", "45") and end[17:] == "00Z"
        assert isinstance(o["result"], int)


# ---- pushdown: the SQL gives what a plain reading of the data gives -------------------------

CASES = [
    ("result gt 12", lambda ts, v: v > 12),
    ("result ge 10 and result lt 14 or result eq 20.0", lambda ts, v: 10 <= v < 14 or v == 20.0),
    ("not (result le 11)", lambda ts, v: not v <= 11),
    ("result add 1 gt 15 and result mul 2 lt 30", lambda ts, v: v + 1 > 15 and v * 2 < 30),
    (
        "floor(result) eq 12 or ceiling(result) eq 9",
        lambda ts, v: math.floor(v) == 12 or math.ceil(v) == 9,
    ),
    ("hour(phenomenonTime) eq 8", lambda ts, v: (ts % 86400) // 3600 == 8),
    ("resultTime ge {mid}", lambda ts, v: ts >= MID[0]),
]
MID: list[int] = [0]


def test_filters_run_in_sql_with_the_same_answers(tmp_path: Path) -> None:
    made = make_street(tmp_path, poles=2, days=1, period_s=600)
    store = SqliteStore(tmp_path / "streetpole.db")
    try:
        sid = made["index"][StreamKey("RTD-0001", "n1", "air", "pm25")].id
        key = StreamKey("RTD-0001", "n1", "air", "pm25")
        points = store.query(key, 0, 2**31)
        MID[0] = points[len(points) // 2].ts
        from controller.opendata.render import iso

        for text, pred in CASES:
            where = parse_filter(text.format(mid=iso(MID[0])))
            page = store.observations(
                ObservationQuery((sid,), filter=where, limit=10_000, count=True)
            )
            want = [p.ts for p in points if pred(p.ts, p.v)]
            assert [r[1] for r in page.rows] == want, text
            assert page.total == len(want)
            assert 0 < len(want) < len(points), f"{text}: a case that does not discriminate"
    finally:
        store.close()
