"""subscription credits can be revoked: the member refused the template in WeChat's settings
(subscribe_msg_change_event) or WeChat answered a send with 43101 (the user refuses it)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 06:50:00
"""
import sqlalchemy as sa
from alembic import op

import loyalty.db

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscription_credits", schema=None) as batch_op:
        batch_op.add_column(sa.Column("revoked_at", loyalty.db.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("subscription_credits", schema=None) as batch_op:
        batch_op.drop_column("revoked_at")
