"""Every example in docs/open-data.md, run as written against the demo street served as
`make demo-data` + `make serve` make it: each `curl` command of the shell blocks (after the block
that sets SINCE, DAY and TODAY) and the Python block, with only the address changed to the test
server's. Each must answer 2xx with data in it, not an empty list or a header line alone."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from controller.app import create_app
from controller.settings import Settings
from tests.harness.server import serve

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "open-data.md"
DOC_BASE = "http://127.0.0.1:8000"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)


def _blocks(lang: str) -> list[str]:
    return [body for kind, body in FENCE.findall(DOC.read_text()) if kind == lang]


def _setup() -> str:
    (block,) = [b for b in _blocks("sh") if "SINCE=" in b]
    return block


def _curl_commands() -> list[tuple[str, str]]:
    """(what the comment above says, the command) for every curl line of the shell blocks."""
    out = []
    for block in _blocks("sh"):
        if "curl" not in block:
            continue
        what = ""
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip()
            if line.startswith("#"):
                what = line.lstrip("# ")
            elif line:
                assert line.startswith("curl "), f"not an example the test can run: {line}"
                out.append((what, line))
    return out


COMMANDS = _curl_commands()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The demo street as `make demo-data` builds it (the same command, fewer poles and days:
    the examples' ids are on the first two poles), served as `make serve` serves it."""
    data = tmp_path_factory.mktemp("demo")
    env = {**os.environ, "STREETPOLE_DATA_DIR": str(data)}
    subprocess.run(
        [sys.executable, "-m", "controller.opendata.demo", "--poles", "8", "--days", "2"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    settings = Settings(data_dir=data, _env_file=None, ingest_enabled=False, dispatch_enabled=False)
    with serve(create_app(settings)) as url:
        yield url, tmp_path_factory.mktemp("work")


def test_the_doc_has_its_examples() -> None:
    assert len(COMMANDS) >= 20
    assert any("$expand" in c and "curl -g" in c for _, c in COMMANDS)
    assert all(DOC_BASE in c for _, c in COMMANDS)
    assert "..." not in "".join(c for _, c in COMMANDS)


@pytest.mark.slow
def test_the_docs_datastream_15_is_pm25_at_rtd_0001(demo: tuple[str, Path]) -> None:
    url, _work = demo
    assert "Datastream 15 is PM2.5 at pole `RTD-0001`" in DOC.read_text()
    props = httpx.get(f"{url}/sta/v1.1/Datastreams(15)").json()["properties"]
    assert (props["quantity"], props["pole"]) == ("pm25", "RTD-0001")


def _has_data(body: Any) -> bool:
    """JSON with something in it: a non-empty ``value`` list (and, for aggregates, at least
    one stream with buckets), features, or any other non-empty object."""
    if isinstance(body, dict):
        if "value" in body:
            v = body["value"]
            if isinstance(v, list) and v and isinstance(v[0], dict) and "value" in v[0]:
                return any(item["value"] for item in v)
            return bool(v)
        if "features" in body:
            return bool(body["features"])
        return bool(body)
    return bool(body)


def _check_text(text: str, what: str) -> None:
    assert text.strip(), f"{what}: empty answer"
    if text.lstrip().startswith(("{", "[")):
        assert _has_data(json.loads(text)), f"{what}: no data in {text[:300]}"
    elif text.startswith(("datastream_id,", "id,pole,")):
        assert len(text.splitlines()) > 1, f"{what}: a header line only"


@pytest.mark.slow
@pytest.mark.parametrize(("what", "command"), COMMANDS, ids=[w or c for w, c in COMMANDS])
def test_curl_example(demo: tuple[str, Path], what: str, command: str) -> None:
    url, work = demo
    script = "\n".join(
        [
            "set -eu -o pipefail",
            # curl as written, but failing on an HTTP error and quiet about progress
            'curl() { command curl -sS --fail-with-body "$@"; }',
            _setup(),
            command.replace(DOC_BASE, url),
        ]
    )
    r = subprocess.run(
        ["bash", "-c", script], cwd=work, capture_output=True, text=False, timeout=60
    )
    out = r.stdout.decode(errors="replace")
    assert r.returncode == 0, f"{command}\nexit {r.returncode}: {out[:300]} {r.stderr!r}"
    saved = re.search(r"-o \"?([^\s\"]+)\"?", command)
    if saved:  # written to a file: $DAY in its name, as the shell expanded it
        suffix = Path(saved.group(1)).suffix
        (path,) = [p for p in work.glob("streetpole-*.csv*") if p.suffix == suffix]
        data = path.read_bytes()
        path.unlink()
        text = gzip.decompress(data).decode() if path.suffix == ".gz" else data.decode()
        assert text.startswith("datastream_id,pole,lon,lat,district,")
        _check_text(text, what)
        return
    if " -i " in command:  # headers, a blank line, the body
        head, _, out = out.replace("\r\n", "\n").partition("\n\n")
        assert re.search(r"^x-time-range: \S+Z/\S+Z$", head, re.M | re.I), head
    _check_text(out, what)


@pytest.mark.slow
def test_python_example(demo: tuple[str, Path]) -> None:
    url, work = demo
    (code,) = _blocks("python")
    r = subprocess.run(
        [sys.executable, "-c", code.replace(DOC_BASE, url)],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.splitlines()
    things = [ln for ln in lines if ln.startswith("RTD-")]
    observations = [ln for ln in lines if re.match(r"^\d{4}-\d\d-\d\dT", ln)]
    assert len(things) == 8 and all(" at Pole " in t for t in things), lines[:8]  # every pole
    assert len(observations) > 200, f"{len(observations)} observations in the last 24 h"
