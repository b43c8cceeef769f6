"""Alembic environment: the URL comes from the config built by ``controller.registry.db``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from controller.registry import locks, models  # noqa: F401  (models registers the tables)
from controller.registry.db import Base, make_engine

config = context.config
url = config.get_main_option("sqlalchemy.url") or "sqlite:///var/registry.db"


def run() -> None:
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=Base.metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(url)
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=Base.metadata, render_as_batch=True)
        with context.begin_transaction():
            if conn.dialect.name == "postgresql":
                # several controllers may start at once on one registry: one migrates, the
                # others wait here and then find the schema at head (the lock ends with the
                # transaction, and PostgreSQL's DDL is transactional)
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": locks.MIGRATION})
            context.run_migrations()
    engine.dispose()


run()
