"""Serialise a message our own code built: the channel's semantic rules that concern what a node
sends (the plausible range of each reading, no repeated reading) and the size limit, no schema.

``codec.dump`` is this; it lives in its own small module so a node can keep it loaded without
the rest of the codec (see protocols/codec.py).
"""

import json

from protocols import MAX_PAYLOAD
from protocols.errors import ProtocolError
from protocols.quantities import plausible


def check_meas(msg):
    seen = {}
    readings = msg["readings"]
    for i in range(len(readings)):
        r = readings[i]
        known = plausible(r["q"])
        if known is None:  # the schema refuses it first where a schema is checked
            raise ProtocolError("readings[%d].q" % i, "unknown quantity %s" % r["q"])
        unit, lo, hi = known
        v = r["v"]
        if v != v or not lo <= v <= hi:
            raise ProtocolError(
                "readings[%d].v" % i,
                "%s outside plausible range %s..%s %s for %s" % (v, lo, hi, unit, r["q"]),
            )
        key = (r["ts"], r["q"], r.get("src"))
        if key in seen:
            raise ProtocolError("readings[%d]" % i, "repeats readings[%d]" % seen[key])
        seen[key] = i


def serialise(msg):
    data = json.dumps(msg, separators=(",", ":")).encode()
    if len(data) > MAX_PAYLOAD:
        raise ProtocolError(
            "payload", "%d bytes, over the %d byte limit" % (len(data), MAX_PAYLOAD)
        )
    return data


def dump(channel, msg):
    """Serialise a message our own code built, checking the channel's semantic rules (e.g. the
    plausible range of each reading) and the size limit but not the schema: the node's way out.
    ``codec.encode`` is the same with the schema."""
    if channel == "meas":
        check_meas(msg)
    return serialise(msg)
