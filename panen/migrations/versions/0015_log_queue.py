"""the transparency log's queue: money transactions queue their entries, a sequencer gives
them indexes in batches; a fund's entry index is read from its entry; outbox rows held
until the entry their events name has its index

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tlog_queue",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("ref", sa.String(length=120), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("data", JSONB(), nullable=False),
        sa.Column("names", JSONB(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tlog_queue")),
        sa.UniqueConstraint("ref", name=op.f("uq_tlog_queue_ref")),
    )
    op.add_column("outbox", sa.Column("entry_of", sa.String(length=120), nullable=True))
    op.create_index(
        "ix_outbox_held",
        "outbox",
        ["entry_of"],
        unique=False,
        postgresql_where=sa.text("entry_of IS NOT NULL"),
    )
    # A fund's index is known only once its entry is sequenced, after the fund commits:
    # it is read from tlog_entries (same ref) instead of being copied here. The column
    # stays, nullable, for one release: the previous release's processes still write it
    # during a rolling deploy (panen/migrations/env.py, RETIRING).
    op.alter_column("charity_funds", "entry_index", existing_type=sa.BigInteger(), nullable=True)


def downgrade() -> None:
    # Entries still queued would be money without its entry: sequence them first (let the
    # processes of this release run their passes, or the worker its sweep), then go back.
    op.execute(
        "DO $$ BEGIN IF EXISTS (SELECT 1 FROM tlog_queue) THEN RAISE EXCEPTION"
        " 'log entries are still queued; let the sequencer integrate them first'; END IF; END $$"
    )
    op.execute(
        "UPDATE charity_funds f SET entry_index = e.idx FROM tlog_entries e"
        " WHERE e.ref = f.ref AND f.entry_index IS NULL"
    )
    op.alter_column("charity_funds", "entry_index", existing_type=sa.BigInteger(), nullable=False)
    op.drop_index("ix_outbox_held", table_name="outbox")
    op.drop_column("outbox", "entry_of")
    op.drop_table("tlog_queue")
