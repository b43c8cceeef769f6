"""Building a Node's parts (spnode.app): each function here returns one part, which the Node's
constructor keeps. Loaded for the constructor, then unloaded (spnode.unload), so the code that
checks the local config, opens the sensors and wires the parts is not kept in the heap while the
node runs."""

import sys

from protocols import topics
from protocols.outgoing import dump
from spnode import unload
from spnode.buffer import SIZE_FLASH, SIZE_RAM, Buffer
from spnode.flash import write_atomic
from spnode.health import Health
from spnode.mqtt_client import MQTTClient
from spnode.sensing import Sensors


def checked(local):
    """The local config (node.json's dict) checked: a spnode.nodeconfig.NodeConfig. The node
    keeps its values, not the checking code."""
    if hasattr(local, "update_key"):  # checked already
        return local
    loaded = "spnode.nodeconfig" in sys.modules
    from spnode.nodeconfig import NodeConfig

    try:
        return NodeConfig(local)
    finally:
        NodeConfig = None
        if not loaded:
            unload("spnode.nodeconfig")


def clock():
    from spnode.clock import Clock

    return Clock()


def _load_int(path, default):
    try:
        with open(path) as f:
            return int(f.read())
    except (OSError, ValueError):
        return default


def boot_number(data_dir):
    """This boot's number: one more than the last, counted on flash (1 without flash)."""
    if data_dir is None:
        return 1
    boot = _load_int(data_dir + "/boot", 0) + 1
    write_atomic(data_dir + "/boot", str(boot).encode())
    return boot


def topic_names(lc):
    """The node's topics: (state, meas, event, ack, presence, config, cmd, stored)."""
    t = topics.Topic(lc.pole, lc.node, topics.STATE)
    names = [str(t)]
    for ch in (topics.MEAS, topics.EVENT, topics.ACK, topics.PRESENCE, topics.CONFIG):
        names.append(str(t.sibling(ch)))
    names.append(str(t.sibling(topics.CMD)))
    names.append(str(t.sibling(topics.STORED)))
    return names


def buffer(data_dir):
    """The store-and-forward buffer: on flash (restored) where there is a data dir, else RAM."""
    if data_dir is None:
        return Buffer(SIZE_RAM[0], SIZE_RAM[1])
    buf = Buffer(SIZE_FLASH[0], SIZE_FLASH[1], data_dir + "/meas.q")
    buf.restore()
    return buf


def health(board, clock):
    return Health(board.wdt(30000) if hasattr(board, "wdt") else None, clock)


def client(node, local, host, port, username, password, ssl, keepalive, names):
    """The MQTT client, its last will the node's offline state, subscribed to the node's
    config, commands and stored confirmations."""
    lc = node.local
    will = dump(topics.STATE, {"status": "offline", "fw": node.fw, "boot": node.boot})
    if ssl is None and lc.tls:
        ssl = lc.tls_context  # trusts only node.json's CA (spnode.tlsctx)
    if ssl is True:  # asyncio's own context trusts anyone on MicroPython
        raise ValueError("ssl: give an SSL context that verifies the broker")
    c = MQTTClient(
        lc.pole + "-" + lc.node,
        host or lc.host,
        port or lc.port,
        username=username if username is not None else lc.username,
        password=password if password is not None else lc.password,
        keepalive=keepalive,
        ssl=ssl,
        server_hostname=local.server_name,
        will=(names[0], will, 1, True),
        on_message=node._on_message,
        on_connect=node._on_connect,
    )
    c.subscribe(names[5], 1)
    c.subscribe(names[6], 1)
    c.subscribe(names[7], 0)
    return c


def lamp(board):
    """The lamp driver, or None on a board without one."""
    c = (getattr(board, "bdef", None) or {}).get("lamp")
    if not c:
        return None
    from spnode.drivers.lamp import Lamp

    return Lamp(
        board.pwm(c["pwm"]),
        c["rated_w"],
        c.get("control", "pwm"),
        c.get("min_level", 0.0),
        c.get("invert", False),
        board.pin(c["relay"]) if c.get("relay") else None,
        board.adc(c["current_adc"]) if c.get("current_adc") else None,
        c.get("amps_per_volt", 1.0),
        c.get("mains_v", 230.0),
    )


def sensors(board, lc, clock, safe_mode):
    """The sensors node.json names, opened as spnode.sensortypes says (none in safe mode:
    light, MQTT and updates only)."""
    parts = Sensors()
    if safe_mode:
        return parts
    bdef = getattr(board, "bdef", None) or {}
    fitted = bdef.get("sensors", {})
    loaded = "spnode.sensortypes" in sys.modules
    from spnode.sensortypes import OPEN, TYPES

    try:
        for name in lc.sensors:
            s = fitted.get(name)
            if s is not None:
                TYPES[s["type"]][OPEN](parts, board, s, name, clock, lc.calibration, bdef)
    finally:
        TYPES = None
        if not loaded:
            unload("spnode.sensortypes")
    return parts
