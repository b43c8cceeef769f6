"""registry stamp: a version the database moves on every change of what may be published

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 21:10:00

Triggers, not application code, move it, so a change by any writer (a second controller, a
command-line tool, plain SQL) is seen by every process on its next read of the stamp.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002_library_owner"
branch_labels = None
depends_on = None

TABLES = ("owners", "poles", "modules")
EVENTS = ("INSERT", "UPDATE", "DELETE")
BUMP = "UPDATE registry_stamp SET version = version + 1 WHERE id = 1"


def upgrade() -> None:
    op.create_table(
        "registry_stamp",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.execute("INSERT INTO registry_stamp (id, version) VALUES (1, 0)")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION registry_stamp_bump() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN {BUMP}; RETURN NULL; END $$"
        )
        for table in TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_stamp AFTER INSERT OR UPDATE OR DELETE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION registry_stamp_bump()"
            )
        return
    for table in TABLES:
        for event in EVENTS:
            op.execute(
                f"CREATE TRIGGER {table}_stamp_{event.lower()} AFTER {event} ON {table} "
                f"BEGIN {BUMP}; END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_stamp ON {table}")
        op.execute("DROP FUNCTION IF EXISTS registry_stamp_bump()")
    else:
        for table in TABLES:
            for event in EVENTS:
                op.execute(f"DROP TRIGGER IF EXISTS {table}_stamp_{event.lower()}")
    op.drop_table("registry_stamp")
