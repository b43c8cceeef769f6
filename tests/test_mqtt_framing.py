"""protocols/mqtt_framing.py: the receive checks (tests/mp/check_mqtt_framing.py: every cut of a
stream, remaining-length edges, a fifth length byte, oversized and malformed packets) on both
interpreters, and random streams cut at random on CPython."""

from __future__ import annotations

import subprocess
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import mqtt_framing as mf
from tests.harness.micropython import run_micropython
from tests.harness.paths import ROOT

CHECKS = ROOT / "tests" / "mp" / "check_mqtt_framing.py"


def test_receive_checks_on_cpython() -> None:
    proc = subprocess.run(
        [sys.executable, str(CHECKS)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout.strip() == "OK", proc.stderr


def test_receive_checks_on_micropython() -> None:
    # the checks hold 16 KiB test packets of their own besides the receiver's copy
    assert run_micropython(CHECKS, heap="160k").stdout.strip() == "OK"


publishes = st.tuples(
    st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=40),
    st.binary(max_size=300),
    st.integers(0, 1),
    st.integers(1, 65535),
    st.booleans(),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(publishes, min_size=1, max_size=8), st.lists(st.integers(0, 3000), max_size=6))
def test_random_publishes_cut_anywhere(
    msgs: list[tuple[str, bytes, int, int, bool]], cuts: list[int]
) -> None:
    stream = b"".join(mf.send_publish(t, p, q, r, False, pid) for t, p, q, pid, r in msgs)
    points = sorted({c % (len(stream) + 1) for c in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    rx = mf.Receiver(max_packet=1 << 16)
    got = [p for c in chunks for p in rx.receive_data(c)]
    want = [(mf.PUBLISH, q << 1 | r, pid if q else 0, t, p) for t, p, q, pid, r in msgs]
    assert got == want
    assert rx.held == 0
