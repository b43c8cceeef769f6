"""Sort a list of received MQTT messages into what the stores take, refusing bad ones.

Pure and synchronous, so it runs in the writer thread beside the database work and can be tested
without a broker. A message that fails to decode becomes a dead letter; it never stops the others.
"""

from __future__ import annotations

import logging
from collections.abc import Container, Iterable
from dataclasses import dataclass, field
from typing import Any

from controller.ingest.fastmeas import decode_meas
from controller.ingest.modules import ModuleIndex
from controller.store.base import Batch
from controller.store.ops import DeadLetter
from protocols import codec, topics
from protocols.errors import ProtocolError
from protocols.topics import Topic

log = logging.getLogger("streetpole.ingest")

# Parsed topics by their text: a node sends on the same few topics all its life, and checking
# the ids character by character was a large part of decoding (docs/performance.md). Bounded
# (cleared when full: a street of more nodes than this parses again, as before).
TOPICS_MAX = 100_000
_topics: dict[str, tuple[Topic, bool]] = {}


def _topic(text: str) -> tuple[Topic, bool]:
    """The parsed topic and whether it is a controller-to-node channel; ProtocolError if bad
    (never cached)."""
    found = _topics.get(text)
    if found is None:
        t = Topic.parse(text)
        if len(_topics) >= TOPICS_MAX:
            _topics.clear()
        found = _topics[text] = (t, t.direction == "down")
    return found


@dataclass
class Sorted:
    batches: list[Batch] = field(default_factory=list)
    states: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    events: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    acks: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    channels: dict[str, int] = field(default_factory=dict)
    # (pole, node, seconds ahead) of each message refused for a time ahead of the controller's
    clock_ahead: list[tuple[str, str, int]] = field(default_factory=list)


def _stamp(ch: str, msg: dict[str, Any]) -> tuple[int, str] | None:
    """The latest time a batch or event carries, and the field that holds it."""
    if ch == topics.MEAS:
        readings = msg["readings"]
        i = max(range(len(readings)), key=lambda j: readings[j]["ts"])
        return readings[i]["ts"], f"readings[{i}].ts"
    if ch == topics.EVENT:
        return msg["ts"], "ts"
    return None


def sort_messages(
    messages: Iterable[tuple[str, bytes]],
    *,
    retained: Container[int] = (),
    now: float | None = None,
    max_ahead_s: float | None = None,
    modules: ModuleIndex | None = None,
) -> Sorted:
    """Decode ``messages`` (topic, payload) into what the stores take; the rest become dead
    letters. ``retained``: positions of messages that came with the retain flag (the broker
    replays those on every subscribe: taken only on channels the protocol retains). With
    ``now`` and ``max_ahead_s``, batches and events stamped later than that are refused; with
    ``modules``, readings no module of their node measures."""
    out = Sorted()
    limit = float("inf") if now is None or max_ahead_s is None else now + max_ahead_s
    for i, (topic_str, payload) in enumerate(messages):
        try:  # as codec.parse, with the topic from the cache
            topic, down = _topic(topic_str)
            ch = topic.channel
            msg = decode_meas(payload) if ch == topics.MEAS else codec.decode(ch, payload)
            if down:
                raise ProtocolError("topic.channel", "controller-to-node channel")
            if i in retained and not topic.retain:
                raise ProtocolError(
                    "retain", f"a retained message on {ch}, which is never retained: ignored"
                )
            stamp = _stamp(ch, msg)
            if stamp is not None and stamp[0] > limit:
                # a node whose clock runs ahead would hold the "latest" of its streams until then
                ahead = int(stamp[0] - (now or 0.0))
                out.clock_ahead.append((topic.pole, topic.node, ahead))
                raise ProtocolError(
                    stamp[1],
                    f"clock ahead: {ahead} s after the controller's time (limit {max_ahead_s} s)",
                )
        except ProtocolError as e:
            out.dead.append(DeadLetter(topic_str, e.field, e.reason, bytes(payload)))
            continue
        except Exception as e:  # a decoder bug must cost one message, never the stream
            log.warning("undecodable message on %s: %r", topic_str, e)
            reason = f"could not be decoded ({type(e).__name__})"
            out.dead.append(DeadLetter(topic_str, "payload", reason, bytes(payload)))
            continue
        out.channels[ch] = out.channels.get(ch, 0) + 1
        if ch == topics.MEAS:
            readings = msg["readings"]
            if modules is not None:
                refused = modules.refused(topic.pole, topic.node, readings)
                if refused:
                    j, why = refused[0]
                    r = readings[j]
                    reason = (
                        f"{len(refused)} of {len(readings)} readings refused, the first "
                        f"({r['q']}): {why}"
                    )
                    out.dead.append(
                        DeadLetter(topic_str, f"readings[{j}].src", reason, bytes(payload))
                    )
                    drop = {k for k, _ in refused}
                    readings = [r for k, r in enumerate(readings) if k not in drop]
                    if not readings:
                        continue
            out.batches.append(Batch(topic.pole, topic.node, msg["boot"], msg["seq"], readings))
        elif ch == topics.STATE:
            out.states.append((topic.pole, topic.node, msg))
        elif ch == topics.EVENT:
            out.events.append((topic.pole, topic.node, msg))
        elif ch == topics.ACK:
            out.acks.append((topic.pole, topic.node, msg))
    return out
