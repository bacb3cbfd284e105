"""members keep the language they chat in (outreach copy in it); subscription credits keep the callback
that granted them (a replayed WeChat callback grants nothing twice)

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
    with op.batch_alter_table("subscription_credits", schema=None) as batch_op:
        batch_op.add_column(sa.Column("grant_key", sa.String(length=200), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_subscription_credits_grant_key"), ["grant_key"])


def downgrade() -> None:
    with op.batch_alter_table("subscription_credits", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_subscription_credits_grant_key"), type_="unique")
        batch_op.drop_column("grant_key")
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.drop_column("language")
