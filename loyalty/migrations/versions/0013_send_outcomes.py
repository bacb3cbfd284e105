"""send outcomes: each member's journey outcome frozen once its attribution window closed, and up to when

Empty at first: the journeys report computes everything live until the
outreach scheduler (or ``python -m loyalty journey freeze``) has run the
freeze once. Indexes for it: a journey's recent sends and its messages sent,
the orders posted since the previous freeze, and the recent redemptions.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 11:00:00
"""
import sqlalchemy as sa
from alembic import op

import loyalty.db

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "send_outcomes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("journey", sa.String(length=60), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("arm", sa.String(length=10), nullable=False),
        sa.Column("window_days", sa.Integer(), nullable=False),
        sa.Column("start_at", loyalty.db.UTCDateTime(), nullable=False),
        sa.Column("orders", sa.Integer(), nullable=False),
        sa.Column("revenue_fen", sa.BigInteger(), nullable=False),
        sa.Column("redemptions", sa.Integer(), nullable=False),
        sa.Column("coupon_cost_fen", sa.BigInteger(), nullable=False),
        sa.Column("frozen_at", loyalty.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_send_outcomes_member_id_members")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_send_outcomes")),
        sa.UniqueConstraint("journey", "member_id", "arm", "window_days", name=op.f("uq_send_outcomes_journey")),
    )
    op.create_index("ix_send_outcomes_member", "send_outcomes", ["member_id", "start_at"])
    op.create_table(
        "outcome_freezes",
        sa.Column("window_days", sa.Integer(), nullable=False),
        sa.Column("frozen_until", loyalty.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("window_days", name=op.f("pk_outcome_freezes")),
    )
    op.create_index("ix_outreach_journey_done", "outreach_sends", ["journey", "done_at"])
    op.create_index("ix_outreach_journey_status", "outreach_sends", ["journey", "status"],
                    postgresql_include=["reason", "done_at"])
    op.create_index("ix_orders_created_at", "orders", ["created_at"])
    op.create_index("ix_coupons_redeemed_at", "coupons", ["redeemed_at"])


def downgrade() -> None:
    op.drop_index("ix_coupons_redeemed_at", table_name="coupons")
    op.drop_index("ix_orders_created_at", table_name="orders")
    op.drop_index("ix_outreach_journey_status", table_name="outreach_sends")
    op.drop_index("ix_outreach_journey_done", table_name="outreach_sends")
    op.drop_table("outcome_freezes")
    op.drop_index("ix_send_outcomes_member", table_name="send_outcomes")
    op.drop_table("send_outcomes")
