"""journey copies: staff's zh/en copy of a journey step in place of the copy in code

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01 11:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "journey_copies",
        sa.Column("journey", sa.String(length=60), nullable=False),
        sa.Column("step", sa.String(length=20), nullable=False),
        sa.Column("text_zh", sa.Text(), nullable=False),
        sa.Column("text_en", sa.Text(), nullable=False),
        sa.Column("changed_at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("journey", "step", name=op.f("pk_journey_copies")),
    )


def downgrade() -> None:
    op.drop_table("journey_copies")
