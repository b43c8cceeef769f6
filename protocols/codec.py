"""Encode and decode payloads: bytes in, validated messages (plain dicts) out, and back.

Both directions apply the same checks, so a node cannot send what the controller would refuse:
size limit, UTF-8 JSON, the channel's JSON Schema (protocols/schema_defs.py), then the few rules a
schema cannot say (plausible ranges per quantity, cross-field rules). Every failure is a
ProtocolError naming the field.

The node does not load this module for what it receives: ``protocols.incoming`` checks a config
or command with the schema compiled into code (protocols/nodecheck, see protocols/checkgen.py)
and ``protocols.rules``, which this module uses too. What it sends it builds itself and
serialises with ``dump`` (the semantic rules and the size limit, no schema); the CPython tests
check every message a node sends.
"""

import json
import sys

from protocols import MAX_PAYLOAD
from protocols.errors import ProtocolError
from protocols.incoming import check_schema, parse_json
from protocols.outgoing import check_meas as _check_meas
from protocols.outgoing import dump  # noqa: F401  (the node's way out)
from protocols.outgoing import serialise as _serialise
from protocols.rules import check_cmd, check_config

_SEMANTIC = {"meas": _check_meas, "config": check_config, "cmd": check_cmd}

# CPython (controller, tests, tools) builds each schema once from schema_defs and keeps it. The
# node (MicroPython) has no schema at all: it runs protocols/nodecheck/<channel>.py, the schema
# compiled into code by protocols/checkgen.py, loaded for one message and unloaded after it.
_CACHE_ALL = sys.implementation.name != "micropython"
_cache = {}
if _CACHE_ALL:
    from protocols.schema_defs import BUILDERS  # noqa: F401  (the channels, for tests and tools)


def schema(channel):
    """The JSON Schema (a dict) of a channel's payload (CPython only)."""
    found = _cache.get(channel)
    if found is None:
        from protocols.schema_defs import BUILDERS

        builder = BUILDERS.get(channel)
        if builder is None:
            raise ProtocolError("topic.channel", "unknown channel %r" % (channel,))
        found = _cache[channel] = builder()
    return found


if _CACHE_ALL:  # CPython's json takes NaN and Infinity, which are not JSON: refuse them as
    # MicroPython's does.

    def _no_constant(name):
        raise ValueError(name + " is not JSON")

    def _std_loads(text):
        try:
            msg = json.loads(text, parse_constant=_no_constant)
            # json takes an escaped lone surrogate ("\\ud800"), which is not Unicode and fails
            # later where the text is encoded (validator, store, response): refuse it here
            json.dumps(msg, ensure_ascii=False).encode()
        except RecursionError:
            raise ProtocolError("payload", "nested too deeply") from None
        except UnicodeEncodeError:
            raise ProtocolError("payload", "a string holds a lone UTF-16 surrogate") from None
        return msg

    try:  # ~5x faster than json on the controller's ingest path; not on MicroPython
        from orjson import loads as _orjson_loads
    except ImportError:
        _orjson_loads = None

    def _loads(text):
        if _orjson_loads is not None:
            try:
                return _orjson_loads(text)
            except ValueError:  # strict JSON only, 64-bit integers: json gives the verdict
                pass
        return _std_loads(text)

else:
    _orjson_loads = None
    _loads = json.loads


try:  # CPython: a compiled validator, many times faster than ours (docs/performance.md)
    import jsonschema_rs as _fast
except ImportError:  # MicroPython, or not installed
    _fast = None
_fast_validators = {}


def _fast_valid(channel, msg):
    v = _fast_validators.get(channel)
    if v is None:
        v = _fast_validators[channel] = _fast.validator_for(schema(channel))
    return v.is_valid(msg)


def check(channel, msg):
    """Validate a message (a dict) for a channel; raise ProtocolError or return it.

    Where a compiled JSON Schema validator is available it decides, and ours runs only to name
    the field of a refusal; both are checked to agree on every test vector.
    """
    if _fast is None or not _fast_valid(channel, msg):
        if _CACHE_ALL:
            from protocols.validate import validate

            validate(msg, schema(channel))
        else:
            check_schema(channel, msg)
        if _fast is not None:  # ours accepted what the compiled one refused: trust the refusal
            raise ProtocolError("payload", "does not match the %s schema" % channel)
    rule = _SEMANTIC.get(channel)
    if rule is not None:
        rule(msg)
    return msg


def encode(channel, msg):
    """Validate and serialise a message to compact UTF-8 JSON bytes."""
    return _serialise(check(channel, msg))


def decode(channel, payload):
    """Parse and validate payload bytes received on a channel; return the message dict."""
    if _orjson_loads is not None and len(payload) <= MAX_PAYLOAD:  # CPython: orjson takes the
        # bytes as they are (it checks UTF-8 itself), no copy and no str; whatever it refuses,
        # the path below judges
        try:
            msg = _orjson_loads(payload)
        except ValueError:
            pass
        else:
            return check(channel, msg)
    return check(channel, parse_json(payload, _loads))


def parse(topic, payload):
    """Topic string and payload bytes in; (Topic, message dict) out."""
    from protocols.topics import Topic

    t = Topic.parse(topic)
    return t, decode(t.channel, payload)
