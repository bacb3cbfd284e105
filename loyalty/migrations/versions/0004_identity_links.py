"""one member on every channel: SMS link codes, send limits, WeChat UnionIDs, member codes

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-08 09:00:00

Codes and phone numbers of these tables are keyed hashes (loyalty/identity/keys.py);
``channel_identities`` gains the WeChat UnionID of an identity.
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("channel_identities", sa.Column("union_id", sa.String(length=128), nullable=True))
    op.create_index(op.f("ix_channel_identities_union_id"), "channel_identities", ["union_id"])
    op.create_table(
        "link_challenges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("phone_key", sa.String(length=64), nullable=False),
        sa.Column("phone_masked", sa.String(length=16), nullable=False),
        sa.Column("new_phone", sa.String(length=20), nullable=True),
        sa.Column("nonce", sa.String(length=32), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("last_outcome", sa.String(length=12), nullable=True),
        sa.Column("started_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_link_challenges_member_id_members")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_link_challenges")),
    )
    op.create_index("ix_link_challenges_identity", "link_challenges", ["channel", "external_id", "id"])
    op.create_index(op.f("ix_link_challenges_member_id"), "link_challenges", ["member_id"])
    op.create_table(
        "code_send_quotas",
        sa.Column("key", sa.String(length=80), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("last_sent_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_code_send_quotas")),
    )
    op.create_table(
        "wechat_unions",
        sa.Column("openid", sa.String(length=128), nullable=False),
        sa.Column("union_id", sa.String(length=128), nullable=True),
        sa.Column("seen_at", sa.DateTime(), nullable=False),
        sa.Column("unlinked_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("openid", name=op.f("pk_wechat_unions")),
    )
    op.create_index(op.f("ix_wechat_unions_union_id"), "wechat_unions", ["union_id"])
    op.create_table(
        "member_code_keys",
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("salt", sa.String(length=32), nullable=False),
        sa.Column("counter", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_member_code_keys_member_id_members")),
        sa.PrimaryKeyConstraint("member_id", name=op.f("pk_member_code_keys")),
    )
    op.create_table(
        "member_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("counter", sa.BigInteger(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("issued_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.Column("used_by", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_member_codes_member_id_members")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_member_codes")),
        sa.UniqueConstraint("code", "step", name=op.f("uq_member_codes_code")),
    )
    op.create_index(op.f("ix_member_codes_code"), "member_codes", ["code"])
    op.create_index(op.f("ix_member_codes_member_id"), "member_codes", ["member_id"])


def downgrade() -> None:
    op.drop_table("member_codes")
    op.drop_table("member_code_keys")
    op.drop_index(op.f("ix_wechat_unions_union_id"), table_name="wechat_unions")
    op.drop_table("wechat_unions")
    op.drop_table("code_send_quotas")
    op.drop_index(op.f("ix_link_challenges_member_id"), table_name="link_challenges")
    op.drop_index("ix_link_challenges_identity", table_name="link_challenges")
    op.drop_table("link_challenges")
    op.drop_index(op.f("ix_channel_identities_union_id"), table_name="channel_identities")
    op.drop_column("channel_identities", "union_id")
