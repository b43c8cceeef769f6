"""Self-test for technicians: checks each configured sensor, the lamp output and (optionally) the
broker connection; prints a pass/fail table and returns the results as ack `checks` items
``{"name": ..., "ok": ..., "reason": ...}``.

On the node (board.json on the flash)::

    mpremote run firmware/spnode/selftest.py           # or, at the REPL:
    >>> from spnode import selftest
    >>> selftest.main(broker=("10.0.0.2", 1883))

From code (any board, e.g. the simulated one)::

    results = selftest.run(board, bdef, broker=None)
"""

import sys

from spnode.drivers.bme280 import Bme280
from spnode.drivers.lamp import Lamp
from spnode.drivers.ld2410 import Ld2410
from spnode.drivers.no2_cell import No2Cell
from spnode.drivers.pir import Pir
from spnode.drivers.pms5003 import Pms5003
from spnode.drivers.sps30 import Sps30

BOARD_FILES = ("board.json", "hardware/boards/sim.json")


def _result(name, ok, reason):
    return {"name": name, "ok": bool(ok), "reason": str(reason)[:200]}


def _wait(board, ms, poll, step=100):
    """Call poll() every `step` ms (board time) until it returns non-None or ms elapse."""
    waited = 0
    while True:
        v = poll()
        if v is not None or waited >= ms:
            return v
        board.sleep_ms(step)
        waited += step


def check_sps30(board, s):
    dev = Sps30(board.i2c(s["i2c"]), s.get("addr", 0x69))
    dev.wake()
    kind = dev.product_type()
    if kind is None:
        return False, dev.fault
    if not kind.startswith("0008"):
        return False, "product type %r is not an SPS30" % kind
    if not dev.start():
        return False, dev.fault
    v = _wait(board, 3000, lambda: dev.read_pm() if dev.data_ready() else None)
    if v is None:
        return False, dev.fault or "no data within 3 s"
    return True, "pm2.5 %.1f ug/m3 (warm-up not applied)" % v[1]


def check_pms5003(board, s):
    dev = Pms5003(board.uart(s["uart"]))
    dev.start(now_ms=board.ticks_ms())
    v = _wait(board, 4000, lambda: dev.read(board.ticks_ms()))
    if v is None:
        return False, dev.fault or "no valid frame within 4 s"
    return True, "pm2.5 %d ug/m3, %d frames, %d bad" % (v[1], dev.frames, dev.errors)


def check_bme280(board, s):
    dev = Bme280(board.i2c(s["i2c"]), s.get("addr", 0x76))
    if not dev.begin() or not dev.trigger():
        return False, dev.fault
    board.sleep_ms(20)
    v = dev.read()
    if v is None:
        return False, dev.fault
    return True, "%.1f degC %.0f hPa %.0f %%RH" % v  # read() gives (t, p, h)


def check_no2(board, s):
    cell = No2Cell(board.adc(s["we"]), board.adc(s["ae"]), s.get("n", 1.0), s.get("gain", 1.0))
    r = cell.read()
    if r is None:
        return False, cell.fault
    return True, "WE %.0f mV AE %.0f mV" % (r["we_mv"], r["ae_mv"])


def check_pir(board, s):
    pir = Pir(board.pin(s["pin"]), board.ticks_ms)
    return True, "pin reads %d (walk past to see the count rise)" % pir.level()


def check_ld2410(board, s):
    dev = Ld2410(board.uart(s["uart"]))
    dev.start(board.ticks_ms())

    def poll():
        dev.poll(board.ticks_ms())
        return dev.state if dev.frames else None

    v = _wait(board, 1500, poll)
    if v is None:
        return False, dev.fault or "no valid frame within 1.5 s"
    return True, "target state %d, %d frames, %d bad" % (v, dev.frames, dev.errors)


def check_mic(board, s):
    from spnode.noise.meter import CLIP, NoiseMeter

    rate = board.bdef["i2s"][s["i2s"]]["rate"]
    m = NoiseMeter(rate, s.get("sensitivity_dbfs", -26.0))
    i2s = board.i2s(s["i2s"])
    lo = hi = None
    for _ in range(8):
        i2s.readinto(m.buf)
        for i in range(0, m.block, 7):
            v = m.buf[i]
            lo = v if lo is None or v < lo else lo
            hi = v if hi is None or v > hi else hi
        m.process()
    if hi == lo:
        return False, "microphone data constant (%d): not connected or dead" % lo
    if m.out[2] >= CLIP:
        return False, "microphone clipping"
    return True, "about %.0f dB(A), %s path" % (m.level(m._fast), m.path)


CHECKS = {
    "sps30": check_sps30,
    "pms5003": check_pms5003,
    "bme280": check_bme280,
    "no2_cell": check_no2,
    "pir": check_pir,
    "ld2410": check_ld2410,
    "inmp441": check_mic,
    "ics43434": check_mic,
}


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


def check_broker(host, port, timeout_s=3):
    import socket

    s = socket.socket()
    try:
        s.settimeout(timeout_s)
        s.connect(socket.getaddrinfo(host, port)[0][-1])
    except OSError as e:
        return False, "cannot connect to %s:%d (%s)" % (host, port, e)
    finally:
        s.close()
    return True, "TCP connect to %s:%d" % (host, port)


def run(board, bdef, broker=None, out=None):
    """Run every check; print the table (to `out`, default stdout) and return the results."""
    results = []
    for name, s in bdef.get("sensors", {}).items():
        try:
            ok, reason = CHECKS[s["type"]](board, s)
        except Exception as e:  # a check must never stop the others
            ok, reason = False, "%s: %s" % (type(e).__name__, e)
        results.append(_result(name, ok, reason or "failed"))
    if bdef.get("lamp"):
        try:
            ok, reason = check_lamp(board, bdef)
        except Exception as e:
            ok, reason = False, "%s: %s" % (type(e).__name__, e)
        results.append(_result("lamp", ok, reason))
    if broker is not None:
        ok, reason = check_broker(broker[0], broker[1])
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
