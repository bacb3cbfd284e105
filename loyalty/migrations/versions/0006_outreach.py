"""outreach: sends ledger, subscription credits, journeys, broadcasts, inbox, SMS consent

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 01:37:20
"""
import sqlalchemy as sa
from alembic import op

import loyalty.db

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('broadcasts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('audience', sa.JSON(), nullable=False),
    sa.Column('text_zh', sa.Text(), nullable=False),
    sa.Column('text_en', sa.Text(), nullable=False),
    sa.Column('send_at', loyalty.db.UTCDateTime(), nullable=False),
    sa.Column('planned_at', loyalty.db.UTCDateTime(), nullable=True),
    sa.Column('created_at', loyalty.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_broadcasts')),
    sa.UniqueConstraint('code', name=op.f('uq_broadcasts_code'))
    )
    op.create_table('journey_switches',
    sa.Column('journey', sa.String(length=60), nullable=False),
    sa.Column('paused', sa.Boolean(), nullable=False),
    sa.Column('changed_at', loyalty.db.UTCDateTime(), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('journey', name=op.f('pk_journey_switches'))
    )
    op.create_table('outreach_sends',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('idem_key', sa.String(length=160), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('journey', sa.String(length=60), nullable=False),
    sa.Column('step', sa.String(length=30), nullable=False),
    sa.Column('occasion', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('arm', sa.String(length=10), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('reason', sa.String(length=40), nullable=True),
    sa.Column('facts', sa.JSON(), nullable=False),
    sa.Column('channel', sa.String(length=10), nullable=True),
    sa.Column('route', sa.String(length=12), nullable=True),
    sa.Column('errcode', sa.String(length=40), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('planned_at', loyalty.db.UTCDateTime(), nullable=False),
    sa.Column('due_at', loyalty.db.UTCDateTime(), nullable=False),
    sa.Column('claimed_by', sa.String(length=64), nullable=True),
    sa.Column('claimed_at', loyalty.db.UTCDateTime(), nullable=True),
    sa.Column('done_at', loyalty.db.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_outreach_sends_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outreach_sends')),
    sa.UniqueConstraint('idem_key', name=op.f('uq_outreach_sends_idem_key'))
    )
    with op.batch_alter_table('outreach_sends', schema=None) as batch_op:
        batch_op.create_index('ix_outreach_journey', ['journey', 'arm'], unique=False)
        batch_op.create_index('ix_outreach_member_kind', ['member_id', 'kind', 'done_at'], unique=False)
        batch_op.create_index('ix_outreach_status_due', ['status', 'due_at'], unique=False)

    op.create_table('inbox_messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('send_id', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('created_at', loyalty.db.UTCDateTime(), nullable=False),
    sa.Column('seen_at', loyalty.db.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_inbox_messages_member_id_members')),
    sa.ForeignKeyConstraint(['send_id'], ['outreach_sends.id'], name=op.f('fk_inbox_messages_send_id_outreach_sends')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inbox_messages')),
    sa.UniqueConstraint('send_id', name=op.f('uq_inbox_messages_send_id'))
    )
    with op.batch_alter_table('inbox_messages', schema=None) as batch_op:
        batch_op.create_index('ix_inbox_member_seen', ['member_id', 'seen_at'], unique=False)

    op.create_table('subscription_credits',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('template_id', sa.String(length=64), nullable=False),
    sa.Column('granted_at', loyalty.db.UTCDateTime(), nullable=False),
    sa.Column('spent_at', loyalty.db.UTCDateTime(), nullable=True),
    sa.Column('send_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_subscription_credits_member_id_members')),
    sa.ForeignKeyConstraint(['send_id'], ['outreach_sends.id'], name=op.f('fk_subscription_credits_send_id_outreach_sends')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subscription_credits')),
    sa.UniqueConstraint('send_id', name=op.f('uq_subscription_credits_send_id'))
    )
    with op.batch_alter_table('subscription_credits', schema=None) as batch_op:
        batch_op.create_index('ix_subscription_credits_open', ['member_id', 'template_id', 'spent_at'], unique=False)

    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sms_opt_in', sa.Boolean(), server_default=sa.false(), nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_column('sms_opt_in')

    with op.batch_alter_table('subscription_credits', schema=None) as batch_op:
        batch_op.drop_index('ix_subscription_credits_open')

    op.drop_table('subscription_credits')
    with op.batch_alter_table('inbox_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_inbox_member_seen')

    op.drop_table('inbox_messages')
    with op.batch_alter_table('outreach_sends', schema=None) as batch_op:
        batch_op.drop_index('ix_outreach_status_due')
        batch_op.drop_index('ix_outreach_member_kind')
        batch_op.drop_index('ix_outreach_journey')

    op.drop_table('outreach_sends')
    op.drop_table('journey_switches')
    op.drop_table('broadcasts')
