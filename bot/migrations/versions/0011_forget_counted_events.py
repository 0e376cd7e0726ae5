"""analytics_events.counted_at: when an event was counted, so that its key can be
forgotten once no redelivery can come (bot/analytics/bookkeeping.forget_counted)

Revision ID: 0011
Revises: 0010
"""

from alembic import op
import sqlalchemy as sa

from bot import clock


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('analytics_events', sa.Column('counted_at', sa.DateTime(), nullable=True))
    # the keys counted before this migration: as if counted now, kept as long as new ones
    op.execute(sa.text("UPDATE analytics_events SET counted_at = :now").bindparams(now=clock.now()))
    op.create_index(op.f('ix_analytics_events_counted_at'), 'analytics_events', ['counted_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_analytics_events_counted_at'), table_name='analytics_events')
    with op.batch_alter_table('analytics_events') as batch:
        batch.drop_column('counted_at')
