"""The InfluxDB backend's write path against a real server that speaks the InfluxDB v2 write API:
Debian's VictoriaMetrics. (Flux queries need a real InfluxDB 2; see test_store_contract.)"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from controller.broker import free_port
from controller.store.base import Batch
from controller.store.influx import InfluxStore


@pytest.fixture
def victoria(tmp_path: Path) -> Iterator[str]:
    exe = shutil.which("victoria-metrics")
    assert exe, "victoria-metrics missing: `make deps` installs the Debian package"
    port = free_port()
    proc = subprocess.Popen(
        [
            exe,
            f"-storageDataPath={tmp_path / 'vm'}",
            f"-httpListenAddr=127.0.0.1:{port}",
            "-retentionPeriod=10y",
            "-dedup.minScrapeInterval=1ms",  # one value per series and time, like InfluxDB
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(url + "/health", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def test_points_written_with_influxdb_client_come_back(victoria: str) -> None:
    now = int(time.time()) - 3600
    store = InfluxStore(victoria, token="any", org="streetpole", bucket="streetpole", chunk=700)
    batches = [
        Batch(
            f"p{i % 50}",
            "n1",
            1,
            i,
            [
                {"ts": now + i, "q": "pm25", "v": 1.0 + i, "src": "air", "dur": 60},
                {"ts": now + i, "q": "LAeq", "v": 50.5, "src": "noise", "flags": ["indicative"]},
            ],
        )
        for i in range(1000)
    ]
    result = store.write(batches)
    assert (result.points, result.stored) == (2000, 2000)
    store.write(batches[:10])  # a resend: the same series and time, nothing new
    store.close()
    httpx.get(victoria + "/internal/force_flush", timeout=10)
    r = httpx.get(
        victoria + "/api/v1/export", params={"match[]": '{__name__="reading_v"}'}, timeout=30
    )
    series = [json.loads(line) for line in r.text.splitlines() if line]
    values = sum(len(s["values"]) for s in series)
    assert values == 2000
    labels = {tuple(sorted(s["metric"])) for s in series}
    assert labels == {("__name__", "node", "pole", "q", "src")}  # low-cardinality tags only
    p7 = next(s for s in series if s["metric"]["pole"] == "p7" and s["metric"]["q"] == "pm25")
    assert 8.0 in p7["values"] and now + 7 in [t // 1000 for t in p7["timestamps"]]


def test_open_data_on_influxdb_says_what_to_use_instead() -> None:
    """InfluxDB is an export: asked for Observations (CSV, archives) the store refuses (the API
    answers 501 with this text), naming the stores and settings that serve them."""
    from controller.opendata.query import parse_filter
    from controller.store.base import ObservationQuery

    store = InfluxStore(f"http://127.0.0.1:{free_port()}", "token", "org", "bucket")
    try:
        with pytest.raises(NotImplementedError) as refused:
            store.observations(ObservationQuery((1,), filter=parse_filter("result gt 1")))
    finally:
        store.close()
    for hint in ("STREETPOLE_STORE=sqlite", "STREETPOLE_STORE=postgresql", "STREETPOLE_STORE_URL"):
        assert hint in str(refused.value)
