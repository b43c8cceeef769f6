"""The controller's confirmations to the nodes: which measurement batches it has stored.

mosquitto acknowledges a node's QoS 1 publish before it has written it to its persistence file,
so a broker that is killed loses what it acknowledged. A node therefore keeps each batch until
the controller names it in a ``stored`` message on the node's own topic (protocols/README.md):
after the commit of an ingest batch, one message per node that had batches in it, listing them
as ``[boot, first seq, last seq]`` ranges. A batch that could not be decoded is confirmed too
when its boot and seq can be read, since it is kept as a dead letter and sending it again would
not change the verdict; otherwise the node would keep it, and send it after every reconnect,
until its store overflowed.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from controller.ingest.decode import Sorted
from protocols import topics
from protocols.errors import ProtocolError
from protocols.schema_defs import MAX_STORED, U32

Node = tuple[str, str]

# Each node's confirmation topic, by node: building it checks the ids character by character,
# which was a third of a confirmation's cost. Bounded as decode.py's cache of parsed topics.
TOPICS_MAX = 100_000
_topics: dict[Node, str] = {}


def _topic(node: Node) -> str:
    found = _topics.get(node)
    if found is None:
        if len(_topics) >= TOPICS_MAX:
            _topics.clear()
        found = _topics[node] = str(topics.Topic(node[0], node[1], topics.STORED))
    return found


def ranges(ids: Iterable[tuple[int, int]]) -> list[list[int]]:
    """(boot, seq) pairs as sorted ``[boot, first, last]`` ranges of consecutive seqs."""
    out: list[list[int]] = []
    for boot, seq in sorted(set(ids)):
        if out and out[-1][0] == boot and out[-1][2] == seq - 1:
            out[-1][2] = seq
        else:
            out.append([boot, seq, seq])
    return out


def _dead_meas_ids(topic: str, payload: bytes) -> tuple[Node, tuple[int, int]] | None:
    """The node and (boot, seq) of a refused measurement batch, when both can be read."""
    try:
        t = topics.Topic.parse(topic)
        msg = orjson.loads(payload)
    except (ProtocolError, orjson.JSONDecodeError):
        return None
    if t.channel != topics.MEAS or not isinstance(msg, dict):
        return None
    boot, seq = msg.get("boot"), msg.get("seq")
    for v in (boot, seq):
        if type(v) is not int or not 0 <= v <= U32:
            return None
    return (t.pole, t.node), (boot, seq)  # type: ignore[return-value]


def confirmations(s: Sorted) -> list[tuple[str, bytes]]:
    """(topic, payload) of the ``stored`` messages for an ingest batch that was committed."""
    per_node: dict[Node, list[tuple[int, int]]] = {}
    for b in s.batches:
        per_node.setdefault((b.pole, b.node), []).append((b.boot, b.seq))
    for d in s.dead:
        found = _dead_meas_ids(d.topic, d.payload)
        if found is not None:
            per_node.setdefault(found[0], []).append(found[1])
    out = []
    for node, ids in per_node.items():
        topic = _topic(node)
        rs = ranges(ids)
        for i in range(0, len(rs), MAX_STORED):
            # compact JSON as protocols.outgoing.serialise writes it, at a tenth of the cost;
            # a message of integers from our own code needs no schema check
            out.append((topic, orjson.dumps({"batches": rs[i : i + MAX_STORED]})))
    return out
