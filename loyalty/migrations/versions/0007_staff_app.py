"""staff accounts of the staff web app (marketing, store managers, supervisors)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 01:50:00
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "staff_accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=32), nullable=False),
        sa.Column("display_name", sa.String(length=50), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("store_id", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("session_version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_login_at", sa.DateTime(), nullable=True),
        sa.CheckConstraint("role IN ('marketing', 'store_manager', 'supervisor')",
                           name=op.f("ck_staff_accounts_known_role")),
        sa.CheckConstraint("(role = 'store_manager') = (store_id IS NOT NULL)",
                           name=op.f("ck_staff_accounts_manager_has_store")),
        sa.ForeignKeyConstraint(["store_id"], ["stores.id"], name=op.f("fk_staff_accounts_store_id_stores")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_accounts")),
        sa.UniqueConstraint("username", name=op.f("uq_staff_accounts_username")),
    )


def downgrade() -> None:
    op.drop_table("staff_accounts")
