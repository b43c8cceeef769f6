"""The edge of the open-data API: licence and CORS headers, read-only, rate limits with
Retry-After, the landing page, and published positions coarsened per owner."""

from __future__ import annotations

from pathlib import Path

from tests.opendata_helpers import make_street, street_api


def test_headers_read_only_landing_and_precision(tmp_path: Path) -> None:
    make_street(tmp_path, poles=3, days=0.1, period_s=600)
    with street_api(
        tmp_path,
        opendata_licence="CC0-1.0",
        opendata_licence_url="https://creativecommons.org/publicdomain/zero/1.0/",
        opendata_owner_location_decimals={"city": 3},
    ) as api:
        c = api.client
        r = c.get("/sta/v1.1/Things")
        assert r.headers["access-control-allow-origin"] == "*"
        assert r.headers["x-license"] == "CC0-1.0"
        assert 'rel="license"' in r.headers["link"] and "zero/1.0" in r.headers["link"]
        assert c.get("/healthz").headers.get("x-license") is None
        assert c.post("/sta/v1.1/Things", json={"name": "x"}).status_code == 405
        assert c.delete("/sta/v1.1/Things('RTD-0000')").status_code == 405
        pre = c.options("/sta/v1.1/Things", headers={"Origin": "https://map.example"})
        assert pre.status_code == 204 and "GET" in pre.headers["access-control-allow-methods"]
        html = c.get("/opendata").text
        assert "CC0-1.0" in html and 'lang="nl"' in html and "/sta/v1.1" in html
        meta = c.get("/opendata/v1").json()
        assert meta["license"]["name"] == "CC0-1.0" and meta["motionIntervalSeconds"] == 900
        locations = c.get("/sta/v1.1/Locations").json()["value"]
        features = c.get("/opendata/v1/poles.geojson").json()["features"]
        assert locations and features
        for loc in locations:
            lon, lat = loc["location"]["coordinates"]
            assert round(lon, 3) == lon and round(lat, 3) == lat
        for f in features:
            lon, lat = f["geometry"]["coordinates"]
            assert round(lon, 3) == lon and round(lat, 3) == lat


def test_rate_limits_per_ip_and_per_token(tmp_path: Path) -> None:
    make_street(tmp_path, poles=2, days=0.1, period_s=600)
    with street_api(
        tmp_path,
        opendata_rate_limit=True,
        opendata_ip_rate=0.5,
        opendata_ip_burst=5,
        opendata_token_rate=0.5,
        opendata_token_burst=8,
    ) as api:
        c = api.client
        codes = [c.get("/sta/v1.1/Things").status_code for _ in range(7)]
        assert codes == [200] * 5 + [429] * 2
        r = c.get("/opendata/v1/latest")
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert c.get("/healthz").status_code == 200  # the operator side is not limited here
        token = {"Authorization": f"Bearer {api.tokens['admin']}"}
        r = c.get("/sta/v1.1/Things", headers=token)  # a token does not lift the IP's limit
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
