"""A small JSON Schema validator for the subset the protocol's schemas use.

Why our own: it names the offending field the way every other refusal does, where the compiled
validator (`jsonschema_rs`) only says yes or no, and it is the reference the node's generated
checks (protocols/checkgen.py) follow keyword by keyword. It runs on CPython only; the node runs
the generated checks. The subset is checked against the real `jsonschema` package on every test
vector (tests/test_protocol_*.py).

Supported keywords: type, enum, const, minimum, maximum, exclusiveMinimum, exclusiveMaximum,
minLength, maxLength, pattern, properties, required, additionalProperties, propertyNames,
minProperties, maxProperties, items, minItems, maxItems, uniqueItems, $ref (local #/$defs/...),
allOf and if/then. Annotations (title, description, examples, $schema, $id, $comment) are ignored.
Errors name the offending field as a path: ``readings[2].v``.
"""

import re

from protocols.errors import ProtocolError

_INF = float("inf")
_pattern_cache = {}


def _path(base, key):
    if isinstance(key, int):
        return base + "[" + str(key) + "]"
    if not base:
        return key
    return base + "." + key


def _is_type(value, name):
    if name == "object":
        return isinstance(value, dict)
    if name == "array":
        return isinstance(value, list)
    if name == "string":
        return isinstance(value, str)
    if name == "boolean":
        return value is True or value is False
    if name == "null":
        return value is None
    if value is True or value is False:
        return False
    if name == "integer":
        if isinstance(value, int):
            return True
        return (
            isinstance(value, float)
            and value == value
            and value not in (_INF, -_INF)
            and (value == int(value))
        )
    if name == "number":
        return isinstance(value, (int, float))
    raise ValueError("schema uses unsupported type " + name)


def _regex(pattern):
    compiled = _pattern_cache.get(pattern)
    if compiled is None:
        compiled = re.compile(pattern)
        _pattern_cache[pattern] = compiled
    return compiled


def _resolve(root, ref):
    if not ref.startswith("#/$defs/"):
        raise ValueError("only local #/$defs/ references are supported: " + ref)
    return root["$defs"][ref[8:]]


def _fail(path, reason):
    raise ProtocolError(path or "payload", reason)


def _short(value):
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_number(value, schema, path):
    if isinstance(value, float) and (value != value or value in (_INF, -_INF)):
        _fail(path, "must be a finite number")
    lo = schema.get("minimum")
    if lo is not None and value < lo:
        _fail(path, "must be >= " + str(lo))
    hi = schema.get("maximum")
    if hi is not None and value > hi:
        _fail(path, "must be <= " + str(hi))
    lo = schema.get("exclusiveMinimum")
    if lo is not None and value <= lo:
        _fail(path, "must be > " + str(lo))
    hi = schema.get("exclusiveMaximum")
    if hi is not None and value >= hi:
        _fail(path, "must be < " + str(hi))


def _check_string(value, schema, path):
    n = len(value)
    lo = schema.get("minLength")
    if lo is not None and n < lo:
        _fail(path, "must be at least " + str(lo) + " characters")
    hi = schema.get("maxLength")
    if hi is not None and n > hi:
        _fail(path, "must be at most " + str(hi) + " characters")
    pattern = schema.get("pattern")
    if pattern is not None and _regex(pattern).search(value) is None:
        _fail(path, "does not match " + pattern)


def _check_object(value, schema, root, path):
    props = schema.get("properties", {})
    for key in schema.get("required", ()):
        if key not in value:
            _fail(_path(path, key), "required field missing")
    keys = sorted(value)
    n = len(keys)
    lo = schema.get("minProperties")
    if lo is not None and n < lo:
        _fail(path, "must have at least " + str(lo) + " entries")
    hi = schema.get("maxProperties")
    if hi is not None and n > hi:
        _fail(path, "must have at most " + str(hi) + " entries")
    names = schema.get("propertyNames")
    extra = schema.get("additionalProperties", True)
    for key in keys:
        sub = _path(path, key)
        if names is not None:
            _validate(key, names, root, sub)
        if key in props:
            _validate(value[key], props[key], root, sub)
        elif extra is False:
            _fail(sub, "unknown field")
        elif extra is not True:
            _validate(value[key], extra, root, sub)


def _check_array(value, schema, root, path):
    n = len(value)
    lo = schema.get("minItems")
    if lo is not None and n < lo:
        _fail(path, "must have at least " + str(lo) + " items")
    hi = schema.get("maxItems")
    if hi is not None and n > hi:
        _fail(path, "must have at most " + str(hi) + " items")
    items = schema.get("items")
    if items is not None:
        for i in range(n):
            _validate(value[i], items, root, _path(path, i))
    if schema.get("uniqueItems"):
        for i in range(n):
            for j in range(i):
                if value[i] == value[j] and type(value[i]) is type(value[j]):
                    _fail(_path(path, i), "repeats item " + str(j))


def _matches(value, schema, root, path):
    try:
        _validate(value, schema, root, path)
    except ProtocolError:
        return False
    return True


def _validate(value, schema, root, path):
    if schema is True:
        return
    if schema is False:
        _fail(path, "not allowed")
    ref = schema.get("$ref")
    if ref is not None:
        _validate(value, _resolve(root, ref), root, path)
    expected = schema.get("type")
    if expected is not None:
        names = expected if isinstance(expected, list) else (expected,)
        for name in names:
            if _is_type(value, name):
                break
        else:
            _fail(path, "must be of type " + "/".join(names) + ", got " + _short(value))
    if "const" in schema and not _equal(value, schema["const"]):
        _fail(path, "must be " + _short(schema["const"]))
    options = schema.get("enum")
    if options is not None:
        for option in options:
            if _equal(value, option):
                break
        else:
            _fail(path, _short(value) + " is not one of " + ", ".join(str(o) for o in options))
    if isinstance(value, (int, float)) and not (value is True or value is False):
        _check_number(value, schema, path)
    elif isinstance(value, str):
        _check_string(value, schema, path)
    elif isinstance(value, dict):
        _check_object(value, schema, root, path)
    elif isinstance(value, list):
        _check_array(value, schema, root, path)
    for sub in schema.get("allOf", ()):
        _validate(value, sub, root, path)
    cond = schema.get("if")
    if cond is not None and _matches(value, cond, root, path):
        then = schema.get("then")
        if then is not None:
            _validate(value, then, root, path)


def _equal(a, b):
    # JSON equality: true is not 1, but 1 equals 1.0.
    if (a is True or a is False or b is True or b is False) and a is not b:
        return False
    return a == b


def validate(value, schema):
    """Raise ProtocolError naming the first offending field unless value matches schema."""
    _validate(value, schema, schema, "")
