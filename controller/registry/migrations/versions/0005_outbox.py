"""several controllers on one registry: a transactional outbox and the controllers' broker accounts

Revision ID: 0005_outbox
Revises: 0004_package_kind
Create Date: 2026-12-04 03:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_outbox"
down_revision = "0004_package_kind"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("topic", sa.String(length=200), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("retain", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "service_accounts",
        sa.Column("username", sa.String(length=140), nullable=False),
        sa.Column("password_hash", sa.String(length=300), nullable=False),
        sa.Column("role", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("username"),
    )


def downgrade() -> None:
    op.drop_table("service_accounts")
    op.drop_table("outbox")
