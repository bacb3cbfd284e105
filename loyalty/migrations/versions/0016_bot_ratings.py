"""bot ratings: a shopper's 1-5 score after a conversation the bot handled alone, one per sender and session

Revision ID: 0016
Revises: 0014
Create Date: 2026-12-01 12:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bot_ratings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sender_key", sa.String(length=64), nullable=False),
        sa.Column("session_started_at", sa.DateTime(), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=True),
        sa.Column("rating", sa.Integer(), nullable=False),
        sa.Column("rated_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("rating BETWEEN 1 AND 5", name=op.f("ck_bot_ratings_rating_range")),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_bot_ratings_member_id_members")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bot_ratings")),
        sa.UniqueConstraint("sender_key", "session_started_at", name=op.f("uq_bot_ratings_sender_key")),
    )
    op.create_index("ix_bot_ratings_rated", "bot_ratings", ["rated_at"])
    op.create_index("ix_bot_ratings_member", "bot_ratings", ["member_id"])


def downgrade() -> None:
    op.drop_index("ix_bot_ratings_member", table_name="bot_ratings")
    op.drop_index("ix_bot_ratings_rated", table_name="bot_ratings")
    op.drop_table("bot_ratings")
