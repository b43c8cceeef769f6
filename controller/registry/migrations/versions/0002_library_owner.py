"""profiles and programs get an owner (None: the municipality's shared library)

Revision ID: 0002_library_owner
Revises: 0001
Create Date: 2026-12-03 20:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_library_owner"
down_revision = "0001"
branch_labels = None
depends_on = None

TABLES = ("programs", "dimming_profiles")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("owner_id", sa.Integer(), nullable=True))
            batch_op.create_foreign_key(
                f"fk_{table}_owner_id_owners", "owners", ["owner_id"], ["id"], ondelete="RESTRICT"
            )


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(f"fk_{table}_owner_id_owners", type_="foreignkey")
            batch_op.drop_column("owner_id")
