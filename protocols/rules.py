"""What a schema cannot say about a received message: names that must refer to each other, and
ranges between fields. Applied after the schema check, by the codec (controller) and by
``protocols.incoming`` (node); the node's own messages have theirs in ``protocols.outgoing``."""

from protocols.errors import ProtocolError


def check_config(msg):
    dimming = msg["dimming"]
    programs = dimming["programs"]
    if dimming["default_program"] not in programs:
        raise ProtocolError("dimming.default_program", "names no program in dimming.programs")
    rules = dimming.get("calendar", ())
    for i in range(len(rules)):
        rule = rules[i]
        if rule["program"] not in programs:
            raise ProtocolError(
                "dimming.calendar[%d].program" % i, "names no program in dimming.programs"
            )
        if ("from" in rule) != ("to" in rule):
            raise ProtocolError("dimming.calendar[%d]" % i, "from and to go together")
    lo = dimming.get("min_level", 0.0)
    hi = dimming.get("max_level", 1.0)
    if lo > hi:
        raise ProtocolError("dimming.min_level", "must not exceed dimming.max_level")


def check_cmd(msg):
    if "start" in msg and "expiry" in msg and msg["expiry"] <= msg["start"]:
        raise ProtocolError("expiry", "must be after start")


RULES = {"config": check_config, "cmd": check_cmd}
