"""Node config key cases on MicroPython: local file errors, remote config applied, persisted,
re-delivered, rejected with reason and the old one kept. micropython nodeconfig_check.py DIR"""

import json
import sys

from spnode.nodeconfig import ConfigError, NodeConfig, RemoteConfig

d = sys.argv[1]
local = {
    "pole": "RTD-0001",
    "node": "n1",
    "wifi": {"ssid": "street"},
    "broker": "mqtt://10.0.0.2:1884",
    "update_key": "00112233445566778899aabbccddeeff",
}
c = NodeConfig(local)
assert (c.host, c.port, c.tls, len(c.update_key)) == ("10.0.0.2", 1884, False, 16)
for key, value, field in (
    ("node", "n/1", "node"),
    ("broker", "tcp://x", "broker"),
    ("update_key", "zz" * 16, "update_key"),
):
    bad = dict(local)
    bad[key] = value
    try:
        NodeConfig(bad)
        raise AssertionError("accepted " + key)
    except ConfigError as e:
        assert e.field == field, e

good = {
    "version": 3,
    "report_period_s": 60,
    "tz": "CET-1CEST,M3.5.0,M10.5.0/3",
    "dimming": {
        "programs": {"p": {"steps": [{"at": "18:00", "level": 1}]}},
        "default_program": "p",
    },
}
rc = RemoteConfig(d + "/config.json")
ack, changed = rc.offer(json.dumps(good).encode(), 1795582800)
assert changed and ack["status"] == "applied" and ack["id"] == "3", ack
ack, changed = rc.offer(json.dumps(good).encode(), 1795582800)
assert not changed and ack["status"] == "applied"
bad = dict(good)
bad["version"] = 4
bad["dimming"] = {"programs": good["dimming"]["programs"], "default_program": "q"}
ack, changed = rc.offer(json.dumps(bad).encode(), 1795582800)
assert not changed and ack["status"] == "rejected" and ack["id"] == "4", ack
assert ack["reason"] == "dimming.default_program: names no program in dimming.programs", ack
bad["dimming"] = good["dimming"]
bad["tz"] = "nonsense"
ack, changed = rc.offer(json.dumps(bad).encode(), 1795582800)
assert ack["status"] == "rejected" and ack["reason"].startswith("tz: "), ack
assert rc.version == 3
again = RemoteConfig(d + "/config.json")
assert again.load() == good
print("OK")
