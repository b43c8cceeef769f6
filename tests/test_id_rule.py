"""One rule for ids (pole, node, program and profile names): the protocol's check, the pattern
the dashboard's forms get from the OpenAPI schema, and the message, all agree. Before, the
program name's `pattern` allowed `.` and `:`, which the server refused, and was not even a
valid pattern for the browser (so it checked nothing); and the min/max level error had no
field name."""

from __future__ import annotations

import re
import string
from pathlib import Path

from controller.api.schemas import ID_PATTERN, ID_RULE
from protocols.topics import is_valid_id
from tests.harness.api import running_api

SAMPLES = [
    *string.printable,
    "a" * 32,
    "a" * 33,
    "-a",
    "_a",
    "a-b_c",
    "night.v2",
    "x:y",
    "Été",
    "",
    "0",
]


def test_the_pattern_is_the_protocol_rule() -> None:
    for value in SAMPLES:
        assert bool(re.fullmatch(ID_PATTERN, value)) == is_valid_id(value), value


def test_the_schema_carries_the_pattern_and_errors_name_their_field(tmp_path: Path) -> None:
    with running_api(tmp_path, ingest_enabled=False, dispatch_enabled=False) as api:
        schema = api.client.get("/openapi.json").json()["components"]["schemas"]
        name = schema["ProgramIn"]["properties"]["name"]
        assert name["pattern"] == ID_PATTERN and name["description"] == ID_RULE
        step = [{"at": "sunset", "level": 1}]
        r = api.call("admin", "POST", "/api/programs", json={"name": "night.v2", "steps": step})
        assert r.status_code == 422
        assert r.json()["detail"][0]["loc"] == ["body", "name"]
        api.ok("admin", "POST", "/api/programs", json={"name": "night", "steps": step})
        r = api.call("admin", "POST", "/api/profiles",
                     json={"name": "p", "default_program": "night", "min_level": 0.6,
                           "max_level": 0.4})  # fmt: skip
        assert r.status_code == 422
        err = r.json()["detail"][0]
        assert err["loc"] == ["body", "max_level"] and "min_level" in err["msg"]
