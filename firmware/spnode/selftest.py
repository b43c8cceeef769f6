"""Self-test for technicians: checks each configured sensor, the lamp output and (optionally) the
broker connection; prints a pass/fail table and returns the results as ack `checks` items
``{"name": ..., "ok": ..., "reason": ...}``.

On the node (board.json on the flash)::

    mpremote run firmware/spnode/selftest.py           # or, at the REPL:
    >>> from spnode import selftest
    >>> selftest.main(broker=("10.0.0.2", 1883, "RTD-0001/n1", "its password"))

From code (any board, e.g. the simulated one)::

    results = selftest.run(board, bdef, broker=None)
"""

import sys

from spnode.drivers.lamp import Lamp
from spnode.sensortypes import PROBE, TYPES

BOARD_FILES = ("board.json", "hardware/boards/sim.json")


def _result(name, ok, reason):
    return {"name": name, "ok": bool(ok), "reason": str(reason)[:200]}


def check_lamp(board, bdef):
    c = bdef["lamp"]
    relay = board.pin(c["relay"]) if c.get("relay") else None
    adc = board.adc(c["current_adc"]) if c.get("current_adc") else None
    lamp = Lamp(
        board.pwm(c["pwm"]),
        c["rated_w"],
        c.get("control", "pwm"),
        c.get("min_level", 0.0),
        c.get("invert", False),
        relay,
        adc,
        c.get("amps_per_volt", 1.0),
        c.get("mains_v", 230.0),
    )
    lamp.set_level(1.0, 0)
    if adc is None:
        return True, "output set to 100%; no current sense on this board: look at the lamp"
    board.sleep_ms(200)
    on = lamp.current_a()
    lamp.set_level(0.0, 0)
    board.sleep_ms(200)
    off = lamp.current_a()
    lamp.set_level(1.0, 0)  # fail towards light: leave the lamp on; the control loop takes over
    expected = c["rated_w"] / c.get("mains_v", 230.0)
    if on < expected * 0.3:
        return False, "lamp_failure: %.2f A at 100%%, expected about %.2f A" % (on, expected)
    if off > expected * 0.05:
        return False, "relay_stuck: %.2f A with the lamp off" % off
    return True, "%.2f A at 100%%, %.2f A off" % (on, off)


def check_broker(host, port, username=None, password=None, ssl=None, server_name=None, timeout_s=5):
    """Log in to the broker as the node does: TCP, TLS with the node's context (its CA and the
    broker's name), an MQTT CONNECT with its credentials; the CONNACK's code says whether the
    broker takes them. Disconnects at once (clean session, no will: nothing is published)."""
    import socket

    from protocols import mqtt_framing as mf

    where = "%s:%d" % (host, port)
    s = socket.socket()
    try:
        s.settimeout(timeout_s)
        try:
            s.connect(socket.getaddrinfo(host, port)[0][-1])
        except OSError as e:
            return False, "cannot connect to %s (%s)" % (where, e)
        if ssl is not None:
            try:
                s = ssl.wrap_socket(s, server_hostname=server_name or host)
            except (OSError, ValueError) as e:
                return False, "TLS to %s refused: %s (not the broker node.json trusts?)" % (
                    where,
                    e,
                )
        send = getattr(s, "write", None) or s.sendall  # MicroPython streams; CPython sockets
        recv = getattr(s, "read", None) or s.recv
        try:
            send(mf.send_connect(username or "selftest", 30, True, username, password))
            ack = b""
            while len(ack) < 4:
                got = recv(4 - len(ack))
                if not got:
                    break
                ack += got
        except OSError as e:
            return False, "no CONNACK from %s (%s)" % (where, e)
        if len(ack) < 4 or ack[0] != 0x20:
            return False, "no CONNACK from %s: not an MQTT broker?" % where
        code = ack[3]
        name = mf.CONNACK_CODES[code] if code < len(mf.CONNACK_CODES) else "unknown"
        tls = " over TLS" if ssl is not None else ""
        if code:
            return False, "login as %s to %s%s refused: CONNACK %d (%s)" % (
                username,
                where,
                tls,
                code,
                name,
            )
        try:
            send(b"\xe0\x00")  # DISCONNECT
        except OSError:
            pass
        return True, "login as %s to %s%s: CONNACK 0 (accepted)" % (username, where, tls)
    finally:
        s.close()


def run(board, bdef, broker=None, out=None):
    """Run every check; print the table (to `out`, default stdout) and return the results."""
    results = []
    for name, s in bdef.get("sensors", {}).items():
        try:
            ok, reason = TYPES[s["type"]][PROBE](board, s)  # the sensor's probe
        except Exception as e:  # a check must never stop the others
            ok, reason = False, "%s: %s" % (type(e).__name__, e)
        results.append(_result(name, ok, reason or "failed"))
    if bdef.get("lamp"):
        try:
            ok, reason = check_lamp(board, bdef)
        except Exception as e:
            ok, reason = False, "%s: %s" % (type(e).__name__, e)
        results.append(_result("lamp", ok, reason))
    if broker is not None:  # (host, port) or (host, port, username, password, ssl, server_name)
        ok, reason = check_broker(*broker)
        results.append(_result("broker", ok, reason))
    print_table(results, out)
    return results


def print_table(results, out=None):
    w = out.write if out is not None else sys.stdout.write
    w("%-10s %-5s %s\n" % ("check", "", "reason"))
    for r in results:
        w("%-10s %-5s %s\n" % (r["name"], "PASS" if r["ok"] else "FAIL", r["reason"]))
    bad = sum(1 for r in results if not r["ok"])
    w("%d checks, %d failed\n" % (len(results), bad))


def main(board_file=None, broker=None):
    from spnode import boarddef
    from spnode.board import open_board

    bdef = None
    for path in (board_file,) if board_file else BOARD_FILES:
        try:
            bdef = boarddef.load(path)
            break
        except boarddef.BoardDefError as e:
            if e.field != "file" or board_file:
                raise
    if bdef is None:
        raise boarddef.BoardDefError("file", "no board file found (%s)" % ", ".join(BOARD_FILES))
    return run(open_board(bdef), bdef, broker)


if __name__ == "__main__":
    main()
