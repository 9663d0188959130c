"""the themes' Dutch labels as a Flemish civil servant writes them

Revision ID: 0014
Revises: 0009
Create Date: 2026-12-07 02:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (code, label before, label after): « Werk en activering », not « Werk, inschakeling ».
LABELS_NL = [
    ("famille", "Gezin, kinderbijslag", "Gezin en kinderbijslag"),
    ("sante", "Gezondheid, ziekteverzekering", "Gezondheid en ziekteverzekering"),
    ("emploi", "Werk, inschakeling", "Werk en activering"),
    ("autonomie", "Zelfstandigheid, handicap", "Zorg en handicap"),
    ("papiers", "Identiteitspapieren, rijbewijs", "Identiteitsdocumenten en rijbewijs"),
]

themes = sa.table("themes", sa.column("code", sa.String), sa.column("label_nl", sa.String))


def _set(pairs: list[tuple[str, str]]) -> None:
    for code, label in pairs:
        op.execute(themes.update().where(themes.c.code == code).values(label_nl=label))
    if op.get_bind().dialect.name == "postgresql":
        # The search's watch on themes (0008) settles at commit; settle it now, or a
        # downgrade past 0008 in the same transaction cannot drop search_touches.
        op.execute("SET CONSTRAINTS ALL IMMEDIATE")


def upgrade() -> None:
    _set([(code, after) for code, _before, after in LABELS_NL])


def downgrade() -> None:
    _set([(code, before) for code, before, _after in LABELS_NL])
