"""MicroPython code the tools run on the node (raw REPL) or put on its flash.

Each snippet prints its answers as `@@SP <json>` lines (serialnode.MARK) and keeps its names in
functions, so the node's heap and globals are left as they were. Paths are relative: the ESP32's
working directory is `/`, the virtual node's is its flash folder. The snippets that import the
node's code put `app` on MicroPython's import path first, as the node's boot.py does: on the
node that path is how its code is found (no installed packages there).
"""

from __future__ import annotations

import json

# Who is on the line: MicroPython version and .mpy format, platform, hardware id, board file.
IDENTIFY = """
def _sp_identify():
    import sys, json, binascii
    def rd(p):
        try:
            with open(p) as f:
                return json.load(f)
        except Exception:
            return None
    impl = sys.implementation
    b = rd('board.json') or {}
    hid = None
    try:
        import machine
        hid = binascii.hexlify(machine.unique_id()).decode()
    except Exception:
        try:
            import sim_rig
            hid = sim_rig.hardware_id()
        except ImportError:
            pass
    if hid is None and sys.platform != 'esp32':
        hid = 'sim-' + binascii.hexlify(b'\\x00sim\\x00\\x01').decode()
    free = None
    try:
        import os
        s = os.statvfs('.')
        free = s[0] * s[4]
    except Exception:
        pass
    fw = None
    if 'app' not in sys.path:
        sys.path.insert(0, 'app')
    try:
        import spnode
        fw = spnode.VERSION
    except Exception:
        pass
    print('@@SP', json.dumps({
        'impl': impl.name, 'version': '.'.join(str(v) for v in impl.version[:3]),
        'machine': getattr(impl, '_machine', ''), 'platform': sys.platform,
        'mpy': getattr(impl, '_mpy', 0), 'hardware_id': hid, 'flash_free': free,
        'board': b.get('name'), 'board_platform': b.get('platform'),
        'sensors': sorted(b.get('sensors', {})), 'firmware': fw,
        'node_json': rd('node.json') is not None}))
_sp_identify()
del _sp_identify
"""

# sha256 of every deployed file, one line each: [path, hexdigest, size].
HASH_TREE = """
def _sp_hash(roots):
    import os, hashlib, binascii, json
    buf = bytearray(512)
    mv = memoryview(buf)
    def one(p):
        h = hashlib.sha256()
        n = 0
        with open(p, 'rb') as f:
            while True:
                k = f.readinto(buf)
                if not k:
                    break
                h.update(mv[:k])
                n += k
        print('@@SP', json.dumps([p, binascii.hexlify(h.digest()).decode(), n]))
    def walk(d):
        for e in os.ilistdir(d):
            p = d + '/' + e[0]
            if e[1] & 0x4000:
                walk(p)
            else:
                one(p)
    for r in roots:
        try:
            mode = os.stat(r)[0]
        except OSError:
            continue
        if mode & 0x4000:
            walk(r)
        else:
            one(r)
_sp_hash(__ARG__)
del _sp_hash
"""

MKDIRS = """
def _sp_mkdirs(ds):
    import os
    for d in ds:
        try:
            os.mkdir(d)
        except OSError:
            pass
_sp_mkdirs(__ARG__)
del _sp_mkdirs
"""

REMOVE = """
def _sp_rm(fs):
    import os
    for f in fs:
        try:
            os.remove(f)
        except OSError:
            pass
_sp_rm(__ARG__)
del _sp_rm
"""

# Put node.json in place (written as node.json.new first) and check it with the node's own code.
INSTALL_NODE_JSON = """
def _sp_nodejson():
    import os, sys, json
    if 'app' not in sys.path:
        sys.path.insert(0, 'app')
    try:
        os.remove('node.json')
    except OSError:
        pass
    os.rename('node.json.new', 'node.json')
    from spnode.nodeconfig import ConfigError, load_node_config
    try:
        load_node_config('node.json')
        print('@@SP', json.dumps({'ok': True}))
    except ConfigError as e:
        print('@@SP', json.dumps({'ok': False, 'reason': str(e)}))
    from spnode import unload
    unload('spnode.nodeconfig')
_sp_nodejson()
del _sp_nodejson
"""

# The firmware's own self-test (spnode/selftest.py), as `mpremote run` would, plus the Wi-Fi and
# broker check from node.json when asked. On the virtual node (platform "sim") its simulated
# wiring comes from sim_rig.py on its flash, if present.
SELFTEST = """
def _sp_selftest(broker_check):
    import sys, json, gc
    if 'app' not in sys.path:
        sys.path.insert(0, 'app')
    from spnode import boarddef, selftest, unload
    from spnode.board import open_board
    bdef = boarddef.load('board.json')
    unload('spnode.boarddef')
    board = open_board(bdef)
    if bdef['platform'] == 'sim':
        try:
            import sim_rig
            sim_rig.attach(board, bdef)
        except ImportError:
            print('(virtual node without sim_rig.py: no simulated sensors are wired)')
    broker = None
    extra = []
    if broker_check:
        from spnode.nodeconfig import load_node_config
        cfg = load_node_config('node.json')
        unload('spnode.nodeconfig')
        w = board.wlan()
        w.active(True)
        if not w.isconnected():
            w.connect(cfg.wifi_ssid, cfg.wifi_password)
        t = 0
        while not w.isconnected() and t < 20000:
            board.sleep_ms(200)
            t += 200
        if w.isconnected():  # log in as the node: its credentials, its TLS context
            broker = (cfg.host, cfg.port, cfg.username, cfg.password, cfg.tls_context,
                      cfg.server_name)
        else:
            extra.append({'name': 'wifi', 'ok': False,
                          'reason': 'not connected to %r within 20 s' % cfg.wifi_ssid})
    gc.collect()
    results = selftest.run(board, bdef, broker)
    if extra:
        selftest.print_table(extra)
    for r in results + extra:
        print('@@SP', json.dumps(r))
_sp_selftest(__ARG__)
del _sp_selftest
"""

# Simulated wiring for a virtual node (copied to its flash as sim_rig.py). Healthy devices on
# every bus the board file names; faults from rig.json, for training and tests:
#   {"faults": {"climate": "absent", "pm": "crc", "lamp": "broken"}, "hardware_id": "..."}
# Faults: "absent" (nothing wired), or the device's own fault ("crc", "silent", "truncate";
# microphone "silent", "stuck", "clip"; lamp "broken", "relay_stuck").
SIM_RIG = '''"""Simulated wiring of this virtual node (written by `streetpole node virtual`)."""
import json


def _conf():
    try:
        with open("rig.json") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def hardware_id():
    return _conf().get("hardware_id") or "sim-0073696d0001"


def attach(board, bdef):
    from spnode.sensortypes import SIMULATE, TYPES
    from spnode.sim.lamp import LampModel

    faults = _conf().get("faults", {})
    for name, s in bdef.get("sensors", {}).items():
        fault = faults.get(name)
        if fault == "absent":
            continue
        dev = TYPES[s["type"]][SIMULATE](board, s, bdef)
        if fault and dev is not None:
            dev.fault = fault
    lamp = bdef.get("lamp")
    if lamp and lamp.get("current_adc") and faults.get("lamp") != "absent":
        relay = board.pin(lamp["relay"]) if lamp.get("relay") else None
        model = LampModel(board.pwm(lamp["pwm"]), relay, lamp["rated_w"],
                          lamp.get("mains_v", 230.0), lamp.get("amps_per_volt", 1.0))
        model.broken = faults.get("lamp") == "broken"
        model.relay_stuck = faults.get("lamp") == "relay_stuck"
        board.adc(lamp["current_adc"]).source = model.mv
'''


def hash_tree(roots: list[str]) -> str:
    return HASH_TREE.replace("__ARG__", repr(roots))


def mkdirs(dirs: list[str]) -> str:
    return MKDIRS.replace("__ARG__", repr(dirs))


def remove(files: list[str]) -> str:
    return REMOVE.replace("__ARG__", repr(files))


def selftest(broker_check: bool) -> str:
    return SELFTEST.replace("__ARG__", repr(broker_check))


def rig_json(faults: dict[str, str] | None = None, hardware_id: str | None = None) -> bytes:
    conf: dict[str, object] = {"faults": faults or {}}
    if hardware_id:
        conf["hardware_id"] = hardware_id
    return json.dumps(conf).encode()
