"""SNTP parsing and sync (against a UDP responder on loopback), and the watchdog rules."""

from __future__ import annotations

import asyncio
import socket
import struct
import threading

import pytest

from spnode.clock import NTP_DELTA, Clock, parse_ntp_reply
from spnode.health import Health


def ntp_reply(unix: float, mode: int = 4, stratum: int = 2) -> bytes:
    secs = int(unix) + NTP_DELTA
    frac = int((unix % 1) * 2**32)
    return bytes([0x20 | mode, stratum]) + bytes(38) + struct.pack("!II", secs, frac)


def test_parse_ntp_reply() -> None:
    assert parse_ntp_reply(ntp_reply(1795582800.5)) == pytest.approx(1795582800.5)
    for bad in (ntp_reply(1795582800, mode=3), ntp_reply(1795582800, stratum=0), b"\x24" * 47):
        with pytest.raises(ValueError):
            parse_ntp_reply(bad)


def test_sync_against_a_udp_time_server_on_loopback() -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    port = server.getsockname()[1]
    true_time = 1795582800.0

    def serve() -> None:
        data, addr = server.recvfrom(48)
        assert data[0] & 7 == 3  # a client request
        server.sendto(ntp_reply(true_time), addr)

    threading.Thread(target=serve, daemon=True).start()
    clock = Clock()
    assert asyncio.run(clock.sync_ntp("127.0.0.1", port)) is True
    assert clock.now() == pytest.approx(true_time, abs=1)
    assert clock.valid
    server.close()
    # nobody answers: no crash, no change, counted
    assert asyncio.run(clock.sync_ntp("127.0.0.1", port, timeout_ms=200)) is False
    assert clock.sync_failures == 1


class FakeClock:
    def __init__(self) -> None:
        self.t = 0

    def ticks_ms(self) -> int:
        return self.t


class CountingWatchdog:
    def __init__(self) -> None:
        self.fed = 0

    def feed(self) -> None:
        self.fed += 1


def test_watchdog_fed_only_while_control_loop_and_mqtt_are_alive() -> None:
    clock, wdt = FakeClock(), CountingWatchdog()
    health = Health(wdt, clock, control_timeout_ms=5000, mqtt_grace_ms=60000)
    for _ in range(10):
        clock.t += 1000
        health.control_tick()
        assert health.feed()
    assert wdt.fed == 10
    clock.t += 6000  # the control loop hangs
    assert not health.feed() and health.starved == "control loop stalled"
    health.control_tick()
    assert health.feed()
    for _ in range(60):  # broker gone for a minute: control goes on, watchdog fed until grace ends
        clock.t += 1000
        health.control_tick()
        health.feed()
    assert health.starved == "no MQTT round trip"
    fed = wdt.fed
    health.mqtt_ok()
    assert health.feed() and wdt.fed == fed + 1


def test_sync_on_micropython() -> None:
    from tests.harness.micropython import run_micropython
    from tests.harness.paths import ROOT

    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.settimeout(30)

    def serve() -> None:
        _, addr = server.recvfrom(48)
        server.sendto(ntp_reply(1795582800.0), addr)

    threading.Thread(target=serve, daemon=True).start()
    out = run_micropython(ROOT / "tests/mp/ntp_sync.py", str(server.getsockname()[1])).stdout
    server.close()
    ok, valid, now = out.split()
    assert (ok, valid) == ("True", "True")
    assert abs(int(now) - 1795582800) <= 1
