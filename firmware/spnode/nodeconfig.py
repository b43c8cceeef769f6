"""The node's two configurations: its local file (set at provisioning) and the remote config.

Local file ``node.json``, read once at boot; ``ConfigError`` names the field at fault::

    {"pole": "RTD-0001", "node": "n1",
     "wifi": {"ssid": "street", "password": "..."},
     "broker": "mqtts://broker.example.org:8883", "username": "RTD-0001-n1", "password": "...",
     "location": {"lat": 51.92, "lon": 4.48}, "board": "streetpole-esp32-v1",
     "sensors": ["pm", "climate", "noise"], "calibration": {"noise_offset_db": 1.5},
     "update_key": "<64 hex digits>",
     "ca": "-----BEGIN CERTIFICATE-----\n...", "server_name": "broker.example.org"}

Required: pole, node, wifi.ssid, broker, update_key (at least 16 bytes). The broker URL is
``mqtt://`` (port 1883) or ``mqtts://`` (port 8883), optionally with a port. With ``mqtts://``,
``ca`` is required: the PEM certificate(s) of the CA that signed the broker's certificate, the
only CA the node trusts (for the broker and for firmware downloads over https). ``server_name``
is the name the broker's certificate must carry, when it is not the URL's host.

Remote config (the retained ``config`` topic, spnode/remoteconfig.py, the part the node keeps in
its heap after boot; re-exported here): ``RemoteConfig.offer(payload, now)`` validates with
the protocol codec plus the checks only the node can make (the tz string), and returns the ``ack``
message (a dict) and whether anything changed. Rules: a payload that fails validation is rejected
with the ProtocolError text as the reason and the config in force stays; an older version is
rejected; the same version with the same content is a re-delivery (the broker sends the retained
config on every reconnect): acknowledged ``applied``, nothing changes; the same version with
different content is rejected (the controller must raise the version). A new config is written
atomically (temporary file, then rename) before it is acknowledged.
"""

import json

from protocols.errors import ProtocolError
from protocols.topics import check_id
from spnode import unload
from spnode.remoteconfig import RemoteConfig, check_remote  # noqa: F401

CAL_KEYS = (
    "noise_offset_db",
    "temperature_offset",
    "no2_we_zero_mv",
    "no2_ae_zero_mv",
    "no2_sensitivity_mv_ppb",
)
_KEYS = (
    "pole",
    "node",
    "wifi",
    "broker",
    "username",
    "password",
    "location",
    "board",
    "sensors",
    "calibration",
    "update_key",
    "ca",
    "server_name",
)


class ConfigError(ProtocolError):
    """The local config file is wrong (the installer's fault): ``field`` and ``reason``, as
    the protocol's own errors carry them."""


def _str(d, key, field, required=True, lo=1, hi=64):
    v = d.get(key)
    if v is None:
        if required:
            raise ConfigError(field, "missing")
        return None
    if not isinstance(v, str):
        raise ConfigError(field, "must be a string")
    if not lo <= len(v) <= hi:
        raise ConfigError(field, "length must be %d..%d" % (lo, hi))
    return v


def _num(v, field, lo, hi):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ConfigError(field, "must be a number")
    if not lo <= v <= hi:
        raise ConfigError(field, "%s outside %s..%s" % (v, lo, hi))
    return float(v)


def parse_broker_url(url, field="broker"):
    """(tls, host, port) of mqtt://host[:port] or mqtts://host[:port]."""
    if url.startswith("mqtts://"):
        tls, rest, port = True, url[8:], 8883
    elif url.startswith("mqtt://"):
        tls, rest, port = False, url[7:], 1883
    else:
        raise ConfigError(field, "must start with mqtt:// or mqtts://")
    rest = rest.rstrip("/")
    if "/" in rest or "@" in rest:
        raise ConfigError(field, "only host[:port]; credentials go in username/password")
    if ":" in rest:
        rest, p = rest.rsplit(":", 1)
        if not p.isdigit() or not 0 < int(p) < 65536:
            raise ConfigError(field, "port %r is not 1..65535" % p)
        port = int(p)
    if not rest:
        raise ConfigError(field, "host missing")
    return tls, rest, port


class NodeConfig:
    """The validated local config: attributes named as the file's fields."""

    def __init__(self, data):
        if not isinstance(data, dict):
            raise ConfigError("node.json", "must be a JSON object")
        for k in data:
            if k not in _KEYS:
                raise ConfigError(k, "unknown field")
        for k in ("pole", "node"):
            try:
                check_id(data.get(k), k)
            except ProtocolError as e:
                raise ConfigError(e.field, "missing" if k not in data else e.reason) from None
        self.pole = data["pole"]
        self.node = data["node"]
        wifi = data.get("wifi")
        if not isinstance(wifi, dict):
            raise ConfigError("wifi", "missing (an object with ssid and password)")
        self.wifi_ssid = _str(wifi, "ssid", "wifi.ssid", hi=32)
        self.wifi_password = _str(wifi, "password", "wifi.password", False, 0, 64) or ""
        self.broker = _str(data, "broker", "broker", hi=200)
        self.tls, self.host, self.port = parse_broker_url(self.broker)
        self.username = _str(data, "username", "username", False, 1, 128)
        self.password = _str(data, "password", "password", False, 0, 128)
        loc = data.get("location")
        self.location = None
        if loc is not None:
            if not isinstance(loc, dict) or "lat" not in loc or "lon" not in loc:
                raise ConfigError("location", "must be an object with lat and lon")
            self.location = {
                "lat": _num(loc["lat"], "location.lat", -90, 90),
                "lon": _num(loc["lon"], "location.lon", -180, 180),
            }
        self.board = _str(data, "board", "board", False) or "sim"
        sensors = data.get("sensors", [])
        if not isinstance(sensors, list):
            raise ConfigError("sensors", "must be a list of sensor names")
        for i in range(len(sensors)):
            try:
                check_id(sensors[i], "sensors[%d]" % i)
            except ProtocolError as e:
                raise ConfigError(e.field, e.reason) from None
        self.sensors = sensors
        cal = data.get("calibration", {})
        if not isinstance(cal, dict):
            raise ConfigError("calibration", "must be an object")
        for k in cal:
            if k not in CAL_KEYS:
                raise ConfigError("calibration." + k, "unknown calibration value")
            _num(cal[k], "calibration." + k, -1000, 1000)
        self.calibration = cal
        key = _str(data, "update_key", "update_key", hi=128)
        try:
            self.update_key = bytes.fromhex(key)
        except ValueError:
            raise ConfigError("update_key", "must be hex digits") from None
        if len(self.update_key) < 16:
            raise ConfigError("update_key", "must be at least 16 bytes (32 hex digits)")
        self.server_name = _str(data, "server_name", "server_name", False, 1, 253) or self.host
        self.tls_context = None  # spnode.tlsctx checks the CA: loaded only when there is one
        ca = data.get("ca")
        if ca is None and self.tls:
            raise ConfigError("ca", "missing: mqtts:// needs the PEM certificate of its CA")
        if ca is not None:
            from spnode.tlsctx import client_context

            try:
                self.tls_context = client_context(ca)
            except ValueError as e:
                raise ConfigError("ca", str(e)) from None
            finally:
                client_context = None
                unload("spnode.tlsctx")


def load_node_config(path):
    """Read and validate the local config file; ConfigError names what is wrong."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        raise ConfigError(path, "cannot be read") from None
    try:
        data = json.loads(text)
    except ValueError:
        raise ConfigError(path, "not valid JSON") from None
    return NodeConfig(data)
