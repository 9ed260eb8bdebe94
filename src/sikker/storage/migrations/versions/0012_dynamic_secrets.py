"""dynamic secrets and leases

Revision ID: 0012
Revises: 0010
Create Date: 2026-11-30
"""

from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('dynamic_secrets',
    sa.Column('secret_id', sa.String(length=32), nullable=False),
    sa.Column('engine', sa.String(length=16), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('port', sa.Integer(), nullable=False),
    sa.Column('database', sa.String(length=255), nullable=False),
    sa.Column('admin_secret_id', sa.String(length=32), nullable=False),
    sa.Column('grant_role', sa.String(length=1000), nullable=False),
    sa.Column('default_ttl_s', sa.BigInteger(), nullable=False),
    sa.Column('max_ttl_s', sa.BigInteger(), nullable=False),
    sa.Column('username_template', sa.String(length=64), nullable=False),
    sa.Column('creation_statements', sa.Text(), nullable=False),
    sa.Column('revocation_statements', sa.Text(), nullable=False),
    sa.Column('max_leases_per_machine', sa.Integer(), nullable=True),
    sa.Column('created_ms', sa.BigInteger(), nullable=False),
    sa.Column('updated_ms', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['secret_id'], ['secrets.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('secret_id')
    )
    op.create_table('leases',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('vault_id', sa.String(length=32), nullable=False),
    sa.Column('project_id', sa.String(length=32), nullable=False),
    sa.Column('dynamic_secret_id', sa.String(length=32), nullable=False),
    sa.Column('machine_id', sa.String(length=36), nullable=True),
    sa.Column('username', sa.String(length=128), nullable=False),
    sa.Column('password_ct', sa.LargeBinary(), nullable=True),
    sa.Column('password_dek', sa.LargeBinary(), nullable=True),
    sa.Column('password_key_version', sa.Integer(), nullable=True),
    sa.Column('snapshot_ct', sa.LargeBinary(), nullable=False),
    sa.Column('snapshot_dek', sa.LargeBinary(), nullable=False),
    sa.Column('snapshot_key_version', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('created_ms', sa.BigInteger(), nullable=False),
    sa.Column('expires_ms', sa.BigInteger(), nullable=False),
    sa.Column('max_expires_ms', sa.BigInteger(), nullable=False),
    sa.Column('revoke_requested_ms', sa.BigInteger(), nullable=True),
    sa.Column('revoked_ms', sa.BigInteger(), nullable=True),
    sa.Column('revoke_reason', sa.String(length=500), nullable=True),
    sa.Column('revoked_by', sa.String(length=100), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_ms', sa.BigInteger(), nullable=True),
    sa.Column('last_error', sa.String(length=500), nullable=True),
    sa.Column('claimed_by', sa.String(length=64), nullable=True),
    sa.Column('claim_until_ms', sa.BigInteger(), nullable=True),
    sa.Column('alerted_ms', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('leases', schema=None) as batch_op:
        batch_op.create_index('ix_leases_state_expires', ['state', 'expires_ms'], unique=False)
        batch_op.create_index('ix_leases_state_next', ['state', 'next_attempt_ms'], unique=False)
        batch_op.create_index('ix_leases_machine', ['machine_id', 'dynamic_secret_id', 'state'], unique=False)
        batch_op.create_index('ix_leases_dynamic', ['dynamic_secret_id', 'state'], unique=False)
        batch_op.create_index('ix_leases_vault', ['vault_id', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('leases', schema=None) as batch_op:
        batch_op.drop_index('ix_leases_vault')
        batch_op.drop_index('ix_leases_dynamic')
        batch_op.drop_index('ix_leases_machine')
        batch_op.drop_index('ix_leases_state_next')
        batch_op.drop_index('ix_leases_state_expires')

    op.drop_table('leases')
    op.drop_table('dynamic_secrets')
