"""`make bench-soak`: the soak (tests/harness/soak.py) at full length, 120 s by default: four
operators at once against one controller process while a street of 20 poles reports.

Last line: soak_requests=<n> requests_per_s=<n> slowest_s=<n> refused=<n> failures=<n> ready=<0|1>
(failures: 5xx other than 503 with Retry-After, no answer, or an answer after 10 s; the exit
status is 1 when there are any, when the fleet loop failed or the controller is not ready).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from tests.harness.soak import soak


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=120.0, help="how long the operators work")
    ap.add_argument("--workers", type=int, default=4, help="operators at once")
    ap.add_argument("--poles", type=int, default=20, help="poles in the street")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="streetpole-soak-") as tmp:
        s = soak(Path(tmp), args.seconds, args.workers, args.poles)
    t = s.tally
    for f in t.failures[:10]:
        print(f"  failure: {f}")
    broken = [
        why
        for why, bad in (
            ("the street failed", bool(s.street_error)),
            ("database is locked", "database is locked" in s.log),
            ("fleet loop failed", "fleet loop failed" in s.log),
        )
        if bad
    ]
    for why in broken:
        print(f"  {why}")
    ready = int(s.ready.status_code == 200)
    print(
        f"soak_requests={t.calls} requests_per_s={t.calls / s.seconds:.1f} "
        f"slowest_s={t.slowest:.2f} refused={t.refused} failures={len(t.failures)} ready={ready}"
    )
    return 1 if t.failures or broken or not ready else 0


if __name__ == "__main__":
    sys.exit(main())
