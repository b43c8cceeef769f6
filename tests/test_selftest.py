"""The technician's self-test against the simulated board: pass, fail with reasons, broker check,
and `mpremote run`-style execution on MicroPython."""

from __future__ import annotations

import io
from pathlib import Path

from controller.broker import Broker, BrokerConfig, free_port
from controller.devpki import Authority, write_server_files
from controller.mqtt_auth import MqttAccounts, generate_secret, hash_password
from protocols import codec
from spnode import boarddef, selftest, tlsctx
from spnode.board.sim import SimBoard
from spnode.sim.audio import Tone
from spnode.sim.devices import Bme280Device, Ld2410Device, Pms5003Device, Sps30Device
from spnode.sim.lamp import LampModel
from tests.harness.micropython import run_micropython_code
from tests.harness.paths import ROOT

SIM = str(ROOT / "hardware" / "boards" / "sim.json")


def healthy_board() -> tuple[SimBoard, dict]:
    bdef = boarddef.load(SIM)
    board = SimBoard(bdef)
    i2c = board.i2c("main")
    i2c.attach(0x69, Sps30Device())
    i2c.attach(0x76, Bme280Device())
    board.uart("pm").attach(Pms5003Device())
    board.uart("radar").attach(Ld2410Device())
    board.adc("no2_we").set_mv(250.0)
    board.adc("no2_ae").set_mv(240.0)
    board.i2s("mic").attach(Tone(1000, 60.0))
    model = LampModel(board.pwm("lamp"), board.pin("relay"), 60.0, 230.0, 0.5)
    board.adc("lamp_current").source = model.mv
    return board, bdef


def test_all_pass_and_results_fit_the_ack_schema() -> None:
    board, bdef = healthy_board()
    out = io.StringIO()
    results = selftest.run(board, bdef, out=out)
    assert [r["name"] for r in results] == [*bdef["sensors"], "lamp"]
    assert all(r["ok"] for r in results), results
    assert "0 failed" in out.getvalue()
    climate = next(r for r in results if r["name"] == "climate")
    assert climate["reason"] == "20.0 degC 1013 hPa 50 %RH"  # the simulated device's defaults
    ack = {"id": "c1", "kind": "cmd", "ts": 1767225600, "status": "applied", "checks": results}
    codec.encode("ack", ack)


def test_failures_carry_reasons() -> None:
    board, bdef = healthy_board()
    board.i2c("main").devices[0x69].fault = "crc"
    board.i2c("main").devices[0x76].fault = "silent"
    board.uart("pm").device.fault = "silent"
    board.uart("radar").device.fault = "truncate"
    board.adc("no2_ae").set_mv(0.0)
    board.i2s("mic").source = None
    board.adc("lamp_current").set_mv(0.0)
    results = {r["name"]: r for r in selftest.run(board, bdef, out=io.StringIO())}
    assert not any(r["ok"] for n, r in results.items() if n != "pir")
    assert "CRC" in results["pm"]["reason"]
    assert "I2C" in results["climate"]["reason"]
    assert "no valid frame" in results["pm_alt"]["reason"]
    assert "rail" in results["no2"]["reason"]
    assert "constant" in results["noise"]["reason"]
    assert "lamp_failure" in results["lamp"]["reason"]
    assert board.pwm("lamp").duty_u16() == 65535  # leaves the light on


def test_broker_check_logs_in_as_the_node(tmp_path: Path) -> None:
    """A real mosquitto with the node's account, over TLS with the node's context: CONNACK 0
    passes; a wrong password, the wrong broker name and a closed port fail, saying why."""
    accounts = MqttAccounts(tmp_path / "auth")
    secret = generate_secret()
    username = accounts.set_node("RTD-0001", "n1", hash_password(secret))
    accounts.write()
    files = write_server_files(tmp_path / "pki", Authority("Streetpole test CA"))
    config = BrokerConfig(
        port=free_port(),
        tls_port=free_port(),
        cafile=files.ca,
        certfile=files.cert,
        keyfile=files.key,
        password_file=accounts.password_file,
        acl_file=accounts.acl_file,
    )
    broker = Broker(tmp_path / "broker", config)
    broker.start()
    board, bdef = healthy_board()
    try:
        ctx = tlsctx.client_context(files.ca.read_text())
        tls_port = config.tls_port
        assert tls_port is not None

        def check(password: str, name: str = "127.0.0.1", port: int = tls_port) -> dict:
            login = ("127.0.0.1", port, username, password, ctx, name)
            return selftest.run(board, bdef, broker=login, out=io.StringIO())[-1]

        good = check(secret)
        assert good["name"] == "broker" and good["ok"], good
        assert good["reason"] == f"login as {username} to 127.0.0.1:{tls_port} over TLS: " + (
            "CONNACK 0 (accepted)"
        )
        bad = check(secret[::-1])
        assert not bad["ok"] and "refused: CONNACK 5 (not authorised)" in bad["reason"], bad
        wrong_name = check(secret, name="broker.example.org")
        assert not wrong_name["ok"] and "TLS to 127.0.0.1" in wrong_name["reason"], wrong_name
    finally:
        broker.stop()
    closed = check(secret)
    assert not closed["ok"] and "cannot connect" in closed["reason"], closed


def test_runs_on_micropython_as_on_the_node(tmp_path: Path, mpy_tree: Path) -> None:
    # `mpremote run selftest.py` on a node with board.json on its flash: the cwd plays the flash.
    (tmp_path / "board.json").write_text(Path(SIM).read_text())
    code = (
        "from spnode import selftest\n"
        "r = selftest.main()\n"
        "print('RESULT', len(r), sum(1 for x in r if x['ok']))\n"
    )
    out = run_micropython_code(code, tmp_path, cwd=tmp_path, mpy_root=mpy_tree)
    assert "check" in out and "RESULT" in out
    # no devices attached on a bare simulated board: sensors fail with reasons, not crashes
    assert "FAIL" in out and "Traceback" not in out
