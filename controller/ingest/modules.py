"""Which (src, quantity) each node may report: its modules in the registry, kept in memory for
ingest (issue #18, labels a node cannot forge).

A reading is a module's when the node has a module with the reading's ``src`` that measures its
quantity, or none with that src but one without a src that measures it
(controller/registry/measures.py ``owners_of``); anything else is refused before it is stored,
so a node cannot file noise under its open air module's name.

Ingest checks every reading, tens of thousands a second, so the registry is not asked per
reading: all modules are read at once every ``ingest_modules_refresh_s`` (ingest children are
other processes, which an API change could not tell), and a node with a reading that matches
nothing is read again at once (at most every MISS_RECHECK_S), so a module just registered
counts from its first reading. Used from the ingest thread only.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import select

from controller.registry.db import Registry
from controller.registry.measures import owners_of, quantities
from controller.registry.models import Module

log = logging.getLogger("streetpole.ingest")

Allowed = list[tuple[str, frozenset[str], None]]  # (src or "", quantities, -) of each module


class _Node:
    """One node's modules, and the (src, quantity) pairs already found to belong to one of
    them: a set lookup per reading on the hot path instead of the resolution."""

    def __init__(self, modules: Allowed) -> None:
        self.modules = modules
        self.taken: set[tuple[str, str]] = set()


class ModuleIndex:
    MISS_RECHECK_S = 2.0
    RETRY_S = 5.0  # a failed refresh is tried again this much later
    RECHECKS_MAX = 100_000  # bound on remembered re-reads (node ids seen in refused readings)

    def __init__(self, registry: Registry, refresh_s: float) -> None:
        self.registry = registry
        self.refresh_s = refresh_s
        self._nodes: dict[tuple[str, str], _Node] = {}
        self._loaded = -float("inf")
        self._rechecked: dict[tuple[str, str], float] = {}
        self.loads = 0  # full reads of the module table (tests, stats)

    def _read(self, pole: str | None = None, node: str | None = None) -> dict[Any, _Node]:
        q = select(Module.pole_id, Module.node, Module.src, Module.type, Module.attributes).where(
            Module.node.is_not(None)
        )
        if pole is not None:
            q = q.where(Module.pole_id == pole, Module.node == node)
        out: dict[Any, _Node] = {}
        with self.registry.session() as db:
            for pole_id, node_id, src, mtype, attributes in db.execute(q):
                entry = out.get((pole_id, node_id))
                if entry is None:
                    entry = out[(pole_id, node_id)] = _Node([])
                entry.modules.append((src or "", quantities(mtype, attributes), None))
        return out

    def refresh(self) -> None:
        """Read every module again if the copy is older than the refresh period. If the
        registry cannot be read, an older copy goes on serving (tried again after
        RETRY_S); without one this raises, so the batch is not acknowledged and comes again
        (refusing every reading while the registry is away would lose them)."""
        now = time.monotonic()
        if now - self._loaded >= self.refresh_s:
            try:
                self._nodes = self._read()
            except Exception:
                if self.loads == 0:
                    raise
                log.warning("cannot read the modules: the copy of before serves", exc_info=True)
                self._loaded = now - self.refresh_s + self.RETRY_S
                return
            self._loaded = now
            self._rechecked.clear()
            self.loads += 1

    def refused(
        self, pole: str, node: str, readings: list[dict[str, Any]]
    ) -> list[tuple[int, str]]:
        """(index, reason) of each reading no module of the node measures."""
        key = (pole, node)
        entry = self._nodes.get(key)
        if entry is not None:
            taken = entry.taken
            if all((r.get("src", ""), r["q"]) in taken for r in readings):
                return []
        bad = _check(entry, readings)
        if bad:
            now = time.monotonic()
            if now - self._rechecked.get(key, -float("inf")) >= self.MISS_RECHECK_S:
                if len(self._rechecked) >= self.RECHECKS_MAX:
                    self._rechecked.clear()
                self._rechecked[key] = now
                try:
                    entry = self._read(pole, node).get(key)
                except Exception:  # the copy decides (as above)
                    log.warning("cannot read the modules of %s/%s", pole, node, exc_info=True)
                    return bad
                if entry is None:
                    self._nodes.pop(key, None)
                else:
                    self._nodes[key] = entry
                bad = _check(entry, readings)
        return bad


def _check(entry: _Node | None, readings: list[dict[str, Any]]) -> list[tuple[int, str]]:
    if entry is None:
        return [(i, "the node has no module in the registry") for i in range(len(readings))]
    allowed = entry.modules
    bad = []
    for i, r in enumerate(readings):
        src, q = r.get("src", ""), r["q"]
        if owners_of(allowed, src, q):
            entry.taken.add((src, q))  # bounded: the node's modules' quantities
        elif any(s == src for s, _, _ in allowed if s):
            bad.append((i, f"the module with src {src!r} does not measure {q}"))
        else:
            why = f"no module of the node has src {src!r}, none without a src measures {q}"
            bad.append((i, why))
    return bad
