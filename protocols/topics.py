"""The topic tree: ``streetpole/v1/<pole>/<node>/<channel>``.

One builder and one parser; no other module formats topic strings. Ids are restricted so they can
never act as MQTT wildcards or separators, nor break file names and broker ACLs.
"""

from protocols.errors import ProtocolError

PREFIX = "streetpole/v1"
ID_MAX_LEN = 32

# channel: (direction, qos, retained). Direction "up" is node -> controller.
MEAS = "meas"
EVENT = "event"
STATE = "state"
CONFIG = "config"
CMD = "cmd"
ACK = "ack"
PRESENCE = "presence"
STORED = "stored"

CHANNELS = {
    MEAS: ("up", 1, False),
    EVENT: ("up", 1, False),
    STATE: ("up", 1, True),
    CONFIG: ("down", 1, True),
    CMD: ("down", 1, False),
    ACK: ("up", 1, False),
    PRESENCE: ("peer", 0, False),
    STORED: ("down", 0, False),
}

_ID_FIRST = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_ID_REST = _ID_FIRST + "-_"


def check_id(value, field="id"):
    """Raise ProtocolError unless value is a valid pole or node id; return it."""
    if not isinstance(value, str):
        raise ProtocolError(field, "must be a string")
    if not value:
        raise ProtocolError(field, "must not be empty")
    if len(value) > ID_MAX_LEN:
        raise ProtocolError(field, "longer than %d characters" % ID_MAX_LEN)
    if value[0] not in _ID_FIRST:
        raise ProtocolError(field, "must start with a letter or digit")
    for ch in value:
        if ch not in _ID_REST:
            raise ProtocolError(field, "character %r not allowed (only A-Z a-z 0-9 - _)" % ch)
    return value


def is_valid_id(value):
    try:
        check_id(value)
    except ProtocolError:
        return False
    return True


class Topic:
    """A validated topic: pole id, node id and channel."""

    __slots__ = ("channel", "node", "pole")

    def __init__(self, pole, node, channel):
        self.pole = check_id(pole, "topic.pole")
        self.node = check_id(node, "topic.node")
        if channel not in CHANNELS:
            raise ProtocolError("topic.channel", "unknown channel %r" % (channel,))
        self.channel = channel

    def __str__(self):
        return PREFIX + "/" + self.pole + "/" + self.node + "/" + self.channel

    def __repr__(self):
        return "Topic(%r)" % str(self)

    def __eq__(self, other):
        return (
            isinstance(other, Topic)
            and self.pole == other.pole
            and self.node == other.node
            and self.channel == other.channel
        )

    def __hash__(self):
        return hash(str(self))

    @property
    def qos(self):
        return CHANNELS[self.channel][1]

    @property
    def retain(self):
        return CHANNELS[self.channel][2]

    @property
    def direction(self):
        return CHANNELS[self.channel][0]

    def sibling(self, channel):
        """The same node's topic on another channel."""
        return Topic(self.pole, self.node, channel)

    @classmethod
    def parse(cls, topic):
        if isinstance(topic, (bytes, bytearray, memoryview)):
            try:
                topic = bytes(topic).decode()
            except UnicodeError:
                raise ProtocolError("topic", "not UTF-8") from None
        if not isinstance(topic, str):
            raise ProtocolError("topic", "must be a string")
        parts = topic.split("/")
        if len(parts) != 5 or parts[0] + "/" + parts[1] != PREFIX:
            raise ProtocolError("topic", "not of the form " + PREFIX + "/<pole>/<node>/<channel>")
        return cls(parts[2], parts[3], parts[4])


def subscription(channel, pole="+", node="+"):
    """A topic filter for subscribing, e.g. all measurement batches: subscription(MEAS)."""
    if pole != "+":
        check_id(pole, "pole")
    if node != "+":
        check_id(node, "node")
    if channel != "#" and channel != "+" and channel not in CHANNELS:
        raise ProtocolError("channel", "unknown channel %r" % (channel,))
    return PREFIX + "/" + pole + "/" + node + "/" + channel
