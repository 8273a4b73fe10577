"""outbox rows record the id of the transaction that wrote them

A room rebuilt from the database after nobody watched it must not count twice an event
its read already includes, nor miss one its read did not: the events now carry their
transaction's id, which the rebuild checks against its read's snapshot.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("xid", sa.BigInteger(), nullable=True))
    # Rows written before: committed long ago, so every snapshot from now on includes them.
    op.execute("UPDATE outbox SET xid = 0")
    op.alter_column("outbox", "xid", nullable=False)


def downgrade() -> None:
    op.drop_column("outbox", "xid")
