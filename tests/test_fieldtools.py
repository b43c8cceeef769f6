"""`streetpole node ...` against a virtual node (MicroPython behind a socat PTY) and a controller
served by uvicorn: deploy, provision, selftest, commission; flash as a dry run; the usual field
failures give clear messages and distinct non-zero exits."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from controller.app import create_app
from controller.broker import Broker, free_port
from controller.registry.accounts import create_token, create_user
from controller.registry.db import Registry
from controller.settings import Settings
from fieldtools import build as fw
from fieldtools.errors import EXIT, exit_table
from fieldtools.snippets import SIM_RIG, rig_json
from fieldtools.virtual_node import VirtualNode
from hostlib.process import terminate
from streetpole.cli import app
from tests.harness.api import kept_accounts, wait_for
from tests.harness.paths import ROOT
from tests.harness.server import serve
from tests.ingest_helpers import meas, meas_topic, publish_all

HEAP = "256k"  # the whole self-test (noise check included) on the 64-bit unix port


@dataclass
class Site:
    url: str
    tokens: dict[str, str]
    broker: Broker

    def get(self, who: str, path: str) -> httpx.Response:
        return httpx.get(
            self.url + path, headers={"Authorization": f"Bearer {self.tokens[who]}"}, timeout=10
        )

    def post(self, who: str, path: str, body: dict[str, object]) -> httpx.Response:
        return httpx.post(
            self.url + path,
            json=body,
            headers={"Authorization": f"Bearer {self.tokens[who]}"},
            timeout=10,
        )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """mosquitto (its accounts kept by the controller: a node logs in with the credentials it
    was provisioned with) + the controller under uvicorn, poles RTD-0001/2, accounts by role."""
    data = tmp_path_factory.mktemp("controller")
    kept = kept_accounts(data)
    broker = Broker(data / "broker", kept.config)
    broker.start()
    url = f"sqlite:///{data / 'registry.db'}"
    reg = Registry(url)
    tokens = {}
    for name, role in (("admin", "admin"), ("tess", "technician"), ("otto", "operator")):
        create_user(reg, name, "correct horse battery", role)
        tokens[name] = create_token(reg, name, "test")
    reg.close()
    settings = Settings(
        data_dir=data, database_url=url, _env_file=None, **kept.settings(broker.url)
    )
    try:
        with serve(create_app(settings)) as base:
            s = Site(base, tokens, broker)
            owner = s.post("admin", "/api/owners", {"name": "Rotterdam", "slug": "rotterdam"})
            assert owner.status_code == 201, owner.text
            for pole, lon in (("RTD-0001", 4.4800), ("RTD-0002", 4.4810)):
                body = {"id": pole, "lat": 51.9000, "lon": lon, "owner_id": owner.json()["id"]}
                assert s.post("admin", "/api/poles", body).status_code == 201
            yield s
    finally:
        broker.stop()


@pytest.fixture(scope="module")
def vnode(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VirtualNode]:
    """One virtual node for the module, its simulated sensors healthy (sim_rig.py on its flash)."""
    flash = tmp_path_factory.mktemp("node") / "flash"
    flash.mkdir()
    (flash / "sim_rig.py").write_text(SIM_RIG)
    (flash / "rig.json").write_bytes(rig_json(hardware_id="sim-a1b2c3"))
    with VirtualNode(flash, heap=HEAP) as node:
        yield node


def cli(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(app, ["node", *args])
    if r.exception and not isinstance(r.exception, SystemExit):
        raise r.exception
    return r.exit_code, r.output


def env(site: Site, who: str = "tess") -> list[str]:
    return ["--controller", site.url, "--token", site.tokens[who]]


@pytest.mark.slow
def test_deploy_uploads_only_what_differs_and_verifies_on_the_node(vnode: VirtualNode) -> None:
    port = str(vnode.tty)
    code, out = cli("deploy", "--port", port, "--board", "sim")
    assert code == 0, out
    assert "verified" in out and "by sha256 on the node" in out
    flash = vnode.flash
    assert (flash / "main.py").read_bytes() == (fw.FIRMWARE / "main.py").read_bytes()
    assert json.loads((flash / "board.json").read_text())["platform"] == "sim"
    mpy = flash / "app" / "spnode" / "dimming.mpy"
    assert mpy.read_bytes()[:2] == b"M\x06"  # .mpy v6 as mpy-cross writes it for the ESP32
    # nothing changed: nothing sent
    code, out = cli("deploy", "--port", port, "--board", "sim")
    assert code == 0 and " 0 of " in out, out
    # a damaged file and a stale one: exactly those are fixed, by hash
    good = mpy.read_bytes()
    mpy.write_bytes(good[:100])
    (flash / "app" / "spnode" / "obsolete.mpy").write_bytes(b"M\x06old")
    code, out = cli("deploy", "--port", port, "--board", "sim")
    assert code == 0 and " 1 of " in out and "1 stale" in out, out
    assert mpy.read_bytes() == good
    assert not (flash / "app" / "spnode" / "obsolete.mpy").exists()


def test_wrong_board_is_refused_before_anything_is_written(vnode: VirtualNode) -> None:
    before = (
        (vnode.flash / "board.json").read_bytes() if (vnode.flash / "board.json").exists() else None
    )
    code, out = cli("deploy", "--port", str(vnode.tty), "--board", "streetpole-esp32-v1")
    assert code == EXIT["wrong_board"], out
    assert "is for an ESP32" in out and "--board sim" in out
    after = (vnode.flash / "board.json").read_bytes() if before is not None else None
    assert after == before


@pytest.mark.slow
def test_commission_end_to_end(site: Site, vnode: VirtualNode, tmp_path: Path) -> None:
    record = tmp_path / "rec.json"
    code, out = cli(
        "commission",
        "--pole",
        "RTD-0001",
        "--lat",
        "51.90001",
        "--lon",
        "4.48002",
        "--board",
        "sim",
        "--wifi-ssid",
        "street",
        "--wifi-password",
        "pw",
        "--port",
        str(vnode.tty),
        "--record",
        str(record),
        *env(site),
    )
    assert code == 0, out
    for step in (
        "[1/5] controller",
        "[2/5] deploy",
        "[3/5] provision",
        "[4/5] selftest",
        "[5/5] record",
    ):
        assert step in out
    assert "9 checks, 0 failed" in out and "broker     PASS" in out  # reached mosquitto
    # node.json on the node: what the firmware accepts, credentials that work on the broker
    cfg = json.loads((vnode.flash / "node.json").read_text())
    assert cfg["pole"] == "RTD-0001" and cfg["username"] == "RTD-0001/n1"
    assert cfg["broker"] == site.broker.url and cfg["location"] == {"lat": 51.90001, "lon": 4.48002}
    assert cfg["password"] not in out and cfg["update_key"] not in out  # secrets never printed
    # the record: file and controller agree
    rec = json.loads(record.read_text())
    assert rec["status"] == "commissioned" and rec["technician"] == "tess"
    assert rec["hardware_id"] == "sim-a1b2c3" and rec["board"] == "sim"
    assert rec["firmware"]["version"] == fw.firmware_version()
    assert len(rec["firmware"]["hash"]) == 64
    assert {s["name"] for s in rec["sensors"]} >= {"pm", "climate", "noise", "no2", "radar"}
    assert all(s["ok"] for s in rec["sensors"]) and rec["selftest"]["failed"] == 0
    assert "password" not in json.dumps(rec) and cfg["update_key"] not in json.dumps(rec)
    stored = site.get("otto", "/api/commissioning?pole=RTD-0001").json()
    assert stored[0]["id"] == rec["controller_record_id"]
    assert stored[0]["record"]["firmware"]["hash"] == rec["firmware"]["hash"]
    assert stored[0]["recorded_by"] == "tess"
    audit = site.get("admin", "/api/audit").json()
    audit = audit.get("items", audit) if isinstance(audit, dict) else audit
    assert any(a["action"] == "node.commission" for a in audit)
    node = next(n for n in site.get("tess", "/api/nodes?pole=RTD-0001").json())
    assert node["hardware_id"] == "sim-a1b2c3" and node["board"] == "sim"
    # a technician may not add modules: the record says which an operator must add
    assert {m["status"] for m in rec["modules"]} == {"missing"}
    # the firmware hash in the record is the one of the files on the node
    lines = sorted(
        f"{p.relative_to(vnode.flash).as_posix()} {hashlib.sha256(p.read_bytes()).hexdigest()}\n"
        for p in [
            *(vnode.flash / "app").rglob("*.mpy"),
            vnode.flash / "main.py",
            vnode.flash / "boot.py",
        ]
    )
    assert hashlib.sha256("".join(lines).encode()).hexdigest() == rec["firmware"]["hash"]


@pytest.mark.slow
def test_provision_with_an_operator_token_adds_the_modules(site: Site, vnode: VirtualNode) -> None:
    cli("deploy", "--port", str(vnode.tty), "--board", "sim")
    # this ESP32 on RTD-0001 (as the commissioning test leaves it; again here, so the test
    # stands alone) is known by its hardware id: not on a second pole
    code, out = cli(
        "provision", "--pole", "RTD-0001", "--wifi-ssid", "s", "--port", str(vnode.tty), *env(site)
    )
    assert code == 0, out
    code, out = cli(
        "provision", "--pole", "RTD-0002", "--wifi-ssid", "s", "--port", str(vnode.tty), *env(site)
    )
    assert code == EXIT["controller"] and "already provisioned as RTD-0001/n1" in out, out
    rig = vnode.flash / "rig.json"
    healthy = rig.read_bytes()
    rig.write_bytes(rig_json(hardware_id="sim-d4e5f6"))  # another ESP32
    try:
        _provision_second_pole(site, vnode)
    finally:
        rig.write_bytes(healthy)


def _provision_second_pole(site: Site, vnode: VirtualNode) -> None:
    code, out = cli(
        "provision",
        "--pole",
        "RTD-0002",
        "--sensors",
        "pm,climate,noise,radar",
        "--wifi-ssid",
        "street",
        "--port",
        str(vnode.tty),
        *env(site, "otto"),
    )
    assert code == 0, out
    pole = site.get("otto", "/api/poles/RTD-0002").json()
    assert sorted(m["type"] for m in pole["modules"]) == ["air", "lighting", "motion", "noise"]
    cfg = json.loads((vnode.flash / "node.json").read_text())
    assert cfg["pole"] == "RTD-0002" and cfg["sensors"] == ["pm", "climate", "noise", "radar"]
    # a typo in the pole id, a sensor the board does not have, a position 1 km off
    code, out = cli(
        "provision", "--pole", "RTD-9999", "--wifi-ssid", "s", "--port", str(vnode.tty), *env(site)
    )
    assert code == EXIT["controller"] and "not in the registry" in out, out
    code, out = cli(
        "provision",
        "--pole",
        "RTD-0002",
        "--sensors",
        "pm,co2",
        "--wifi-ssid",
        "s",
        "--port",
        str(vnode.tty),
        *env(site),
    )
    assert code == EXIT["wrong_board"] and "co2" in out, out
    code, out = cli(
        "provision",
        "--pole",
        "RTD-0002",
        "--lat",
        "51.91",
        "--lon",
        "4.481",
        "--wifi-ssid",
        "s",
        "--port",
        str(vnode.tty),
        *env(site),
    )
    assert code == EXIT["position"] and "right pole" in out, out


@pytest.mark.slow
def test_selftest_failures_name_the_checks_and_stop_commissioning(
    site: Site, vnode: VirtualNode, tmp_path: Path
) -> None:
    cli("deploy", "--port", str(vnode.tty), "--board", "sim")  # stands alone as well
    rig = vnode.flash / "rig.json"
    healthy = rig.read_bytes()
    rig.write_bytes(rig_json({"climate": "absent", "lamp": "broken"}, "sim-a1b2c3"))
    try:
        code, out = cli("selftest", "--port", str(vnode.tty))
        assert code == EXIT["selftest"], out
        assert "2 of 8 checks failed" in out
        assert "climate: no answer on I2C" in out and "check SDA/SCL" in out
        assert "lamp: lamp_failure" in out
        before = site.get("otto", "/api/commissioning").json()
        record = tmp_path / "failed.json"
        code, out = cli(
            "commission",
            "--pole",
            "RTD-0001",
            "--board",
            "sim",
            "--wifi-ssid",
            "street",
            "--port",
            str(vnode.tty),
            "--record",
            str(record),
            *env(site),
        )
        assert code == EXIT["selftest"], out
        assert "stopped at step 4/5 (selftest)" in out and "[5/5]" not in out
        rec = json.loads(record.read_text())
        assert rec["status"] == "failed" and rec["failed_step"] == "selftest"
        assert {s["name"]: s["ok"] for s in rec["sensors"]}["climate"] is False
        assert site.get("otto", "/api/commissioning").json() == before  # not sent
    finally:
        rig.write_bytes(healthy)
    code, out = cli("selftest", "--port", str(vnode.tty))
    assert code == 0 and "all 8 checks passed" in out, out


def test_no_port_and_port_busy(vnode: VirtualNode, tmp_path: Path) -> None:
    code, out = cli("deploy", "--port", str(tmp_path / "ttyUSB9"), "--board", "sim")
    assert code == EXIT["no_port"] and "no serial port" in out and "data cable" in out, out
    fd = os.open(vnode.tty, os.O_RDWR | os.O_NOCTTY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as mpremote or esptool hold it
        code, out = cli("selftest", "--port", str(vnode.tty))
        assert code == EXIT["port_busy"] and "busy" in out and "mpremote" in out, out
    finally:
        os.close(fd)


def test_controller_unreachable_changes_nothing_on_the_node(vnode: VirtualNode) -> None:
    node_json = vnode.flash / "node.json"
    before = node_json.read_bytes() if node_json.exists() else None
    dead = f"http://127.0.0.1:{free_port()}"
    code, out = cli(
        "provision",
        "--pole",
        "RTD-0001",
        "--wifi-ssid",
        "s",
        "--port",
        str(vnode.tty),
        "--controller",
        dead,
        "--token",
        "x",
    )
    assert code == EXIT["controller"] and "cannot reach the controller" in out, out
    assert (node_json.read_bytes() if node_json.exists() else None) == before
    code, out = cli(
        "commission",
        "--pole",
        "RTD-0001",
        "--board",
        "sim",
        "--wifi-ssid",
        "s",
        "--port",
        str(vnode.tty),
        "--controller",
        dead,
        "--token",
        "x",
        "--record",
        str(vnode.flash.parent / "r.json"),
    )
    assert code == EXIT["controller"] and "stopped at step 1/5 (controller)" in out, out


@pytest.fixture
def dead_pty(tmp_path: Path) -> Iterator[str]:
    """A serial device with nothing behind it: a pseudo-terminal whose other end never answers
    (a board not in its bootloader, a charge-only cable's ghost port)."""
    tty = tmp_path / "ttyUSB0"
    proc = subprocess.Popen(
        ["socat", f"PTY,link={tty},raw,echo=0", "EXEC:sleep 600"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(tty.exists, timeout=10, what="socat's pseudo-terminal")
        yield str(tty)
    finally:
        terminate(proc)


def esp32_image(tmp_path: Path) -> Path:
    image = tmp_path / "ESP32_GENERIC-v1.29.0.bin"
    image.write_bytes(b"\xe9" + bytes(4095))
    return image


def test_flash_dry_run_prints_the_esptool_commands(tmp_path: Path, dead_pty: str) -> None:
    image = esp32_image(tmp_path)
    code, out = cli("flash", str(image), "--port", dead_pty, "--dry-run")
    assert code == 0, out
    py = Path(sys.executable)
    assert out.splitlines() == [
        f"{py} -m esptool --chip esp32 --port {dead_pty} --baud 460800 erase-flash",
        f"{py} -m esptool --chip esp32 --port {dead_pty} --baud 460800 write-flash 0x1000 {image}",
    ]
    bad = tmp_path / "firmware.uf2"
    bad.write_bytes(b"UF2\n")
    code, out = cli("flash", str(bad), "--port", dead_pty, "--dry-run")
    assert code == EXIT["usage"] and "not an ESP32 firmware image" in out
    code, out = cli("flash", str(image), "--port", dead_pty, "--board", "sim", "--dry-run")
    assert code == EXIT["wrong_board"] and "no chip to flash" in out
    # a dry run names a port that is there: a missing one fails as the real run would
    for extra in (["--dry-run"], []):
        code, out = cli("flash", str(image), "--port", str(tmp_path / "ttyUSB7"), *extra)
        assert code == EXIT["no_port"] and "no serial port" in out, out


@pytest.mark.slow
def test_flash_failure_reports_esptools_cause(tmp_path: Path, dead_pty: str) -> None:
    """The real esptool against a port with no ESP32 behind it: its own cause, its own code."""
    code, out = cli("flash", str(esp32_image(tmp_path)), "--port", dead_pty)
    assert code == EXIT["flash"], out
    error = out[out.index("error: ") :]
    assert error.startswith("error: esptool: Failed to connect to ESP32"), error
    assert "troubleshooting" not in error and "hold BOOT" in error, error


def test_records_are_checked_and_scoped(site: Site) -> None:
    r = site.post("tess", "/api/commissioning", {"schema": "streetpole-commissioning/1"})
    assert r.status_code == 422
    assert site.get("tess", "/api/commissioning/999999").status_code == 404


@pytest.mark.slow
def test_provisioning_refuses_a_node_in_service_unless_replace(
    site: Site, vnode: VirtualNode
) -> None:
    """A node the controller heard minutes ago is not taken over: the CLI says which node and
    when it was heard, and changes nothing on the node; --replace goes through."""
    cli("deploy", "--port", str(vnode.tty), "--board", "sim")  # stands alone
    rig = vnode.flash / "rig.json"
    healthy = rig.read_bytes()
    rig.write_bytes(rig_json(hardware_id="sim-0c0ffe"))  # another ESP32, for pole RTD-0002
    args = ["--pole", "RTD-0002", "--node", "n7", "--wifi-ssid", "s", "--port", str(vnode.tty)]
    try:
        code, out = cli("provision", *args, *env(site))
        assert code == 0, out
        # the node reports (through a module that measures what it sends): ingest hears it
        owner_id = site.get("admin", "/api/poles/RTD-0002").json()["owner_id"]
        air = {"type": "air", "owner_id": owner_id, "node": "n7", "src": "air", "purpose": "air"}
        assert site.post("admin", "/api/poles/RTD-0002/modules", air).status_code == 201
        cfg = json.loads((vnode.flash / "node.json").read_text())
        publish_all(
            site.broker,
            [(meas_topic("RTD-0002", "n7"), meas(1, ts=int(time.time())))],
            login=(cfg["username"], cfg["password"]),
        )
        wait_for(
            lambda: [
                n
                for n in site.get("tess", "/api/nodes?pole=RTD-0002").json()
                if n["node"] == "n7" and n["last_seen"]
            ],
            what="the controller hears RTD-0002/n7",
        )
        node_json = (vnode.flash / "node.json").read_bytes()
        code, out = cli("provision", *args, *env(site))
        assert code == EXIT["in_service"], out
        assert "RTD-0002/n7 was last heard" in out and "UTC" in out and "--replace" in out, out
        assert (vnode.flash / "node.json").read_bytes() == node_json, "nothing written"
        code, out = cli("provision", *args, "--replace", *env(site))
        assert code == 0, out
        new = json.loads((vnode.flash / "node.json").read_text())
        assert new["password"] != json.loads(node_json)["password"]
        code, out = cli("remove", "RTD-0002/n7", "--yes", *env(site, "otto"))
        assert code == 0 and "removed RTD-0002/n7 and 1 module" in out, out
        assert all(n["node"] != "n7" for n in site.get("tess", "/api/nodes?pole=RTD-0002").json())
    finally:
        rig.write_bytes(healthy)


def test_exit_code_table_in_the_docs_is_the_one_the_tools_use() -> None:
    doc = (ROOT / "docs" / "technician.md").read_text().splitlines()
    start = doc.index("| exit | message starts | what to do |")
    table = doc[start : start + len(exit_table())]
    assert table == exit_table()
    assert doc[start + len(exit_table())].strip() == "", "no rows beyond the tools' codes"
    assert sorted(EXIT.values()) == list(range(1, len(EXIT) + 1)), "one code per kind"
    # every kind the tools raise is one of the table's (an unknown one would exit 1 unnoticed)
    source = "".join(p.read_text() for p in (ROOT / "fieldtools").glob("*.py"))
    raised = set(re.findall(r'FieldError\(\s*"(\w+)"', source))
    assert raised and raised <= set(EXIT), raised - set(EXIT)


def test_wrong_pole_or_position_stops_commissioning_before_the_deploy(
    site: Site, vnode: VirtualNode, tmp_path: Path
) -> None:
    """The preflight at step 1: nothing is compiled, sent or registered; the hint names an
    option the command has."""
    before = sorted(p.relative_to(vnode.flash) for p in vnode.flash.rglob("*"))
    base = ["commission", "--board", "sim", "--wifi-ssid", "s", "--port", str(vnode.tty)]
    rec = ["--record", str(tmp_path / "r.json")]
    code, out = cli(*base, "--pole", "RTD-9999", *rec, *env(site))
    assert code == EXIT["controller"], out
    assert "stopped at step 1/5 (controller)" in out and "not in the registry" in out, out
    assert "[2/5]" not in out and "--owner" in out, out
    code, help_text = cli("commission", "--help")
    assert "--owner" in help_text
    far = ["--lat", "51.91", "--lon", "4.480"]  # about 1.1 km north of RTD-0001
    code, out = cli(*base, "--pole", "RTD-0001", *far, *rec, *env(site))
    assert code == EXIT["position"], out
    assert "stopped at step 1/5 (controller)" in out and "right pole" in out, out
    assert "--accept-position" in out and "[2/5]" not in out, out
    assert sorted(p.relative_to(vnode.flash) for p in vnode.flash.rglob("*")) == before
    code, out = cli("provision", "--pole", "RTD-0001", *far, *base[3:], *env(site))
    assert code == EXIT["position"] and "right pole" in out, out


@pytest.mark.slow
def test_a_failed_provision_leaves_nothing_registered(site: Site, vnode: VirtualNode) -> None:
    """An operator provisions onto a new pole; node.json fails the node's own check after the
    pole, node and modules were registered: all of it is rolled back."""
    cli("deploy", "--port", str(vnode.tty), "--board", "sim")  # stands alone
    owner = site.get("admin", "/api/poles/RTD-0001").json()["owner_id"]
    rig = vnode.flash / "rig.json"
    healthy = rig.read_bytes()
    rig.write_bytes(rig_json(hardware_id="sim-7e57ab"))  # an ESP32 not registered anywhere
    audit_before = len(site.get("admin", "/api/audit?limit=1000").json())
    try:
        code, out = cli(
            "provision",
            "--pole",
            "RTD-0100",
            "--owner",
            str(owner),
            "--lat",
            "51.9",
            "--lon",
            "4.49",
            "--wifi-ssid",
            "x" * 40,  # longer than the node takes: refused after registering
            "--port",
            str(vnode.tty),
            *env(site, "otto"),
        )
    finally:
        rig.write_bytes(healthy)
    assert code == EXIT["usage"] and "wifi.ssid" in out, out
    assert "registered pole RTD-0100" in out and "rolled back: pole RTD-0100" in out, out
    assert "rolled back: node RTD-0100/n1" in out and "module" in out, out
    assert site.get("otto", "/api/poles/RTD-0100").status_code == 404
    assert not site.get("otto", "/api/nodes?pole=RTD-0100").json()
    assert len(site.get("admin", "/api/audit?limit=1000").json()) > audit_before  # audited


def test_remove_asks_and_takes_the_node_and_its_modules(site: Site) -> None:
    owner = site.get("admin", "/api/poles/RTD-0001").json()["owner_id"]
    pole = {"id": "RTD-0200", "lat": 51.9, "lon": 4.47, "owner_id": owner}
    assert site.post("otto", "/api/poles", pole).status_code == 201
    assert site.post("tess", "/api/nodes", {"pole": "RTD-0200", "node": "n8"}).status_code == 201
    for kind in ("air", "noise"):
        body = {"type": kind, "owner_id": owner, "node": "n8", "purpose": kind}
        assert site.post("otto", "/api/poles/RTD-0200/modules", body).status_code == 201

    def n8() -> list[dict[str, object]]:
        return [n for n in site.get("otto", "/api/nodes?pole=RTD-0200").json() if n["node"] == "n8"]

    def n8_modules() -> list[dict[str, object]]:
        pole = site.get("otto", "/api/poles/RTD-0200").json()
        return [m for m in pole["modules"] if m["node"] == "n8"]

    assert n8() and n8_modules()
    code, out = cli("remove", "RTD-0200/n8", *env(site, "tess"), "--yes")
    assert code == EXIT["controller"] and "takes an operator's token" in out, out
    assert "tess is a technician" in out and "remove it?" not in out, out
    r = CliRunner().invoke(app, ["node", "remove", "RTD-0200/n8", *env(site, "otto")], input="n\n")
    assert r.exit_code == EXIT["failed"] and "nothing removed" in r.output, r.output
    assert "remove RTD-0200/n8 (registry id" in r.output and "remove it? [y/N]" in r.output
    assert n8() and n8_modules()
    r = CliRunner().invoke(app, ["node", "remove", "RTD-0200/n8", *env(site, "otto")], input="y\n")
    assert r.exit_code == 0 and "removed RTD-0200/n8" in r.output, r.output
    assert not n8() and not n8_modules()
    audit = site.get("admin", "/api/audit?limit=1000").json()
    audit = audit.get("items", audit) if isinstance(audit, dict) else audit
    assert any(a["action"] == "node.remove" and a["target_id"] == "RTD-0200/n8" for a in audit)


def test_send_record_twice_stores_it_once(site: Site, tmp_path: Path) -> None:
    assert site.post("tess", "/api/nodes", {"pole": "RTD-0001", "node": "n3"}).status_code == 201
    rec = {
        "schema": "streetpole-commissioning/1",
        "status": "commissioned",
        "pole": "RTD-0001",
        "node": "n3",
        "board": "sim",
        "firmware": {"version": "1", "hash": "a" * 64},
        "sensors": [],
        "location": {"lat": 51.9, "lon": 4.48},
        "time": "2026-12-01T10:00:00Z",
        "technician": "tess",
    }
    path = tmp_path / "offline.json"
    path.write_text(json.dumps(rec))

    def stored() -> list[dict[str, object]]:
        return [
            r
            for r in site.get("otto", "/api/commissioning?pole=RTD-0001").json()
            if r["record"]["time"] == rec["time"]
        ]

    code, out = cli("send-record", str(path), *env(site))
    assert code == 0 and "stored by the controller" in out, out
    first = json.loads(path.read_text())["controller_record_id"]
    code, out = cli("send-record", str(path), *env(site))  # the file now holds the id
    assert code == 0 and f"record {first} was stored by the controller already" in out, out
    path.write_text(json.dumps(rec))  # a copy without it: the controller still knows it
    code, out = cli("send-record", str(path), *env(site))
    assert code == 0, out
    assert [r["id"] for r in stored()] == [first]
    assert "controller_record_id" not in stored()[0]["record"]


@pytest.mark.slow
def test_selftest_logs_in_as_the_node_and_virtual_run_comes_online(
    site: Site, vnode: VirtualNode
) -> None:
    """The self-test's broker check is a real MQTT CONNECT with node.json's credentials, from
    MicroPython: CONNACK 0 passes, a wrong password fails with the broker's code and a hint.
    Then `streetpole node virtual --run` powers the node on: the controller lists it online, as
    `GET /api/nodes?pole=` does for a mounted node within a minute."""
    cli("deploy", "--port", str(vnode.tty), "--board", "sim")
    rig = vnode.flash / "rig.json"
    healthy = rig.read_bytes()
    rig.write_bytes(rig_json(hardware_id="sim-0111e0"))
    args = ["--pole", "RTD-0002", "--node", "n5", "--wifi-ssid", "s", "--port", str(vnode.tty)]
    try:
        code, out = cli("provision", *args, *env(site, "otto"))
        assert code == 0, out
        _broker_login(vnode)
        run = ["node", "virtual", "--run", "--flash", str(vnode.flash)]
        proc = subprocess.Popen(
            [sys.executable, "-m", "streetpole", *run],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            node = wait_for(
                lambda: [
                    n
                    for n in site.get("tess", "/api/nodes?pole=RTD-0002").json()
                    if n["node"] == "n5" and n["status"] == "online"
                ],
                timeout=60,
                what="RTD-0002/n5 online at the controller",
            )[0]
        finally:
            terminate(proc)
            console = proc.stdout.read().decode() if proc.stdout else ""
        assert node["last_seen"] and node["firmware_version"] == fw.firmware_version(), console
        assert "powered on" in console and "node RTD-0002/n5 starting" in console, console
    finally:
        rig.write_bytes(healthy)
        cli("remove", "RTD-0002/n5", "--yes", *env(site, "otto"))


def _broker_login(vnode: VirtualNode) -> None:
    code, out = cli("selftest", "--broker-check", "--port", str(vnode.tty))
    assert code == 0, out
    assert "login as RTD-0002/n5 to 127.0.0.1" in out and "CONNACK 0 (accepted)" in out, out
    node_json = vnode.flash / "node.json"
    good = node_json.read_bytes()
    cfg = json.loads(good)
    node_json.write_text(json.dumps({**cfg, "password": cfg["password"][::-1]}))
    try:
        code, out = cli("selftest", "--broker-check", "--port", str(vnode.tty))
    finally:
        node_json.write_bytes(good)
    assert code == EXIT["selftest"], out
    assert "broker: login as RTD-0002/n5" in out and "refused: CONNACK 5 (not authorised)" in out
    assert "provision the node again" in out, out


@pytest.mark.parametrize(
    ("module", "args", "usage"),
    [
        ("streetpole", ["node", "provision"], "Usage: streetpole node provision [OPTIONS]"),
        ("controller", ["create-user"], "Usage: streetpole create-user [OPTIONS]"),
    ],
)
def test_help_names_the_streetpole_command_and_fits_80_columns(
    module: str, args: list[str], usage: str
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", module, *args, "--help"],
        cwd=ROOT,
        env=dict(os.environ, COLUMNS="80"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(usage), proc.stdout
    assert "…" not in proc.stdout and max(map(len, proc.stdout.splitlines())) <= 80


def test_every_node_commands_help_shows_whole_defaults() -> None:
    commands = ["flash", "deploy", "provision", "remove", "selftest", "commission"]
    for name in [*commands, "send-record", "virtual"]:
        r = CliRunner().invoke(app, ["node", name, "--help"], prog_name="streetpole")
        assert r.exit_code == 0, r.output
        assert r.output.startswith(f"Usage: streetpole node {name} "), r.output
        assert "…" not in r.output, r.output
        flat = " ".join(r.output.split())  # defaults may wrap at a space, never be cut
        if name in ("provision", "remove", "commission"):
            assert "default: http://127.0.0.1:8000]" in flat, flat
