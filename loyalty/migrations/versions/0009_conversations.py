"""conversation facts from the bot's event broker (turns, fallbacks, handoffs) for the staff dashboard

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 03:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "conversations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sender_key", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("last_at", sa.DateTime(), nullable=False),
        sa.Column("user_turns", sa.Integer(), nullable=False),
        sa.Column("fallback_turns", sa.Integer(), nullable=False),
        sa.Column("handed_off", sa.Boolean(), nullable=False),
        sa.Column("with_agent", sa.Boolean(), nullable=False),
        sa.Column("agent_turns", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_conversations_member_id_members")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversations")),
    )
    op.create_index("ix_conversations_sender_last", "conversations", ["sender_key", "last_at"])
    op.create_index("ix_conversations_started", "conversations", ["started_at"])


def downgrade() -> None:
    op.drop_index("ix_conversations_started", table_name="conversations")
    op.drop_index("ix_conversations_sender_last", table_name="conversations")
    op.drop_table("conversations")
