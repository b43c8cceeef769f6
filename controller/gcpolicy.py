"""The controller process's garbage-collector policy, for `streetpole serve` and the ingest
children: what exists at start (FastAPI, SQLAlchemy, pydantic, the app) is moved out of the cyclic
GC's view, and the youngest generation is collected less often.

Why: ingest batches and open-data answers each allocate tens of thousands of short-lived
containers (decoded messages and rows; the entries of the latest of 4,200 Datastreams), which
trigger full collections; each walked all the long-lived objects again, a pause of about 100 ms.
Frozen objects are still freed by reference counting; only cycles among them are not. A batch's
decoded messages all live until it is written, so each young collection walked the thousands
allocated since the last one only to keep them. Ingest and the API make no cycles; what else does
is still collected, a little later. (Figures: docs/performance.md.)
"""

from __future__ import annotations

import gc

_frozen = False
GC_YOUNG = 50_000  # allocations between collections of the youngest generation (CPython: 700)


def freeze_startup_objects() -> None:
    """Once per process, from its entry point (never from a library: in a test run it would
    freeze the test session's objects and change every later test's collections)."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.freeze()
        gc.set_threshold(GC_YOUNG, *gc.get_threshold()[1:])
