"""the host's tools: chat rules and a pinned message per session, a ban list per host,
product photos stored with the catalog

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _created() -> sa.Column[object]:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    )


def upgrade() -> None:
    op.add_column(
        "sessions",
        sa.Column("slow_mode_s", sa.Integer(), nullable=False, server_default=sa.text("0")),
    )
    op.add_column(
        "sessions",
        sa.Column("blocked_words", JSONB(), nullable=False, server_default=sa.text("'[]'")),
    )
    op.add_column("sessions", sa.Column("pinned_message", sa.String(200)))
    op.add_column("sessions", sa.Column("pinned_message_at", sa.DateTime(timezone=True)))
    op.create_check_constraint(
        op.f("ck_sessions_slow_mode_range"), "sessions", "slow_mode_s BETWEEN 0 AND 3600"
    )
    op.create_table(
        "chat_bans",
        sa.Column("host_id", sa.String(40), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("user_id", sa.String(40), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("display_name", sa.String(80), nullable=False),
        sa.Column("session_id", sa.String(40), sa.ForeignKey("sessions.id")),
        sa.Column("reason", sa.String(200)),
        _created(),
        sa.PrimaryKeyConstraint("host_id", "user_id", name=op.f("pk_chat_bans")),
    )
    op.create_table(
        "product_images",
        sa.Column("product_id", sa.String(40), sa.ForeignKey("products.id"), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("content_type", sa.String(40), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        _created(),
        sa.PrimaryKeyConstraint("product_id", name=op.f("pk_product_images")),
    )


def downgrade() -> None:
    op.drop_table("product_images")
    op.drop_table("chat_bans")
    op.drop_constraint(op.f("ck_sessions_slow_mode_range"), "sessions", type_="check")
    for column in ("pinned_message_at", "pinned_message", "blocked_words", "slow_mode_s"):
        op.drop_column("sessions", column)
