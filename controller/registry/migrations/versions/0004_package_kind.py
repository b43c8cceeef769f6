"""firmware packages say their kind: a whole image for A/B app slots, or an .mpy tree archive

Revision ID: 0004_package_kind
Revises: 0003
Create Date: 2026-12-03 23:55:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_package_kind"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("firmware_packages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=8), nullable=False, server_default="tree")
        )


def downgrade() -> None:
    with op.batch_alter_table("firmware_packages", schema=None) as batch_op:
        batch_op.drop_column("kind")
