"""members keep the language they chat in (outreach copy in it)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 02:50:00
"""
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("members", schema=None) as batch_op:
        # Members who joined before: Chinese, what they were sent so far.
        batch_op.add_column(sa.Column("language", sa.String(length=5), server_default="zh", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.drop_column("language")
