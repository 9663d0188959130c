"""a staff account may exist before it is linked to a staff member

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 17:20:00.000000

ProConnect provisioning gives an operator's domain a staff account with no desk, until
an administrator links it to a staff member. Expand only: a check constraint is dropped;
the previous release writes users as before (always with a staff member for staff).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_users_staff_has_desk"), type_="check")


def downgrade() -> None:
    op.execute("DELETE FROM api_tokens WHERE user_id IN "
               "(SELECT id FROM users WHERE role = 'staff' AND staff_id IS NULL)")
    op.execute("UPDATE users SET active = false, role = 'agent' "
               "WHERE role = 'staff' AND staff_id IS NULL")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_check_constraint(batch_op.f("ck_users_staff_has_desk"),
                                         "role <> 'staff' OR staff_id IS NOT NULL")
