"""Node configuration: the local file validated at boot with errors naming the field, and the
remote config taken from the retained topic (validated, persisted, acknowledged applied or
rejected with a reason; a bad config never replaces a good one); the key cases on MicroPython."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from controller.devpki import Authority
from protocols import codec
from spnode.nodeconfig import (
    ConfigError,
    NodeConfig,
    RemoteConfig,
    load_node_config,
    parse_broker_url,
)
from tests.harness.micropython import run_micropython
from tests.harness.paths import ROOT

SCRIPT = ROOT / "tests" / "mp" / "nodeconfig_check.py"
NOW = 1795582800
KEY = "00112233445566778899aabbccddeeff"
CA = Authority("node config test CA").cert_pem.decode()

LOCAL = {
    "pole": "RTD-0001",
    "node": "n1",
    "wifi": {"ssid": "street", "password": "secret"},
    "broker": "mqtts://broker.example.org",
    "username": "RTD-0001-n1",
    "password": "pw",
    "location": {"lat": 51.92, "lon": 4.48},
    "board": "streetpole-esp32-v1",
    "sensors": ["pm", "climate"],
    "calibration": {"noise_offset_db": 1.5},
    "update_key": KEY,
    "ca": CA,
}

REMOTE = {
    "version": 7,
    "report_period_s": 60,
    "dimming": {
        "programs": {
            "night": {"steps": [{"at": "sunset", "level": 1}, {"at": "sunrise", "level": 0}]}
        },
        "default_program": "night",
    },
}


def test_valid_local_config() -> None:
    c = NodeConfig(LOCAL)
    assert (c.pole, c.node, c.tls, c.host, c.port) == (
        "RTD-0001",
        "n1",
        True,
        "broker.example.org",
        8883,
    )
    assert c.update_key == bytes.fromhex(KEY)
    assert c.server_name == "broker.example.org" and c.tls_context is not None
    assert c.location == {"lat": 51.92, "lon": 4.48}


def _without(key: str) -> dict[str, object]:
    d = copy.deepcopy(LOCAL)
    d.pop(key)
    return d


def _with(key: str, value: object) -> dict[str, object]:
    d = copy.deepcopy(LOCAL)
    d[key] = value
    return d


@pytest.mark.parametrize(
    ("data", "field", "reason"),
    [
        (_without("pole"), "pole", "missing"),
        (_with("node", "n/1"), "node", "character '/' not allowed (only A-Z a-z 0-9 - _)"),
        (_without("wifi"), "wifi", "missing (an object with ssid and password)"),
        (_with("wifi", {"password": "x"}), "wifi.ssid", "missing"),
        (_without("broker"), "broker", "missing"),
        (_with("broker", "tcp://x"), "broker", "must start with mqtt:// or mqtts://"),
        (_with("broker", "mqtt://x:99999"), "broker", "port '99999' is not 1..65535"),
        (_with("broker", "mqtt://u:p@x"), "broker",
         "only host[:port]; credentials go in username/password"),
        (_with("location", {"lat": 91, "lon": 0}), "location.lat", "91 outside -90..90"),
        (_with("location", {"lat": 1}), "location", "must be an object with lat and lon"),
        (_with("sensors", ["pm", "a b"]), "sensors[1]",
         "character ' ' not allowed (only A-Z a-z 0-9 - _)"),
        (_with("calibration", {"gain": 1}), "calibration.gain", "unknown calibration value"),
        (_with("update_key", "zz" * 16), "update_key", "must be hex digits"),
        (_with("update_key", "00" * 8), "update_key", "must be at least 16 bytes (32 hex digits)"),
        (_without("update_key"), "update_key", "missing"),
        (_with("wlan", {}), "wlan", "unknown field"),
        (_without("ca"), "ca", "missing: mqtts:// needs the PEM certificate of its CA"),
        (_with("ca", "MIIB..."), "ca", "must be PEM text with a certificate"),
        (_with("server_name", ""), "server_name", "length must be 1..253"),
        ([], "node.json", "must be a JSON object"),
    ],
)  # fmt: skip
def test_local_config_errors_name_the_field(data: object, field: str, reason: str) -> None:
    with pytest.raises(ConfigError) as e:
        NodeConfig(data)
    assert (e.value.field, e.value.reason) == (field, reason)
    assert str(e.value) == field + ": " + reason


def test_broker_urls() -> None:
    assert parse_broker_url("mqtt://10.0.0.2") == (False, "10.0.0.2", 1883)
    assert parse_broker_url("mqtt://10.0.0.2:1884/") == (False, "10.0.0.2", 1884)
    assert parse_broker_url("mqtts://b.example.org:8884") == (True, "b.example.org", 8884)
    with pytest.raises(ConfigError):
        parse_broker_url("mqtt://")


def test_load_node_config_file(tmp_path: Path) -> None:
    p = tmp_path / "node.json"
    with pytest.raises(ConfigError, match="cannot be read"):
        load_node_config(str(p))
    p.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_node_config(str(p))
    p.write_text(json.dumps(LOCAL))
    assert load_node_config(str(p)).node == "n1"


def _payload(msg: dict[str, object]) -> bytes:
    return json.dumps(msg).encode()


def test_remote_config_applied_persisted_and_reloaded(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    rc = RemoteConfig(str(path))
    assert rc.load() is None and rc.version == 0
    ack, changed = rc.offer(_payload(REMOTE), NOW)
    assert changed and ack == {"id": "7", "kind": "config", "ts": NOW, "status": "applied"}
    codec.encode("ack", ack)  # a valid ack on the wire
    assert json.loads(path.read_text()) == REMOTE
    assert not (tmp_path / "config.json.tmp").exists()
    # the broker re-delivers the retained config on every reconnect: applied, no change
    ack, changed = rc.offer(_payload(REMOTE), NOW + 1)
    assert not changed and ack["status"] == "applied"
    rebooted = RemoteConfig(str(path))
    assert rebooted.load() == REMOTE and rebooted.version == 7


def test_power_cut_between_write_and_rename_keeps_the_new_config(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    (tmp_path / "config.json.tmp").write_bytes(_payload(REMOTE))
    rc = RemoteConfig(str(path))
    assert rc.load() == REMOTE
    assert json.loads(path.read_text()) == REMOTE


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda c: c["dimming"].update(default_program="bats"),
         "dimming.default_program: names no program in dimming.programs"),
        (lambda c: c.update(tz="Mars/Olympus"), "tz: "),
        (lambda c: c.update(report_period_s=1), "report_period_s: "),
        (lambda c: c.update(colour="red"), "colour: unknown field"),
    ],
)  # fmt: skip
def test_bad_remote_config_rejected_with_reason_and_old_kept(
    tmp_path: Path, change: object, reason: str
) -> None:
    path = tmp_path / "config.json"
    rc = RemoteConfig(str(path))
    rc.offer(_payload(REMOTE), NOW)
    bad = copy.deepcopy(REMOTE)
    bad["version"] = 8
    change(bad)  # type: ignore[operator]
    ack, changed = rc.offer(_payload(bad), NOW)
    assert not changed
    assert ack["status"] == "rejected" and ack["id"] == "8"
    assert ack["reason"].startswith(reason)
    codec.encode("ack", ack)
    assert rc.config == REMOTE and rc.version == 7 and rc.rejected == 1
    assert json.loads(path.read_text()) == REMOTE


def test_versions_only_go_forward(tmp_path: Path) -> None:
    rc = RemoteConfig(str(tmp_path / "config.json"))
    rc.offer(_payload(REMOTE), NOW)
    older = dict(REMOTE, version=6)
    ack, changed = rc.offer(_payload(older), NOW)
    assert not changed and ack["reason"] == "version: 6 is older than version 7 in force"
    other = dict(REMOTE, report_period_s=120)
    ack, changed = rc.offer(_payload(other), NOW)
    assert not changed and ack["status"] == "rejected" and "raise the version" in ack["reason"]
    newer = dict(REMOTE, version=9, report_period_s=120)
    ack, changed = rc.offer(_payload(newer), NOW)
    assert changed and ack == {"id": "9", "kind": "config", "ts": NOW, "status": "applied"}


def test_garbage_payload_rejected_without_a_version() -> None:
    rc = RemoteConfig(None)  # RAM only, as a simulated node
    ack, changed = rc.offer(b"\xff\xfe", NOW)
    assert not changed and ack["id"] == "config" and ack["reason"] == "payload: not UTF-8"
    codec.encode("ack", ack)
    ack, changed = rc.offer(_payload(REMOTE), NOW)
    assert changed and rc.version == 7


def test_storage_failure_rejects_and_keeps_the_old(tmp_path: Path) -> None:
    rc = RemoteConfig(str(tmp_path / "missing-dir" / "config.json"))
    ack, changed = rc.offer(_payload(REMOTE), NOW)
    assert not changed and ack["status"] == "rejected" and ack["reason"].startswith("storage:")
    assert rc.config is None


def test_nodeconfig_on_micropython(tmp_path: Path, mpy_tree: Path) -> None:
    out = run_micropython(SCRIPT, str(tmp_path), mpy_root=mpy_tree).stdout
    assert out.strip().splitlines()[-1] == "OK", out


def test_the_config_in_force_sent_again_is_not_checked_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The broker sends the retained config again on every connect. A node that has it (the same
    bytes, also after a reboot) acknowledges it without loading the checks: a 96 KiB node
    rebooted with a large config had no room to check it a second time."""
    from spnode import boarddef, nodemsg, remoteconfig
    from spnode.app import Node
    from spnode.board.sim import SimBoard

    local = dict(LOCAL, broker="mqtt://127.0.0.1:1", sensors=[])
    board = ROOT / "hardware" / "boards" / "sim.json"
    payload = _payload(REMOTE)

    def node() -> Node:
        return Node(SimBoard(boarddef.load(str(board))), local, data_dir=str(tmp_path))

    def statuses(n: Node) -> list[str]:
        return [json.loads(data)["status"] for topic, data, _q in n.outbox if topic == n.t_ack]

    first = node()
    nodemsg._config(first, payload)
    assert first.remote.version == 7 and statuses(first) == ["applied"]

    def not_again(_payload: bytes) -> None:
        raise AssertionError("checked again")

    checked = remoteconfig.check_remote
    monkeypatch.setattr(remoteconfig, "check_remote", not_again)
    nodemsg._config(first, payload)
    assert statuses(first) == ["applied", "applied"]
    monkeypatch.setattr(remoteconfig, "check_remote", checked)  # the boot checks the file
    rebooted = node()
    assert rebooted.remote.version == 7
    monkeypatch.setattr(remoteconfig, "check_remote", not_again)
    nodemsg._config(rebooted, payload)
    assert statuses(rebooted) == ["applied"]
    # another config (other bytes) is checked as before
    with pytest.raises(AssertionError, match="checked again"):
        nodemsg._config(rebooted, _payload(dict(REMOTE, version=8)))


def test_neighbours_dropped_by_a_new_config_are_unsubscribed(tmp_path: Path) -> None:
    from spnode import boarddef, nodemsg
    from spnode.app import Node
    from spnode.board.sim import SimBoard

    local = dict(LOCAL, broker="mqtt://127.0.0.1:1", sensors=[])
    board = boarddef.load(str(ROOT / "hardware" / "boards" / "sim.json"))
    n = Node(SimBoard(board), local, data_dir=str(tmp_path))
    two = dict(REMOTE, neighbours=[{"pole": "A-1", "node": "n1"}, {"pole": "B-1", "node": "n1"}])
    nodemsg._config(n, _payload(two))
    assert [t.split("/")[2] for t in n.neighbours] == ["A-1", "B-1"]
    assert set(n.neighbours) <= set(n.client._subs)
    nodemsg._config(n, _payload(dict(two, version=8, neighbours=two["neighbours"][:1])))
    assert [t.split("/")[2] for t in n.neighbours] == ["A-1"]
    assert not [t for t in n.client._subs if "/B-1/" in t]
    assert n.neighbours[0] in n.client._subs and n.t_config in n.client._subs
