"""The open-data API as a consumer meets it: one unit per quantity in every API (UCUM code and
symbol from protocols/quantity_info.py), aggregates without float noise, archives that are 404
for an empty day, gzipped on request and carry coordinates, a register CSV with true/false, the
register per module type that a privacy statement is made from, and the SensorThings root with
a trailing slash."""

from __future__ import annotations

import csv
import gzip
import io
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.opendata.gzipped import accepts_gzip
from controller.opendata.render import iso
from protocols.quantity_info import INFO
from tests.harness.api import Api
from tests.opendata_helpers import make_street, street_api


@pytest.fixture(scope="module")
def street(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Api, dict[str, Any]]]:
    d: Path = tmp_path_factory.mktemp("consumer")
    made = make_street(d, poles=7, days=1.2, period_s=600)
    with street_api(d) as api:
        yield api, made


def _units_by_quantity(items: list[dict[str, Any]]) -> dict[str, set[tuple[str, str]]]:
    seen: dict[str, set[tuple[str, str]]] = {}
    for it in items:
        seen.setdefault(it["quantity"], set()).add((it["unit"], it["unitSymbol"]))
    return seen


def test_every_api_gives_the_same_unit(street: tuple[Api, dict[str, Any]]) -> None:
    api, made = street
    c = api.client
    want = {q: {(i.unit.ucum, i.unit.symbol)} for q, i in INFO.items()}
    latest = c.get("/opendata/v1/latest").json()["value"]
    assert _units_by_quantity(latest).items() <= want.items()
    assert {"pm25", "illuminanceLevel", "temperature", "relativeHumidity"} <= {
        x["quantity"] for x in latest
    }
    feats = c.get("/opendata/v1/poles.geojson").json()["features"]
    in_map = [x for f in feats for x in f["properties"]["latest"]]
    assert _units_by_quantity(in_map).items() <= want.items()
    register = c.get("/opendata/v1/register").json()["value"]
    in_register = [d for e in register for d in e["datastreams"]]
    assert _units_by_quantity(in_register).items() <= want.items()
    start, end = iso(made["start"]), iso(made["end"] + 1)
    aggs = c.get(f"/opendata/v1/aggregates?pole=RTD-0000&start={start}&end={end}").json()
    assert _units_by_quantity(aggs["value"]).items() <= want.items()
    text = c.get(f"/opendata/v1/csv?pole=RTD-0000&start={start}&end={end}").text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows and {(r["quantity"], r["unit"]) for r in rows} <= {
        (q, i.unit.ucum) for q, i in INFO.items()
    }
    assert {r["unit"] for r in rows if r["quantity"] == "relativeHumidity"} == {"%"}
    for ds in c.get("/sta/v1.1/Datastreams?$top=1000").json()["value"]:
        info = INFO[ds["properties"]["quantity"]]
        uom = ds["unitOfMeasurement"]
        assert uom["symbol"] == info.unit.symbol
        assert uom["definition"] == "https://ucum.org/ucum#" + info.unit.ucum
        assert uom["name"] == info.unit.name
    assert all(x["unit"] != "/" and x["unitSymbol"] != "ug/m3" for x in latest)
    # the operator dashboard's API too
    ops = api.ok("admin", "GET", "/api/dashboard/poles/RTD-0000/latest")["value"]
    assert {"pm25", "illuminanceLevel", "no2"} <= {x["q"] for x in ops}
    for x in ops:
        assert (x["unit"], x["unitSymbol"]) == (INFO[x["q"]].unit.ucum, INFO[x["q"]].unit.symbol)


def test_aggregates_have_no_float_noise(street: tuple[Api, dict[str, Any]]) -> None:
    api, made = street
    r = api.client.get(
        f"/opendata/v1/aggregates?pole=RTD-0000&window=hour"
        f"&start={iso(made['start'])}&end={iso(made['end'] + 1)}"
    ).json()
    means = 0
    for stream in r["value"]:
        places = INFO[stream["quantity"]].api_decimals
        for bucket in stream["value"]:
            if "mean" in bucket:
                means += 1
                assert round(bucket["mean"], places) == bucket["mean"], (stream, bucket)
                assert len(repr(bucket["mean"]).split(".")[-1]) <= places, bucket
    assert means > 50
    # the light level is 0.3 all night: its mean said 0.29999999999999993
    light = next(s for s in r["value"] if s["quantity"] == "illuminanceLevel")
    assert 0.3 in {b["mean"] for b in light["value"]}


def test_csv_says_its_default_window(street: tuple[Api, dict[str, Any]]) -> None:
    api, _made = street
    r = api.client.get("/opendata/v1/csv?pole=RTD-0001")
    assert r.status_code == 200
    start, end = r.headers["x-time-range"].split("/")
    assert "X-Time-Range" in r.headers["access-control-expose-headers"]  # readable by a page
    assert len(r.text.splitlines()) > 1
    from controller.opendata.query import parse_time

    assert parse_time(end) - parse_time(start) == 86400
    body = api.client.get("/opendata/v1/aggregates?pole=RTD-0001").json()
    assert parse_time(body["end"]) - parse_time(body["start"]) == 86400


def today() -> str:
    return iso(time.time())[:10]


def test_archives_404_gzip_and_coordinates(street: tuple[Api, dict[str, Any]]) -> None:
    api, made = street
    c = api.client
    day = iso(made["end"] - 600)[:10]
    listed = c.get("/opendata/v1/archives").json()["value"]
    with_data = {iso(ts)[:10] for ts in range(made["start"] + 600, made["end"] + 1, 600)}
    assert [d["day"] for d in listed] == sorted(with_data - {today()})  # whole days only
    for d in listed:  # every day listed has its archive
        assert c.head(d["url"]).status_code == 200 and d["gzip"] == d["url"] + ".gz"
    # nothing published that day: 404 with a reason, for the CSV and its gzip alike
    for path in ("/opendata/v1/archives/2001-01-01.csv", "/opendata/v1/archives/2001-01-01.csv.gz"):
        r = c.get(path)
        assert r.status_code == 404 and "2001-01-01" in r.json()["message"]
    plain = c.get(f"/opendata/v1/archives/{day}.csv", headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200 and "content-encoding" not in plain.headers
    assert plain.headers["vary"] == "Accept-Encoding"
    rows = list(csv.DictReader(io.StringIO(plain.text)))
    assert len(rows) > 100
    poles = {f["id"]: f for f in c.get("/opendata/v1/poles.geojson").json()["features"]}
    for row in rows:
        f = poles[row["pole"]]
        assert [float(row["lon"]), float(row["lat"])] == f["geometry"]["coordinates"]
        assert row["district"] == f["properties"]["district"] != ""
    # gzip in transit: the bytes on the wire are gzip (read raw, not decoded by the client)
    with c.stream(
        "GET", f"/opendata/v1/archives/{day}.csv", headers={"Accept-Encoding": "gzip"}
    ) as r:
        assert r.headers["content-encoding"] == "gzip"
        assert r.headers["content-type"].startswith("text/csv")
        wire = b"".join(r.iter_raw())
    assert zlib.decompress(wire, 31).decode() == plain.text
    assert len(wire) < len(plain.content) / 4
    # gzip as a file
    gz = c.get(f"/opendata/v1/archives/{day}.csv.gz")
    assert gz.headers["content-type"] == "application/gzip"
    assert f'filename="streetpole-{day}.csv.gz"' in gz.headers["content-disposition"]
    assert gzip.decompress(gz.content).decode() == plain.text


def test_accept_encoding_is_read_as_the_rfc_says() -> None:
    assert accepts_gzip("gzip, deflate, br")
    assert accepts_gzip("br;q=1.0, gzip;q=0.8")
    assert accepts_gzip("*")
    assert not accepts_gzip("gzip;q=0")
    assert not accepts_gzip("*, gzip;q=0")
    assert not accepts_gzip("identity")
    assert not accepts_gzip(None)


def test_register_csv_true_false_and_lists(street: tuple[Api, dict[str, Any]]) -> None:
    api, _made = street
    text = api.client.get("/opendata/v1/register.csv").text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows
    for flag in ("isPublic", "isOpenData", "isReusable", "containsPersonalInfoData"):
        assert {r[flag] for r in rows} == {"true", "false"}, flag
    air = next(r for r in rows if r["category"] == "air" and r["quantities"])
    assert air["quantities"].split(";") == ["pm10", "pm25", "relativeHumidity", "temperature"]
    assert "True" not in text and "False" not in text


def test_register_summary_for_a_privacy_statement(street: tuple[Api, dict[str, Any]]) -> None:
    api, _made = street
    c = api.client
    register = c.get("/opendata/v1/register").json()["value"]
    summary = c.get("/opendata/v1/register/summary").json()
    assert summary["modules"] == len(register)
    personal = {e["category"] for e in register if e["containsPersonalInfoData"]}
    assert personal == {"camera", "other"}  # the demo's camera and Wi-Fi counter
    assert set(summary["categoriesWithPersonalInfoData"]) == personal
    by = {t["category"]: t for t in summary["value"]}
    cams = [e for e in register if e["category"] == "camera"]
    assert by["camera"]["modules"] == len(cams) == by["camera"]["containsPersonalInfoData"]
    assert by["camera"]["published"] == 0 and by["camera"]["quantities"] == []
    assert by["air"]["containsPersonalInfoData"] == 0 and by["air"]["published"] > 0
    assert "crowd counting pilot" in by["other"]["observationGoals"]
    # /opendata's privacy statement is made from the register in the browser, as the portal's
    # (controller/dashboard/static/js/privacy.js; tests/test_portal_e2e.py reads it against
    # the register); the page itself claims nothing the register could contradict
    html = c.get("/opendata?lang=en").text
    assert "identifiers of people are collected" not in html and "/opendata/v1/register" in html


def test_service_root_with_and_without_slash(street: tuple[Api, dict[str, Any]]) -> None:
    api, _made = street
    a = api.client.get("/sta/v1.1")
    b = api.client.get("/sta/v1.1/")
    assert a.status_code == b.status_code == 200
    assert a.json() == b.json() and a.json()["value"][0]["name"] == "Things"


def test_quantities_json_is_public_and_cacheable(street: tuple[Api, dict[str, Any]]) -> None:
    api, _made = street
    r = api.client.get("/opendata/quantities.json")
    assert r.status_code == 200 and "max-age" in r.headers["cache-control"]
    assert r.headers["access-control-allow-origin"] == "*"
    pm = r.json()["quantities"]["pm25"]
    assert pm["symbol"] == "µg/m³" and pm["guidelines"][0]["value"] == 15
    links = api.client.get("/opendata/v1").json()["links"]
    assert links["quantities"].endswith("/opendata/quantities.json")
