"""Sort a list of received MQTT messages into what the stores take, refusing bad ones.

Pure and synchronous, so it runs in the writer thread beside the database work and can be tested
without a broker. A message that fails to decode becomes a dead letter; it never stops the others.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from controller.ingest.fastmeas import decode_meas
from controller.store.base import Batch
from controller.store.ops import DeadLetter
from protocols import codec, topics
from protocols.errors import ProtocolError
from protocols.topics import Topic

log = logging.getLogger("streetpole.ingest")

# Parsed topics by their text: a node sends on the same few topics all its life, and checking
# the ids character by character took 1.6 us of the 20 us a message's decoding cost. Bounded
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


def sort_messages(messages: Iterable[tuple[str, bytes]]) -> Sorted:
    out = Sorted()
    for topic_str, payload in messages:
        try:  # as codec.parse, with the topic from the cache
            topic, down = _topic(topic_str)
            ch = topic.channel
            msg = decode_meas(payload) if ch == topics.MEAS else codec.decode(ch, payload)
            if down:
                raise ProtocolError("topic.channel", "controller-to-node channel")
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
            out.batches.append(
                Batch(topic.pole, topic.node, msg["boot"], msg["seq"], msg["readings"])
            )
        elif ch == topics.STATE:
            out.states.append((topic.pole, topic.node, msg))
        elif ch == topics.EVENT:
            out.events.append((topic.pole, topic.node, msg))
        elif ch == topics.ACK:
            out.acks.append((topic.pole, topic.node, msg))
    return out
