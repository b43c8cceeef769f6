"""Streetpole controller: ingest, storage, registry, operator and open-data APIs."""

import sys
from pathlib import Path

# The firmware's pure-logic modules (spnode.astro for sun times, and the simulator's use of the
# whole node) are shared with the controller rather than copied: put firmware/ on the path.
_FIRMWARE = str(Path(__file__).resolve().parent.parent / "firmware")
if _FIRMWARE not in sys.path:
    sys.path.append(_FIRMWARE)
