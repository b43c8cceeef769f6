"""Schemathesis against the operator API's own OpenAPI schema, with a valid admin token and a
populated registry: whatever it sends, the answer is never a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from controller.app import create_app
from controller.registry.accounts import create_token, create_user
from controller.registry.db import Registry
from controller.settings import Settings
from tests.harness.server import serve

TOKEN: dict[str, str] = {}


@pytest.fixture(scope="module")
def operator_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[schemathesis.BaseSchema]:
    data = tmp_path_factory.mktemp("fuzz")
    url = f"sqlite:///{Path(data) / 'registry.db'}"
    reg = Registry(url)
    create_user(reg, "admin", "correct horse battery", "admin")
    TOKEN["admin"] = create_token(reg, "admin", "fuzz")
    reg.close()
    settings_ = Settings(
        data_dir=data,
        database_url=url,
        ingest_enabled=False,
        dispatch_enabled=False,
        _env_file=None,
    )
    app = create_app(settings_)
    with serve(app) as base:
        import httpx

        h = {"Authorization": f"Bearer {TOKEN['admin']}"}
        owner = httpx.post(
            base + "/api/owners", headers=h, json={"slug": "city", "name": "City"}
        ).json()
        for i in range(3):
            httpx.post(
                base + "/api/poles",
                headers=h,
                json={"id": f"P{i}", "lat": 51.9, "lon": 4.5 + i / 1000, "owner_id": owner["id"]},
            )
        schema = schemathesis.openapi.from_url(base + "/openapi.json")
        # keep the caller's own token and account alive for the whole run
        schema = schema.exclude(path="/api/auth/tokens", method="DELETE").exclude(
            path_regex=r"^/api/users/\{user_id\}/disable$"
        )
        yield schema.include(path_regex=r"^/api/")


@pytest.mark.slow
def test_no_server_errors(operator_schema: schemathesis.BaseSchema) -> None:
    """Every operation, a few generated cases each (schemathesis' pytest plugin does not load
    with this pytest, so the operations are walked here with hypothesis directly)."""
    headers = {"Authorization": f"Bearer {TOKEN['admin']}"}
    failures: list[str] = []
    statuses: dict[int, int] = {}
    operations = 0
    for result in operator_schema.get_all_operations():
        op = result.ok()
        operations += 1

        @given(case=op.as_strategy())
        @settings(
            max_examples=8,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def run(case: schemathesis.Case) -> None:
            response = case.call(headers=headers)
            # a wrong generated password or stream ticket is a fair 401
            if case.path not in ("/api/auth/token", "/api/events/stream"):
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path}: {response.status_code} "
                    f"{response.text[:200]}"
                )

        run()
    assert operations > 40, operations  # the whole operator API was walked
    assert failures == []
    # the token worked and generated data got through validation, not only 401/422s
    assert sum(n for code, n in statuses.items() if code < 300) > 50, statuses
    assert statuses.get(401, 0) == 0, statuses
