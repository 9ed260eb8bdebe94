"""rotation

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('managed_secrets',
    sa.Column('secret_id', sa.String(length=32), nullable=False),
    sa.Column('provider', sa.String(length=16), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('port', sa.Integer(), nullable=False),
    sa.Column('database', sa.String(length=255), nullable=False),
    sa.Column('admin_secret_id', sa.String(length=32), nullable=False),
    sa.Column('strategy', sa.String(length=16), nullable=False),
    sa.Column('base_username', sa.String(length=255), nullable=False),
    sa.Column('alt_username', sa.String(length=255), nullable=True),
    sa.Column('grace_s', sa.BigInteger(), nullable=False),
    sa.Column('previous_username', sa.String(length=255), nullable=True),
    sa.Column('disable_previous_at_ms', sa.BigInteger(), nullable=True),
    sa.Column('agent_status', sa.String(length=16), nullable=True),
    sa.Column('agent_error', sa.String(length=500), nullable=True),
    sa.Column('agent_seen_ms', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['admin_secret_id'], ['secrets.id'], ),
    sa.ForeignKeyConstraint(['secret_id'], ['secrets.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('secret_id')
    )
    op.create_table('rotation_policies',
    sa.Column('secret_id', sa.String(length=32), nullable=False),
    sa.Column('interval_s', sa.BigInteger(), nullable=True),
    sa.Column('cron', sa.String(length=120), nullable=True),
    sa.Column('length', sa.Integer(), nullable=False),
    sa.Column('charset', sa.String(length=16), nullable=False),
    sa.Column('fields', sa.Text(), nullable=True),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('next_due_ms', sa.BigInteger(), nullable=False),
    sa.Column('last_rotated_ms', sa.BigInteger(), nullable=True),
    sa.Column('last_error', sa.String(length=500), nullable=True),
    sa.ForeignKeyConstraint(['secret_id'], ['secrets.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('secret_id')
    )
    with op.batch_alter_table('rotation_policies', schema=None) as batch_op:
        batch_op.create_index('ix_rotation_due', ['enabled', 'next_due_ms'], unique=False)

    op.create_table('rotations',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('secret_id', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('trigger', sa.String(length=16), nullable=False),
    sa.Column('ciphertext', sa.LargeBinary(), nullable=True),
    sa.Column('wrapped_dek', sa.LargeBinary(), nullable=True),
    sa.Column('key_version', sa.Integer(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=True),
    sa.Column('error', sa.String(length=500), nullable=True),
    sa.Column('created_ms', sa.BigInteger(), nullable=False),
    sa.Column('updated_ms', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['secret_id'], ['secrets.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('rotations', schema=None) as batch_op:
        batch_op.create_index('ix_rotations_secret', ['secret_id', 'status'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('rotations', schema=None) as batch_op:
        batch_op.drop_index('ix_rotations_secret')

    op.drop_table('rotations')
    with op.batch_alter_table('rotation_policies', schema=None) as batch_op:
        batch_op.drop_index('ix_rotation_due')

    op.drop_table('rotation_policies')
    op.drop_table('managed_secrets')
