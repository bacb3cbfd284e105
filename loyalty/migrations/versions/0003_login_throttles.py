"""console logins: failures per (name, address) and per address; no more per-account lock

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 09:00:00

The per-account counter on ``agents`` let anyone lock an agent out from
anywhere, and never counted unknown names. ``login_throttles`` replaces it
(the scheme is described in loyalty/handoff/auth.py). The old columns are
dropped with a plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+, PostgreSQL),
which leaves the ``agents`` table and the foreign keys to it in place.
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_throttles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=32), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_start", sa.DateTime(), nullable=False),
        sa.Column("locked_until", sa.DateTime(), nullable=True),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_throttles")),
        sa.UniqueConstraint("username", "address", name=op.f("uq_login_throttles_username_address")),
    )
    op.create_index(op.f("ix_login_throttles_expires_at"), "login_throttles", ["expires_at"])
    op.drop_column("agents", "locked_until")
    op.drop_column("agents", "failed_logins")


def downgrade() -> None:
    op.add_column("agents", sa.Column("failed_logins", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("agents", sa.Column("locked_until", sa.DateTime(), nullable=True))
    op.drop_index(op.f("ix_login_throttles_expires_at"), table_name="login_throttles")
    op.drop_table("login_throttles")
