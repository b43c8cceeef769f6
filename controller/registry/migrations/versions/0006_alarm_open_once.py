"""one open alarm per condition, enforced: two controllers raising the same alarm at once
could each open one (fleet.raise_alarm looks, then inserts)

Revision ID: 0006_alarm_open_once
Revises: 0005_outbox
Create Date: 2026-12-04 08:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_alarm_open_once"
down_revision = "0005_outbox"
branch_labels = None
depends_on = None

SAME = (
    "a.pole_id = alarms.pole_id AND coalesce(a.node, '') = coalesce(alarms.node, '')"
    " AND a.code = alarms.code AND a.src = alarms.src AND a.state <> 'cleared'"
)


def upgrade() -> None:
    # doubles opened before: the oldest stays open, the others are cleared with a reason
    op.execute(
        "UPDATE alarms SET state = 'cleared', cleared_by = 'duplicate (migration 0006)',"
        " cleared_at = updated_at"
        f" WHERE state <> 'cleared' AND id > (SELECT min(a.id) FROM alarms a WHERE {SAME})"
    )
    op.create_index(
        "alarms_open_once",
        "alarms",
        ["pole_id", sa.text("coalesce(node, '')"), "code", "src"],
        unique=True,
        sqlite_where=sa.text("state <> 'cleared'"),
        postgresql_where=sa.text("state <> 'cleared'"),
    )


def downgrade() -> None:
    op.drop_index("alarms_open_once", table_name="alarms")
