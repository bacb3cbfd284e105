"""human takeover: agents, handoffs, handoff notes

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 00:36:06
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

OPEN = sa.text("status IN ('queued', 'active')")


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=32), nullable=False),
        sa.Column("display_name", sa.String(length=50), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=12), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("session_version", sa.Integer(), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_login_at", sa.DateTime(), nullable=True),
        sa.CheckConstraint("role IN ('agent', 'supervisor')", name=op.f("ck_agents_known_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agents")),
        sa.UniqueConstraint("username", name=op.f("uq_agents_username")),
    )
    op.create_table(
        "handoffs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sender_id", sa.String(length=128), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(length=12), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("language", sa.String(length=5), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("out_of_hours", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("taken_at", sa.DateTime(), nullable=True),
        sa.Column("closed_at", sa.DateTime(), nullable=True),
        sa.Column("closed_by", sa.String(length=32), nullable=True),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.Column("rated_at", sa.DateTime(), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'active', 'closed', 'cancelled')", name=op.f("ck_handoffs_known_status")
        ),
        sa.CheckConstraint("rating IS NULL OR (rating >= 1 AND rating <= 5)", name=op.f("ck_handoffs_rating_1_to_5")),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], name=op.f("fk_handoffs_agent_id_agents")),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_handoffs_member_id_members")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_handoffs")),
    )
    op.create_index(op.f("ix_handoffs_agent_id"), "handoffs", ["agent_id"])
    op.create_index(op.f("ix_handoffs_member_id"), "handoffs", ["member_id"])
    op.create_index("ix_handoffs_queue", "handoffs", ["status", "priority", "created_at"])
    op.create_index("ix_handoffs_sender_created", "handoffs", ["sender_id", "created_at"])
    # A partial unique index: one open handoff per conversation (both SQLite and PostgreSQL have them).
    op.create_index(
        "uq_handoffs_open_sender", "handoffs", ["sender_id"], unique=True,
        sqlite_where=OPEN, postgresql_where=OPEN,
    )
    op.create_table(
        "handoff_notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("handoff_id", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], name=op.f("fk_handoff_notes_agent_id_agents")),
        sa.ForeignKeyConstraint(
            ["handoff_id"], ["handoffs.id"], name=op.f("fk_handoff_notes_handoff_id_handoffs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_handoff_notes")),
    )
    op.create_index(op.f("ix_handoff_notes_handoff_id"), "handoff_notes", ["handoff_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_handoff_notes_handoff_id"), table_name="handoff_notes")
    op.drop_table("handoff_notes")
    op.drop_index("uq_handoffs_open_sender", table_name="handoffs")
    op.drop_index("ix_handoffs_sender_created", table_name="handoffs")
    op.drop_index("ix_handoffs_queue", table_name="handoffs")
    op.drop_index(op.f("ix_handoffs_member_id"), table_name="handoffs")
    op.drop_index(op.f("ix_handoffs_agent_id"), table_name="handoffs")
    op.drop_table("handoffs")
    op.drop_table("agents")
