"""segment moves: each change of a member's lifecycle stage or RFM segment by a segment run (append-only)

Members scored before this migration get their current stage and segment as a
first assignment (from NULL) at the time of that last run, so the history
adds up to today's segment sizes.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 07:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "segment_moves",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("dimension", sa.String(length=10), nullable=False),
        sa.Column("from_value", sa.String(length=30), nullable=True),
        sa.Column("to_value", sa.String(length=30), nullable=False),
        sa.Column("run_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("dimension IN ('lifecycle', 'rfm')", name=op.f("ck_segment_moves_known_dimension")),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_segment_moves_member_id_members")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segment_moves")),
        sa.UniqueConstraint("member_id", "dimension", "run_at", name=op.f("uq_segment_moves_member_id")),
    )
    op.create_index("ix_segment_moves_run_at", "segment_moves", ["run_at"])
    op.execute("INSERT INTO segment_moves (member_id, dimension, from_value, to_value, run_at) "
               "SELECT member_id, 'lifecycle', NULL, lifecycle, as_of FROM member_segments")
    op.execute("INSERT INTO segment_moves (member_id, dimension, from_value, to_value, run_at) "
               "SELECT member_id, 'rfm', NULL, segment, as_of FROM member_segments")


def downgrade() -> None:
    op.drop_index("ix_segment_moves_run_at", table_name="segment_moves")
    op.drop_table("segment_moves")
