"""wechat: followers bound to a 户号 (openid -> account number) and the messages already
taken from WeChat (dedup of its retries when Redis is not configured)

Revision ID: 0006
Revises: 0005
"""

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('wechat_bindings',
    sa.Column('openid', sa.String(length=64), nullable=False),
    sa.Column('account_number', sa.String(length=10), nullable=False),
    sa.Column('bound_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('openid')
    )
    with op.batch_alter_table('wechat_bindings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_wechat_bindings_account_number'), ['account_number'], unique=False)

    op.create_table('wechat_messages',
    sa.Column('message_key', sa.String(length=160), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('replies', sa.Text(), nullable=True),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('message_key')
    )
    with op.batch_alter_table('wechat_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_wechat_messages_expires_at'), ['expires_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('wechat_messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_wechat_messages_expires_at'))

    op.drop_table('wechat_messages')
    with op.batch_alter_table('wechat_bindings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_wechat_bindings_account_number'))

    op.drop_table('wechat_bindings')
