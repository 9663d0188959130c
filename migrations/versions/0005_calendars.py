"""calendars: agenda feeds (hashed tokens) and staff members' imported calendars

Revision ID: 0005
Revises: 0003
Create Date: 2026-11-30 05:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "calendar_feeds",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("scope", sa.String(length=5), nullable=False),
        sa.Column("target_id", sa.String(length=36), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("language", sa.String(length=5), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("scope IN ('staff', 'desk', 'site')",
                           name=op.f("ck_calendar_feeds_scope")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_calendar_feeds_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calendar_feeds")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_calendar_feeds_token_hash")),
    )
    with op.batch_alter_table("calendar_feeds", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_calendar_feeds_user_id"), ["user_id"], unique=False)

    op.create_table(
        "imported_calendars",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("staff_id", sa.String(length=36), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("credentials", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("etag", sa.String(length=200), nullable=True),
        sa.Column("last_modified", sa.String(length=100), nullable=True),
        sa.Column("busy_count", sa.Integer(), nullable=False),
        sa.CheckConstraint("status IN ('pending', 'ok', 'error')",
                           name=op.f("ck_imported_calendars_status")),
        sa.ForeignKeyConstraint(["staff_id"], ["staff_members.id"],
                                name=op.f("fk_imported_calendars_staff_id_staff_members")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_imported_calendars")),
    )
    with op.batch_alter_table("imported_calendars", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_imported_calendars_staff_id"), ["staff_id"],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table("imported_calendars", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_imported_calendars_staff_id"))
    op.drop_table("imported_calendars")
    with op.batch_alter_table("calendar_feeds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_calendar_feeds_user_id"))
    op.drop_table("calendar_feeds")
