"""canaries

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('canaries',
    sa.Column('secret_id', sa.String(length=32), nullable=False),
    sa.Column('looks_like', sa.String(length=32), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('freeze_related', sa.Boolean(), nullable=False),
    sa.Column('related_project_ids', sa.Text(), nullable=False),
    sa.Column('created_ms', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['secret_id'], ['secrets.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('secret_id')
    )
    op.create_table('canary_trips',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('secret_id', sa.String(length=32), nullable=False),
    sa.Column('project_id', sa.String(length=32), nullable=False),
    sa.Column('actor_kind', sa.String(length=16), nullable=False),
    sa.Column('actor_id', sa.String(length=64), nullable=False),
    sa.Column('source_ip', sa.String(length=64), nullable=False),
    sa.Column('time_ms', sa.BigInteger(), nullable=False),
    sa.Column('frozen_projects', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['secret_id'], ['secrets.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('canary_trips', schema=None) as batch_op:
        batch_op.create_index('ix_canary_trips_secret', ['secret_id', 'time_ms'], unique=False)

    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.add_column(sa.Column('frozen_ms', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('frozen_by', sa.String(length=32), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.drop_column('frozen_by')
        batch_op.drop_column('frozen_ms')

    with op.batch_alter_table('canary_trips', schema=None) as batch_op:
        batch_op.drop_index('ix_canary_trips_secret')

    op.drop_table('canary_trips')
    op.drop_table('canaries')
