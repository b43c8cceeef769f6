"""Soak (tests/harness/soak.py): operators at work against one controller process while a
street reports, for SOAK_S seconds (STREETPOLE_SOAK_S to change; `make bench-soak` runs the
long one and prints its figures). Every request must answer in time and never 5xx (a 503 with
Retry-After is the one allowed refusal), the fleet loop must never fail on the registry's lock,
and the controller stays ready.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.harness.soak import soak

SOAK_S = float(os.environ.get("STREETPOLE_SOAK_S", "20"))


@pytest.mark.slow
def test_an_afternoon_of_operator_work_with_a_street_reporting(tmp_path: Path) -> None:
    s = soak(tmp_path, SOAK_S)
    tally = s.tally
    print(f"soak: {tally.calls} requests, slowest {tally.slowest:.1f} s, {tally.refused} refused")
    assert not s.street_error, s.street_error
    assert tally.calls > 50, tally.calls
    assert not tally.failures, f"{len(tally.failures)} of {tally.calls}: {tally.failures[:10]}"
    assert "database is locked" not in s.log, s.log[-3000:]
    assert "fleet loop failed" not in s.log, s.log[-3000:]
    assert s.ready.status_code == 200, s.ready.text
