"""The codec must pass every test vector, on CPython and on MicroPython, and agree with the
published JSON Schemas (checked with the real `jsonschema` package)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from protocols import codec
from tests.harness.micropython import run_micropython
from tests.harness.paths import PROTOCOLS, ROOT

VECTOR_FILES = sorted((PROTOCOLS / "vectors").glob("*.jsonl"))
RUNNER = ROOT / "tests" / "mp" / "run_vectors.py"


def load_vectors() -> list[tuple[str, str | None, dict[str, Any]]]:
    out = []
    for path in VECTOR_FILES:
        for line in path.read_text().splitlines():
            vector = json.loads(line)
            out.append((path.name, vector["channel"], vector))
    return out


VECTORS = load_vectors()


def check_results(stdout: str) -> int:
    results = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    expected = {(Path(f).name, v["name"]): v for f, _, v in VECTORS}
    got = {(Path(r["file"]).name, r["name"]): r for r in results}
    assert got.keys() == expected.keys(), "runner did not report every vector"
    failures = []
    for key, vector in expected.items():
        result = got[key]
        if vector["valid"] and not result["ok"]:
            failures.append(f"{key}: rejected a valid message: {result['error']}")
        elif not vector["valid"]:
            if result["ok"]:
                failures.append(f"{key}: accepted an invalid message")
            elif result["field"] != vector["field"]:
                failures.append(
                    f"{key}: error names {result['field']!r}, expected "
                    f"{vector['field']!r} ({result['error']})"
                )
    assert not failures, "\n".join(failures)
    return len(results)


def test_vectors_cover_every_channel() -> None:
    channels = {channel for _, channel, _ in VECTORS if channel}
    assert channels == set(codec.BUILDERS)
    assert sum(1 for *_, v in VECTORS if not v["valid"]) >= 50


def test_vectors_on_cpython() -> None:
    proc = subprocess.run(
        [sys.executable, str(RUNNER), *map(str, VECTOR_FILES)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
        env={"PYTHONPATH": str(ROOT)},
    )
    assert check_results(proc.stdout) == len(VECTORS)


def test_vectors_on_micropython(mpy_tree: Path) -> None:
    """On the real interpreter with an ESP32-sized heap, running the compiled modules."""
    proc = run_micropython(RUNNER, *map(str, VECTOR_FILES), cwd=ROOT, mpy_root=mpy_tree)
    assert check_results(proc.stdout) == len(VECTORS)


@pytest.mark.parametrize(
    "fname,channel,vector",
    [v for v in VECTORS if "raw" not in v[2] and "topic" not in v[2]],
    ids=lambda x: x["name"] if isinstance(x, dict) else str(x),
)
def test_json_schema_agrees_with_codec(fname: str, channel: str, vector: dict[str, Any]) -> None:
    """The exported JSON Schema accepts exactly what the codec accepts, except the few rules a
    schema cannot express (layer "semantic"), which the schema accepts and the codec refuses."""
    schema = json.loads((PROTOCOLS / "schemas" / f"{channel}.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(vector["payload"]))
    schema_valid = not errors
    if vector["valid"] or vector.get("layer") == "semantic":
        assert schema_valid, [e.message for e in errors]
    else:
        assert not schema_valid, "JSON Schema accepted what the codec refuses"


def test_exported_schemas_are_current() -> None:
    from protocols import export_schemas

    assert export_schemas.main(["--check"]) == 0, "run `make schemas` and commit the result"
