"""audit trail hash-chained (seq, prev_hash, hash, request id, target), its chain head;
retention: when an appointment's usager details were erased, and the purges' indexes

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 05:45:00.000000
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from visio.domain.audit_chain import GENESIS, Link, digest

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 5000


def _aware(value: datetime | str) -> datetime:
    if isinstance(value, str):  # SQLite hands back text
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def upgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("request_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("target_kind", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("target_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("site_id", sa.String(length=36), nullable=True))
        batch_op.create_unique_constraint("uq_audit_log_seq", ["seq"])
        batch_op.create_index("ix_audit_log_target_id", ["target_id"])
        batch_op.create_index("ix_audit_log_actor_id", ["actor_id"])
    op.create_table(
        "audit_chain",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_chain")),
    )
    # The entries written so far are chained in the order they happened.
    log = sa.table("audit_log", sa.column("id", sa.String), sa.column("at", sa.DateTime),
                   sa.column("actor_id", sa.String), sa.column("actor_kind", sa.String),
                   sa.column("action", sa.String), sa.column("appointment_id", sa.String),
                   sa.column("detail", sa.JSON), sa.column("seq", sa.BigInteger),
                   sa.column("prev_hash", sa.String), sa.column("hash", sa.String))
    seq, head = 0, GENESIS
    while True:
        rows = bind.execute(
            sa.select(log.c.id, log.c.at, log.c.actor_id, log.c.actor_kind, log.c.action,
                      log.c.appointment_id, log.c.detail)
            .where(log.c.seq.is_(None)).order_by(log.c.at, log.c.id).limit(_BATCH)).all()
        if not rows:
            break
        values = []
        for row in rows:
            seq += 1
            link = Link(id=row.id, at=_aware(row.at), actor_id=row.actor_id,
                        actor_kind=row.actor_kind, action=row.action,
                        appointment_id=row.appointment_id, target_kind=None, target_id=None,
                        site_id=None, request_id=None, detail=row.detail or {},
                        prev_hash=head)
            head = digest(link)
            values.append({"row_id": row.id, "s": seq, "p": link.prev_hash, "h": head})
        bind.execute(sa.update(log).where(log.c.id == sa.bindparam("row_id"))
                     .values(seq=sa.bindparam("s"), prev_hash=sa.bindparam("p"),
                             hash=sa.bindparam("h")), values)
    op.execute(sa.text("INSERT INTO audit_chain (id, seq, hash) VALUES (1, :seq, :hash)")
               .bindparams(seq=seq, hash=head))

    with op.batch_alter_table("appointments", schema=None) as batch_op:
        # When the usager's name, phone, e-mail and the note were erased (None: kept).
        batch_op.add_column(sa.Column("usager_erased_at", sa.DateTime(timezone=True),
                                      nullable=True))
    # The purge walks the appointments still holding details, oldest end first.
    op.create_index("ix_appointments_unerased_end", "appointments", ["end"],
                    postgresql_where=sa.text("usager_erased_at IS NULL"),
                    sqlite_where=sa.text("usager_erased_at IS NULL"))
    op.create_index("ix_call_events_at", "call_events", ["at"])
    op.create_index("ix_outbox_finished_at", "outbox", ["finished_at"])


def downgrade() -> None:
    op.drop_index("ix_outbox_finished_at", table_name="outbox")
    op.drop_index("ix_call_events_at", table_name="call_events")
    op.drop_index("ix_appointments_unerased_end", table_name="appointments")
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.drop_column("usager_erased_at")
    op.drop_table("audit_chain")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_actor_id")
        batch_op.drop_index("ix_audit_log_target_id")
        batch_op.drop_constraint("uq_audit_log_seq", type_="unique")
        for column in ("site_id", "target_id", "target_kind", "request_id", "hash",
                       "prev_hash", "seq"):
            batch_op.drop_column(column)
