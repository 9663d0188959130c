"""territories: sites' and stops' INSEE codes, the départements and communes desks serve

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 05:15:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "desk_communes",
        sa.Column("desk_id", sa.String(length=36), nullable=False),
        sa.Column("commune_insee", sa.String(length=5), nullable=False),
        sa.Column("departement", sa.String(length=3), nullable=False),
        sa.ForeignKeyConstraint(["desk_id"], ["desks.id"],
                                name=op.f("fk_desk_communes_desk_id_desks")),
        sa.PrimaryKeyConstraint("desk_id", "commune_insee", name=op.f("pk_desk_communes")),
    )
    op.create_table(
        "desk_departements",
        sa.Column("desk_id", sa.String(length=36), nullable=False),
        sa.Column("departement", sa.String(length=3), nullable=False),
        sa.ForeignKeyConstraint(["desk_id"], ["desks.id"],
                                name=op.f("fk_desk_departements_desk_id_desks")),
        sa.PrimaryKeyConstraint("desk_id", "departement", name=op.f("pk_desk_departements")),
    )
    with op.batch_alter_table("desk_departements", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_desk_departements_departement"), ["departement"],
                              unique=False)

    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.add_column(sa.Column("departement", sa.String(length=3), nullable=True))
        batch_op.add_column(sa.Column("commune_insee", sa.String(length=5), nullable=True))
        batch_op.create_index(batch_op.f("ix_sites_departement"), ["departement"], unique=False)

    with op.batch_alter_table("tour_stops", schema=None) as batch_op:
        batch_op.add_column(sa.Column("commune_insee", sa.String(length=5), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tour_stops", schema=None) as batch_op:
        batch_op.drop_column("commune_insee")

    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sites_departement"))
        batch_op.drop_column("commune_insee")
        batch_op.drop_column("departement")

    with op.batch_alter_table("desk_departements", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_desk_departements_departement"))

    op.drop_table("desk_departements")
    op.drop_table("desk_communes")
