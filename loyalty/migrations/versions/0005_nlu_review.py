"""review list of messages the assistant did not understand well (masked)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 23:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "review_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("text_key", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("language", sa.String(length=5), nullable=True),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("conversation", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("intent", sa.String(length=64), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("second_intent", sa.String(length=64), nullable=True),
        sa.Column("second_confidence", sa.Float(), nullable=True),
        sa.Column("seen", sa.Integer(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("reviewed_intent", sa.String(length=64), nullable=True),
        sa.Column("reviewed_by", sa.String(length=64), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(), nullable=True),
        sa.Column("exported_at", sa.DateTime(), nullable=True),
        sa.CheckConstraint("reason IN ('fallback', 'gated', 'low_confidence')",
                           name=op.f("ck_review_messages_known_reason")),
        sa.CheckConstraint("status IN ('new', 'reviewed', 'dismissed', 'exported')",
                           name=op.f("ck_review_messages_known_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_messages")),
        sa.UniqueConstraint("text_key", name=op.f("uq_review_messages_text_key")),
    )
    op.create_index("ix_review_messages_status_last_seen", "review_messages", ["status", "last_seen_at"])


def downgrade() -> None:
    op.drop_index("ix_review_messages_status_last_seen", table_name="review_messages")
    op.drop_table("review_messages")
