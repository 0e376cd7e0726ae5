"""identity failures

Revision ID: 0002
Revises: 0001
"""

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('identity_failures',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_number', sa.String(length=10), nullable=False),
    sa.Column('failed_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('identity_failures', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_identity_failures_account_number'), ['account_number'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('identity_failures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_identity_failures_account_number'))

    op.drop_table('identity_failures')
