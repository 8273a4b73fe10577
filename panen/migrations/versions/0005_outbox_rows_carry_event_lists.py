"""outbox rows carry a list of (topic, event): one row per change, not one per event

A settlement batch of 200 orders reports some 600 events; as one row each they were
inserted, read back and marked sent one by one, a quarter of settlement's cost.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("events", postgresql.JSONB(), nullable=True))
    op.execute("UPDATE outbox SET events = jsonb_build_array(jsonb_build_array(topic, event))")
    op.alter_column("outbox", "events", nullable=False)
    op.drop_column("outbox", "topic")
    op.drop_column("outbox", "event")


def downgrade() -> None:
    op.add_column("outbox", sa.Column("topic", sa.String(length=120), nullable=True))
    op.add_column("outbox", sa.Column("event", postgresql.JSONB(), nullable=True))
    op.execute(
        "INSERT INTO outbox (topic, event, events, created_at, sent_at)"
        " SELECT e->>0, e->1, '[]', o.created_at, o.sent_at"
        " FROM outbox o, jsonb_array_elements(o.events) WITH ORDINALITY AS x(e, n)"
        " WHERE o.topic IS NULL ORDER BY o.id, x.n"
    )
    op.execute("DELETE FROM outbox WHERE topic IS NULL")
    op.alter_column("outbox", "topic", nullable=False)
    op.alter_column("outbox", "event", nullable=False)
    op.drop_column("outbox", "events")
