"""report rollups: the dashboard's pre-aggregated sales cells, points and coupon days; indexes for its live figures

``report_sales_cells``, ``report_points_days`` and ``report_coupon_days`` are rebuilt whole by
``loyalty.reports.rollup.refresh`` (the scheduler, or ``python -m loyalty
reports refresh``); ``report_rollups`` says when. They start empty: until the
first rebuild the dashboard computes every figure live.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 11:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "report_sales_cells",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("part", sa.String(length=10), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("tier", sa.String(length=20), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("prev_day", sa.String(length=10), nullable=True),
        sa.Column("orders", sa.Integer(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("moments", sa.Integer(), nullable=False),
        sa.Column("again30", sa.Integer(), nullable=False),
        sa.Column("again90", sa.Integer(), nullable=False),
        sa.CheckConstraint("part IN ('all', 'channel')", name=op.f("ck_report_sales_cells_known_part")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_sales_cells")),
    )
    op.create_index("ix_report_sales_cells_part_day", "report_sales_cells", ["part", "channel", "day"])
    op.create_table(
        "report_points_days",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("store_id", sa.Integer(), nullable=False),
        sa.Column("issued", sa.BigInteger(), nullable=False),
        sa.Column("spent", sa.BigInteger(), nullable=False),
        sa.Column("expired", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_points_days")),
    )
    op.create_index("ix_report_points_days_day", "report_points_days", ["day", "store_id"])
    op.create_table(
        "report_coupon_days",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("store_id", sa.Integer(), nullable=False),
        sa.Column("claimed", sa.Integer(), nullable=False),
        sa.Column("redeemed", sa.Integer(), nullable=False),
        sa.Column("revenue_fen", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_coupon_days")),
    )
    op.create_index("ix_report_coupon_days_day", "report_coupon_days", ["day", "store_id"])
    op.create_table(
        "report_rollups",
        sa.Column("name", sa.String(length=20), nullable=False),
        sa.Column("as_of", sa.DateTime(), nullable=False),
        sa.Column("took_ms", sa.Integer(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_report_rollups")),
    )
    op.create_index("ix_orders_external_id", "orders", ["external_id"])
    op.create_index("ix_coupons_claimed_at", "coupons", ["claimed_at"])
    op.create_index("ix_lots_open_expiry", "points_lots", ["expires_at"], postgresql_where=sa.text("remaining > 0"),
                    sqlite_where=sa.text("remaining > 0"))


def downgrade() -> None:
    op.drop_index("ix_lots_open_expiry", table_name="points_lots")
    op.drop_index("ix_coupons_claimed_at", table_name="coupons")
    op.drop_index("ix_orders_external_id", table_name="orders")
    op.drop_table("report_rollups")
    op.drop_index("ix_report_coupon_days_day", table_name="report_coupon_days")
    op.drop_table("report_coupon_days")
    op.drop_index("ix_report_points_days_day", table_name="report_points_days")
    op.drop_table("report_points_days")
    op.drop_index("ix_report_sales_cells_part_day", table_name="report_sales_cells")
    op.drop_table("report_sales_cells")
