"""The registry's stamp: a number that moves whenever owners, poles or modules change, by any
process (the database's own triggers move it; migration 0002). Caches of what those tables
decide, such as the open-data catalog, read it on every use, one primary-key read, and rebuild
when it moved: a change takes effect on the next request, not after a TTL."""

from __future__ import annotations

from sqlalchemy import select

from controller.registry.db import Registry
from controller.registry.models import RegistryStamp


def read_stamp(registry: Registry) -> int:
    with registry.engine.connect() as conn:
        version = conn.scalar(select(RegistryStamp.version).where(RegistryStamp.id == 1))
    return int(version or 0)
