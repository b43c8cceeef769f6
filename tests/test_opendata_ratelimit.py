"""Attacks on the open-data edge's rate limits: made-up bearer tokens, a valid token, forged
X-Forwarded-For, many IPv6 addresses of one network; and every public route is read-only and
limited (downloads included), a 429 always with Retry-After."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from controller.app import create_app
from controller.opendata.render import iso
from controller.opendata.routes import dl_router, sta_router
from controller.registry.accounts import create_token, create_user
from controller.registry.db import Registry
from controller.settings import Settings
from tests.harness.server import serve
from tests.opendata_helpers import QUIET, make_street, street_api

# the refill is negligible during a test: what a test sees is the burst
SLOW = 0.001


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_made_up_tokens_do_not_escape_the_ip_limit(tmp_path: Path) -> None:
    """Each made-up token used to get a bucket of its own: 1,000 requests, no 429."""
    make_street(tmp_path, poles=1, days=0.05, period_s=600)
    with street_api(
        tmp_path,
        opendata_rate_limit=True,
        opendata_ip_rate=SLOW,
        opendata_ip_burst=10,
        opendata_token_burst=1000,
    ) as api:
        c = api.client
        codes = [
            c.get("/sta/v1.1/Things", headers=_bearer(secrets.token_urlsafe(16))).status_code
            for _ in range(60)
        ]
        assert codes[:10] == [401] * 10  # refused as invalid, and counted against the IP
        assert codes[10:] == [429] * 50
        r = c.get("/opendata/v1/latest", headers=_bearer("made-up"))
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert "slow down" in r.json()["message"]
        # no bucket was made for any of them: only a validated token gets one
        assert len(c.app.state.opendata_limits.token) == 0  # type: ignore[attr-defined]


def test_a_valid_token_has_its_own_bucket_and_the_ip_limit_still_applies(tmp_path: Path) -> None:
    make_street(tmp_path, poles=1, days=0.05, period_s=600)
    with street_api(
        tmp_path,
        opendata_rate_limit=True,
        opendata_ip_rate=SLOW,
        opendata_ip_burst=6,
        opendata_token_rate=SLOW,
        opendata_token_burst=100,
    ) as api:
        c = api.client
        admin = _bearer(api.tokens["admin"])
        codes = [c.get("/sta/v1.1/Things", headers=admin).status_code for _ in range(8)]
        assert codes == [200] * 6 + [429] * 2  # a token does not lift the IP's limit
    with street_api(
        tmp_path,
        opendata_rate_limit=True,
        opendata_ip_rate=SLOW,
        opendata_ip_burst=100,
        opendata_token_rate=SLOW,
        opendata_token_burst=4,
    ) as api:
        c = api.client
        admin = _bearer(api.tokens["admin"])
        got = [c.get("/opendata/v1/latest", headers=admin) for _ in range(6)]
        assert [r.status_code for r in got] == [200] * 4 + [429] * 2
        assert int(got[-1].headers["retry-after"]) >= 1
        assert c.get("/opendata/v1/latest").status_code == 200  # the public is not its bucket


def _served_settings(d: Path, **kw: Any) -> Settings:
    return Settings(
        data_dir=d,
        _env_file=None,
        **{**QUIET, "opendata_rate_limit": True, "opendata_ip_rate": SLOW, **kw},
    )


def test_forwarded_for_is_not_trusted_without_configured_proxies(tmp_path: Path) -> None:
    """Served as `streetpole serve` serves it, a client on the same host (127.0.0.1, where
    uvicorn trusted X-Forwarded-For by default) could pick a new address per request."""
    make_street(tmp_path, poles=1, days=0.05, period_s=600)
    with serve(create_app(_served_settings(tmp_path, opendata_ip_burst=5))) as url:
        codes = [
            httpx.get(
                url + "/sta/v1.1/Things", headers={"X-Forwarded-For": f"198.51.100.{i}"}
            ).status_code
            for i in range(12)
        ]
    assert codes == [200] * 5 + [429] * 7


def test_forwarded_for_from_a_configured_proxy_names_the_client(tmp_path: Path) -> None:
    make_street(tmp_path, poles=1, days=0.05, period_s=600)
    settings = _served_settings(tmp_path, opendata_ip_burst=2, trusted_proxies=["127.0.0.0/8"])
    with serve(create_app(settings), trusted_proxies=settings.trusted_proxies) as url:

        def get(client: str) -> int:
            h = {"X-Forwarded-For": client}
            return httpx.get(url + "/opendata/v1/register", headers=h).status_code

        # each client behind the proxy has its own bucket
        assert [get(f"198.51.100.{i}") for i in range(6)] == [200] * 6
        assert [get("203.0.113.7") for _ in range(3)] == [200, 200, 429]
        # a forged hop before the proxy's is the client's own doing: the proxy appended the
        # address it saw, and that is the one counted
        assert get("10.9.9.9, 203.0.113.7") == 429
        # an IPv6 client holds a whole /64: its addresses share one bucket
        net = "2001:db8:1:2:"
        assert [get(f"{net}:{i:x}") for i in range(1, 5)] == [200, 200, 429, 429]
        assert get("2001:db8:1:3::1") == 200


def test_trusted_proxies_setting_is_checked() -> None:
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="trusted_proxies"):
        Settings(_env_file=None, trusted_proxies=["not-an-address"])
    s = Settings(_env_file=None, trusted_proxies=["10.0.0.1", "fd00::/8"])
    assert s.trusted_proxies == ["10.0.0.1", "fd00::/8"]
    assert Settings(_env_file=None).trusted_proxies == []


def _public_paths() -> list[str]:
    """Every open-data route, with its path parameters filled in."""
    fill = {"{resource:path}": "Things('RTD-0000')", "{day}": "2026-11-02"}
    out = []
    for route in [*sta_router.routes, *dl_router.routes]:
        path: str = getattr(route, "path", "")
        for k, v in fill.items():
            path = path.replace(k, v)
        assert path.startswith(("/sta/", "/opendata")) and "{" not in path, path
        out.append(path)
    return out


@pytest.mark.slow
def test_every_public_route_is_read_only_and_rate_limited(tmp_path: Path) -> None:
    make_street(tmp_path, poles=1, days=0.05, period_s=600)
    reg = Registry(f"sqlite:///{tmp_path / 'registry.db'}")
    create_user(reg, "reader", "correct horse battery", "viewer")
    token = create_token(reg, "reader", "test")
    reg.close()
    with street_api(tmp_path) as api:  # not limited: only the methods are tried here
        paths = _public_paths()
        assert len(paths) >= 15 and "/opendata/v1/csv" in paths
        assert "/opendata/v1/archives/2026-11-02.csv" in paths
        for path in paths:
            for method in ("POST", "PUT", "PATCH", "DELETE", "TRACE", "PROPFIND"):
                r = api.client.request(method, path, headers=_bearer(token))
                assert r.status_code == 405, (method, path, r.status_code)
                assert r.headers["allow"] == "GET, HEAD" and r.json()["message"]
    downloads = [
        "/opendata/v1/csv?pole=RTD-0000",
        "/opendata/v1/archives/2026-11-02.csv",
        "/opendata/v1/register.csv",
    ]
    with street_api(
        tmp_path,
        opendata_rate_limit=True,
        opendata_ip_rate=SLOW,
        opendata_ip_burst=3,
        opendata_token_rate=SLOW,
        opendata_token_burst=100,
    ) as api:
        for n, path in enumerate([*paths, *downloads]):
            # a client address of its own per path, so each starts with a full bucket
            c = TestClient(api.client.app, client=(f"192.0.2.{n + 1}", 40000))
            first = [c.request(m, path) for m in ("GET", "HEAD", "OPTIONS")]
            assert all(r.status_code not in (405, 429, 500) for r in first), (path, first)
            assert first[1].status_code == first[0].status_code and first[1].content == b""
            for r in [
                c.get(path),
                c.head(path),
                c.options(path),
                c.get(path, headers=_bearer(token)),  # a token does not lift the IP's limit
            ]:
                assert r.status_code == 429, (path, r.request.method, r.status_code)
                assert int(r.headers["retry-after"]) >= 1


def test_downloads_at_once_are_bounded_and_given_back(tmp_path: Path) -> None:
    """A CSV download streams as long as its client reads: a few slow readers held workers
    without bound. Past the places for downloads, 503 with Retry-After; every way a download
    ends gives its place back."""
    made = make_street(tmp_path, poles=2, days=0.2, period_s=600)
    archive = f"/opendata/v1/archives/{iso(made['end'] - 600)[:10]}.csv"  # a day with data
    with street_api(tmp_path, opendata_downloads=3, opendata_downloads_per_client=1) as api:
        c = api.client
        downloads = c.app.state.opendata_limits.downloads  # type: ignore[attr-defined]
        csv = "/opendata/v1/csv?pole=RTD-0000"
        held = downloads.enter("testclient")  # this client's one place, as a slow reader holds it
        r = c.get(csv)
        assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1
        assert "yours" in r.json()["message"]
        others = [downloads.enter(f"198.51.100.{i}") for i in range(2)]
        busy = TestClient(c.app, client=("203.0.113.9", 1)).get(archive)
        assert busy.status_code == 503 and "try again" in busy.json()["message"]
        held()
        for release in others:
            release()
        assert downloads.running == 0
        full = c.get(csv)  # read to its end
        assert full.status_code == 200 and full.text.count("\n") > 20
        assert c.get("/opendata/v1/csv?pole=nowhere").status_code == 404  # failed before streaming
        head = c.head(archive)
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-type"].startswith("text/csv")
        assert downloads.running == 0


@pytest.mark.slow
def test_slow_readers_cannot_hold_every_worker(tmp_path: Path) -> None:
    """Served for real: clients that start a daily archive and stop reading keep it streaming
    (and a worker thread busy). Past their places the next download is 503, and the places
    come back once those clients go."""
    import gc
    import socket

    from tests.harness.api import wait_for

    made = make_street(tmp_path, poles=12, days=1.5, period_s=300)
    day = iso(made["end"] - 86400)[:10]
    path = f"/opendata/v1/archives/{day}.csv"
    settings = _served_settings(
        tmp_path, opendata_rate_limit=False, opendata_downloads_per_client=2
    )
    with serve(create_app(settings)) as url:
        host, port = url.removeprefix("http://").split(":")
        stalled = []
        for _ in range(2):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a slow reader
            s.connect((host, int(port)))
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            assert s.recv(12) == b"HTTP/1.1 200"
            stalled.append(s)
        r = httpx.get(url + path)
        assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1, r.status_code
        gc.disable()  # the places must come back without waiting for a garbage collection
        try:
            for s in stalled:
                s.close()
            wait_for(lambda: httpx.get(url + path).status_code == 200, 20, "the places given back")
        finally:
            gc.enable()
