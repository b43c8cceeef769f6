"""A received payload checked on the node: size limit, UTF-8 JSON, the channel's check compiled
from its schema (protocols/nodecheck, see protocols/checkgen.py), then the rules a schema cannot
say (protocols/rules.py). ``codec.decode`` does the same on the controller with the schema and a
validator, and takes its first three steps from here; the node loads this module, and nothing
of the codec, for each config or command, and unloads it after.
"""

import json

from protocols import MAX_PAYLOAD, unload
from protocols.errors import ProtocolError


def parse_json(payload, loads=json.loads):
    """Payload bytes to the decoded JSON value, or ProtocolError naming the payload."""
    if len(payload) > MAX_PAYLOAD:
        raise ProtocolError(
            "payload", "%d bytes, over the %d byte limit" % (len(payload), MAX_PAYLOAD)
        )
    try:
        text = bytes(payload).decode()
    except UnicodeError:
        raise ProtocolError("payload", "not UTF-8") from None
    try:
        return loads(text)
    except ProtocolError:
        raise  # the parser's own verdict, with its reason
    except ValueError:
        raise ProtocolError("payload", "not valid JSON") from None


def check_schema(channel, msg):
    """The channel's generated check, imported for this message and forgotten after it."""
    name = "protocols.nodecheck." + str(channel)
    try:
        check = __import__(name, None, None, ("check",)).check
    except ImportError:
        raise ProtocolError("topic.channel", "unknown channel %r" % (channel,)) from None
    try:
        check(msg)
    finally:
        check = None
        unload(name, "protocols.nodecheck")


def decode(channel, payload):
    """Parse and check payload bytes received on a channel; return the message dict."""
    msg = parse_json(payload)
    payload = None
    check_schema(channel, msg)
    if channel in ("config", "cmd"):
        from protocols.rules import RULES

        try:
            RULES[channel](msg)
        finally:
            RULES = None
            unload("protocols.rules")
    return msg
