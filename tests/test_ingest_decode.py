"""controller/ingest/decode.py without a broker: the sorting of a received batch, with the
parsed-topic cache in the way (a bad topic is refused every time, the bound holds)."""

from __future__ import annotations

import pytest

from controller.ingest import decode
from controller.ingest.decode import sort_messages
from tests.ingest_helpers import meas, meas_topic

REVERT = b'{"id":"c-1","ts":1795582800,"cmd":"revert"}'


def test_good_and_bad_topics_sorted_the_same_every_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(decode, "TOPICS_MAX", 3)  # the cache is cleared several times below
    good = [(meas_topic(f"p{i % 5}"), meas(i)) for i in range(20)]
    bad = [
        ("streetpole/v1/p 1/n1/meas", meas(1)),  # a space in the pole id
        ("streetpole/v1/p1/n1/cmd", REVERT),  # a controller-to-node channel
        ("streetpole/v1/p1/n1/meas", b"{"),  # the topic is fine, the payload not
    ]
    for _ in range(2):
        s = sort_messages(good + bad)
        assert [(b.pole, b.seq) for b in s.batches] == [(f"p{i % 5}", i) for i in range(20)]
        assert [(d.topic, d.field) for d in s.dead] == [
            ("streetpole/v1/p 1/n1/meas", "topic.pole"),
            ("streetpole/v1/p1/n1/cmd", "topic.channel"),
            ("streetpole/v1/p1/n1/meas", "payload"),
        ]
        assert s.channels == {"meas": 20}
