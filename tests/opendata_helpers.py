"""A small demo street (open, restricted, closed and personal modules) behind a running API."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from controller.opendata.demo import populate
from controller.registry.db import Registry
from controller.store.base import StreamKey
from controller.store.sqlite import SqliteStore
from tests.harness.api import Api, running_api

QUIET = {"ingest_enabled": False, "dispatch_enabled": False, "opendata_rate_limit": False}


def make_street(
    data_dir: Path, poles: int = 12, days: float = 1, period_s: int = 300
) -> dict[str, Any]:
    data_dir.mkdir(parents=True, exist_ok=True)
    reg = Registry(f"sqlite:///{data_dir / 'registry.db'}")
    store = SqliteStore(data_dir / "streetpole.db")
    try:
        made = populate(reg, store, poles=poles, days=days, period_s=period_s)
        made["index"] = store.stream_index()
    finally:
        store.close()
        reg.close()
    return made


def hidden_ids(index: dict[StreamKey, Any]) -> dict[int, StreamKey]:
    """Stream ids that must never be public: restricted (no2), closed (cam), personal (wifi)."""
    return {info.id: k for k, info in index.items() if k.src in ("no2", "cam", "wifi")}


@contextmanager
def street_api(data_dir: Path, **settings: Any) -> Iterator[Api]:
    with running_api(data_dir, **{**QUIET, **settings}) as api:
        yield api
