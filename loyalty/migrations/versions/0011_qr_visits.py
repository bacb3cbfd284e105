"""QR visits: scans, follows and web chat page opens through a store's code or link, for the QR funnel

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 06:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "qr_visits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("store_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("visitor_key", sa.String(length=64), nullable=False),
        sa.Column("visit_key", sa.String(length=64), nullable=False),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("kind IN ('scan', 'follow', 'page_open')", name=op.f("ck_qr_visits_kind")),
        sa.ForeignKeyConstraint(["store_id"], ["stores.id"], name=op.f("fk_qr_visits_store_id_stores")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_qr_visits")),
        sa.UniqueConstraint("visit_key", name=op.f("uq_qr_visits_visit_key")),
    )
    op.create_index("ix_qr_visits_occurred", "qr_visits", ["occurred_at"])
    op.create_index("ix_qr_visits_store_occurred", "qr_visits", ["store_id", "occurred_at"])
    op.create_index("ix_qr_visits_visitor", "qr_visits", ["visitor_key"])


def downgrade() -> None:
    op.drop_index("ix_qr_visits_visitor", table_name="qr_visits")
    op.drop_index("ix_qr_visits_store_occurred", table_name="qr_visits")
    op.drop_index("ix_qr_visits_occurred", table_name="qr_visits")
    op.drop_table("qr_visits")
