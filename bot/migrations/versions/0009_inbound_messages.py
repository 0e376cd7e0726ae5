"""inbound_messages: the record of messages taken from any channel (WeChat's and the REST
channel's retries), renamed from wechat_messages; WeChat's keys move under "wechat:"

Revision ID: 0009
Revises: 0008
"""

from alembic import op


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('wechat_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_wechat_messages_expires_at')
    op.rename_table('wechat_messages', 'inbound_messages')
    with op.batch_alter_table('inbound_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inbound_messages_expires_at'), ['expires_at'], unique=False)
    op.execute("UPDATE inbound_messages SET message_key = 'wechat:' || message_key")


def downgrade() -> None:
    op.execute("DELETE FROM inbound_messages WHERE message_key NOT LIKE 'wechat:%'")
    op.execute("UPDATE inbound_messages SET message_key = SUBSTR(message_key, 8)")
    with op.batch_alter_table('inbound_messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inbound_messages_expires_at'))
    op.rename_table('inbound_messages', 'wechat_messages')
    with op.batch_alter_table('wechat_messages', schema=None) as batch_op:
        batch_op.create_index('ix_wechat_messages_expires_at', ['expires_at'], unique=False)
