"""audit tamper evidence and streams

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_checkpoints',
    sa.Column('chain', sa.String(length=32), nullable=False),
    sa.Column('tree_size', sa.BigInteger(), nullable=False),
    sa.Column('root_hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('time_ms', sa.BigInteger(), nullable=False),
    sa.Column('key_id', sa.String(length=32), nullable=False),
    sa.Column('signature', sa.LargeBinary(length=64), nullable=False),
    sa.PrimaryKeyConstraint('chain', 'tree_size')
    )
    op.create_table('audit_frontiers',
    sa.Column('chain', sa.String(length=32), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('nodes', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('chain')
    )
    op.create_table('audit_keys',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('public_key', sa.LargeBinary(length=32), nullable=False),
    sa.Column('wrapped_private_key', sa.LargeBinary(), nullable=False),
    sa.Column('created_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('audit_sinks',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('vault_id', sa.String(length=32), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('config', sa.Text(), nullable=False),
    sa.Column('wrapped_secret', sa.LargeBinary(), nullable=True),
    sa.Column('actions', sa.Text(), nullable=True),
    sa.Column('min_severity', sa.String(length=16), nullable=False),
    sa.Column('cursors', sa.Text(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_ms', sa.BigInteger(), nullable=False),
    sa.Column('last_error', sa.String(length=500), nullable=True),
    sa.Column('created_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('audit_deliveries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('sink_id', sa.String(length=32), nullable=False),
    sa.Column('time_ms', sa.BigInteger(), nullable=False),
    sa.Column('chain', sa.String(length=32), nullable=False),
    sa.Column('first_seq', sa.BigInteger(), nullable=False),
    sa.Column('last_seq', sa.BigInteger(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('result', sa.String(length=16), nullable=False),
    sa.Column('error', sa.String(length=500), nullable=True),
    sa.ForeignKeyConstraint(['sink_id'], ['audit_sinks.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('audit_deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_audit_deliveries_sink', ['sink_id', 'id'], unique=False)

    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.add_column(sa.Column('secret_id', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('leaf_hash', sa.LargeBinary(length=32), nullable=True))
        batch_op.create_index('ix_audit_actor', ['chain', 'actor_id', 'seq'], unique=False)
        batch_op.create_index('ix_audit_secret', ['chain', 'secret_id', 'seq'], unique=False)
        batch_op.create_index('ix_audit_severity', ['chain', 'severity', 'seq'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_severity')
        batch_op.drop_index('ix_audit_secret')
        batch_op.drop_index('ix_audit_actor')
        batch_op.drop_column('leaf_hash')
        batch_op.drop_column('secret_id')

    with op.batch_alter_table('audit_deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_deliveries_sink')

    op.drop_table('audit_deliveries')
    op.drop_table('audit_sinks')
    op.drop_table('audit_keys')
    op.drop_table('audit_frontiers')
    op.drop_table('audit_checkpoints')
