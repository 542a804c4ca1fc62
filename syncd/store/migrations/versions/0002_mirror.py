"""The mirror of what Graph said: users in scope, assigned groups and the application's assignments.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mirror_users",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("properties", sa.Text(), nullable=False),
        sa.Column("hidden", sa.Boolean(create_constraint=False), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mirror_users")),
    )
    op.create_table(
        "mirror_groups",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.Text(), nullable=False),
        sa.Column("member_ids", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mirror_groups")),
    )
    op.create_table(
        "mirror_assignments",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("principal_id", sa.String(length=64), nullable=False),
        sa.Column("principal_type", sa.String(length=16), nullable=False),
        sa.Column("app_role_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mirror_assignments")),
    )


def downgrade() -> None:
    op.drop_table("mirror_assignments")
    op.drop_table("mirror_groups")
    op.drop_table("mirror_users")
