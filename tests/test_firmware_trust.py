"""The controller's side of updates that cannot be replayed or forged: an uploaded archive is
checked with the node's own parser before it is stored; update commands are signed for one node,
with an expiry, and a downgrade only as an explicit rollback; nobody reading the API sees a
signature; re-provisioning a node gives it a new update key."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.broker import Broker
from spnode import updsig
from spnode.update import pack
from tests.harness.api import Api, running_api, wait_for
from tests.test_fleet_mqtt import Tap, street

GOOD = pack([("spnode/__init__.py", b"VERSION = '0.2.0'\n")])


@pytest.fixture
def api(tmp_path: Path, broker: Broker) -> Iterator[Api]:
    with running_api(tmp_path, mqtt_url=broker.url) as a:
        wait_for(lambda: a.state.dispatcher.connected.is_set(), what="dispatcher")
        yield a


def upload(api: Api, version: str, data: bytes) -> Any:
    return api.call(
        "admin", "POST", "/api/firmware", data={"version": version}, files={"file": ("f", data)}
    )


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (pack([("../../node.json", b"{}")]), "archive: bad path '../../node.json'"),
        (pack([("/boot.py", b"x")]), "archive: bad path '/boot.py'"),
        (b"SPA1" + b"\xff" * 64, "archive: truncated"),
        (GOOD[:-1], "archive: truncated"),
        (GOOD + b"\x00", "archive: data after the end marker"),
        (pack([]), "archive: holds no files"),
        (b"not an archive", "archive: not an SPA1 archive"),
    ],
)
def test_upload_refuses_what_the_node_would_refuse(
    api: Api, data: bytes, reason: str, tmp_path: Path
) -> None:
    r = upload(api, "0.2.0", data)
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == f"file: {reason}"
    assert api.ok("admin", "GET", "/api/firmware") == []
    assert not any((tmp_path / "firmware").glob("*"))  # nothing stored


def test_upload_takes_a_good_archive(api: Api) -> None:
    pkg = upload(api, "0.2.0", GOOD)
    assert pkg.status_code == 201, pkg.text
    assert pkg.json()["size"] == len(GOOD)


# image header (magic, 4 segments, ...), the first segment's header, the app description's magic
ESP_IMAGE = bytes([0xE9, 4, 2, 0x20]) + bytes(28) + bytes.fromhex("3254cdab") + b"\xaa" * 4000


def test_upload_takes_a_whole_image_and_says_its_kind(api: Api) -> None:
    pkg = upload(api, "0.3.0", ESP_IMAGE)
    assert pkg.status_code == 201, pkg.text
    assert (pkg.json()["kind"], pkg.json()["size"]) == ("image", len(ESP_IMAGE))
    assert pkg.json()["url"].endswith("/firmware/streetpole-0.3.0.bin")
    served = api.call("admin", "GET", "/firmware/streetpole-0.3.0.bin")
    assert served.status_code == 200 and served.content == ESP_IMAGE
    assert upload(api, "0.2.0", GOOD).json()["kind"] == "tree"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (bytes([0xE9]) + bytes(30), "image: not a whole ESP32 app image"),  # no segments
        (bytes([0xE9, 4, 2]), "image: not a whole ESP32 app image"),
        (b"\x7fELF\x01", "image: not a whole ELF image"),
        (ESP_IMAGE[:32] + bytes(4) + ESP_IMAGE[36:], "image: no app description (the app alone"),
    ],
)
def test_upload_refuses_a_broken_image(api: Api, data: bytes, reason: str) -> None:
    r = upload(api, "0.3.0", data)
    assert r.status_code == 422 and r.json()["detail"].startswith(f"file: {reason}"), r.text


def test_reprovisioning_rotates_the_update_key(api: Api) -> None:
    first = street(api, 1)[0]
    again = api.ok("admin", "POST", "/api/nodes", json={"pole": "P000", "node": "n1"})
    assert again["update_key"] != first["update_key"] and len(again["update_key"]) == 64


def commands(tap: Tap, n: int) -> list[tuple[str, dict[str, Any]]]:
    got: list[tuple[str, dict[str, Any]]] = wait_for(
        lambda: len(tap.messages("/cmd")) >= n and tap.messages("/cmd"), what=f"{n} commands"
    )
    return got


@pytest.mark.slow
def test_update_commands_are_signed_for_their_node_and_expire(api: Api, broker: Broker) -> None:
    creds = street(api, 2)
    keys = {c["node"]["pole_id"]: bytes.fromhex(c["update_key"]) for c in creds}
    g = api.ok("admin", "POST", "/api/groups", json={"name": "all", "poles": ["P000", "P001"]})
    pkg = upload(api, "0.2.0", GOOD).json()
    tap = Tap(broker.port)
    try:
        tap.sub("streetpole/v1/+/+/cmd")
        t0 = int(time.time())
        api.ok(
            "admin",
            "POST",
            "/api/campaigns",
            json={"package_id": pkg["id"], "group_id": g["id"], "nodes_per_minute": 600,
                  "timeout_s": 900},
        )  # fmt: skip
        for topic, cmd in commands(tap, 2):
            pole = topic.split("/")[2]
            updsig.verify_command(cmd, keys[pole], f"{pole}/n1")
            other = "P001" if pole == "P000" else "P000"
            with pytest.raises(updsig.UpdateError, match=r"^sig: "):
                updsig.verify_command(cmd, keys[pole], f"{other}/n1")  # not for another node
            assert t0 + 900 <= cmd["expiry"] <= int(time.time()) + 900
            assert "rollback" not in cmd
            # a node on 0.3.0 refuses it; the campaign's own node on 0.1.0 takes it
            with pytest.raises(updsig.UpdateError, match=r"^version: 0\.2\.0 is not above 0\.3\.0"):
                updsig.check_fresh(cmd, time.time(), "0.3.0", {})
            updsig.check_fresh(cmd, time.time(), "0.1.0", {})
    finally:
        tap.close()


@pytest.mark.slow
def test_rollback_is_explicit_and_signed(api: Api, broker: Broker) -> None:
    creds = street(api, 1)
    key = bytes.fromhex(creds[0]["update_key"])
    node_id = creds[0]["node"]["id"]
    pkg = upload(api, "0.1.5", GOOD).json()
    tap = Tap(broker.port)
    try:
        tap.sub("streetpole/v1/+/+/cmd")
        out = api.ok(
            "admin", "POST", f"/api/nodes/{node_id}/rollback", json={"package_id": pkg["id"]}
        )
        assert out["kind"] == "update" and out["payload"]["rollback"] is True
        (_, cmd), *_ = commands(tap, 1)
        updsig.verify_command(cmd, key, "P000/n1")
        updsig.check_fresh(cmd, time.time(), "0.3.0", {"v": "0.3.0"})  # a downgrade it takes
        assert cmd["expiry"] > time.time()
    finally:
        tap.close()
    missing = api.call("admin", "POST", f"/api/nodes/{node_id}/rollback", json={"package_id": 99})
    assert missing.status_code == 422 and missing.json()["detail"].startswith("package_id")


def test_nobody_reads_a_signature_from_the_api(api: Api) -> None:
    creds = street(api, 1)
    node_id = creds[0]["node"]["id"]
    g = api.ok("admin", "POST", "/api/groups", json={"name": "one", "poles": ["P000"]})
    pkg = upload(api, "0.2.0", GOOD).json()
    api.ok("admin", "POST", "/api/campaigns", json={"package_id": pkg["id"], "group_id": g["id"]})
    api.account("watcher", "viewer")
    for who in ("watcher", "admin"):
        rows = api.ok(who, "GET", f"/api/nodes/{node_id}/commands")
        assert [r["kind"] for r in rows] == ["update"]
        assert "sig" not in rows[0]["payload"], rows[0]
        assert rows[0]["payload"]["version"] == "0.2.0"  # the rest of the command is there
