"""machine plane

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('nonces',
    sa.Column('machine_id', sa.String(length=36), nullable=False),
    sa.Column('nonce', sa.String(length=128), nullable=False),
    sa.Column('expires_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('machine_id', 'nonce')
    )
    with op.batch_alter_table('nonces', schema=None) as batch_op:
        batch_op.create_index('ix_nonces_expires', ['expires_ms'], unique=False)

    op.create_table('enrollment_tokens',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('vault_id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('token_hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('project_ids', sa.Text(), nullable=False),
    sa.Column('secret_ids', sa.Text(), nullable=False),
    sa.Column('max_uses', sa.Integer(), nullable=False),
    sa.Column('uses', sa.Integer(), nullable=False),
    sa.Column('approval', sa.String(length=16), nullable=False),
    sa.Column('machine_ttl_s', sa.BigInteger(), nullable=True),
    sa.Column('hostname_pattern', sa.String(length=255), nullable=True),
    sa.Column('name_pattern', sa.String(length=255), nullable=True),
    sa.Column('source_cidr', sa.String(length=64), nullable=True),
    sa.Column('created_ms', sa.BigInteger(), nullable=False),
    sa.Column('expires_ms', sa.BigInteger(), nullable=False),
    sa.Column('revoked_ms', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['vault_id'], ['vaults.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    op.create_table('machines',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('vault_id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('public_key', sa.LargeBinary(length=32), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('approved', sa.Boolean(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('hostname', sa.String(length=255), nullable=False),
    sa.Column('allowed_cidr', sa.String(length=64), nullable=True),
    sa.Column('enrollment_token_id', sa.String(length=32), nullable=True),
    sa.Column('created_ms', sa.BigInteger(), nullable=False),
    sa.Column('expires_ms', sa.BigInteger(), nullable=True),
    sa.Column('revoked_ms', sa.BigInteger(), nullable=True),
    sa.Column('last_poll_ms', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['vault_id'], ['vaults.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('machines', schema=None) as batch_op:
        batch_op.create_index('ix_machines_vault', ['vault_id'], unique=False)

    op.create_table('deliveries',
    sa.Column('machine_id', sa.String(length=36), nullable=False),
    sa.Column('secret_id', sa.String(length=32), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['machine_id'], ['machines.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('machine_id', 'secret_id')
    )
    op.create_table('machine_projects',
    sa.Column('machine_id', sa.String(length=36), nullable=False),
    sa.Column('project_id', sa.String(length=32), nullable=False),
    sa.Column('created_ms', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['machine_id'], ['machines.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('machine_id', 'project_id')
    )
    op.create_table('grants',
    sa.Column('machine_id', sa.String(length=36), nullable=False),
    sa.Column('secret_id', sa.String(length=32), nullable=False),
    sa.Column('created_ms', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['machine_id'], ['machines.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['secret_id'], ['secrets.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('machine_id', 'secret_id')
    )
    with op.batch_alter_table('grants', schema=None) as batch_op:
        batch_op.create_index('ix_grants_secret', ['secret_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('grants', schema=None) as batch_op:
        batch_op.drop_index('ix_grants_secret')

    op.drop_table('grants')
    op.drop_table('machine_projects')
    op.drop_table('deliveries')
    with op.batch_alter_table('machines', schema=None) as batch_op:
        batch_op.drop_index('ix_machines_vault')

    op.drop_table('machines')
    op.drop_table('enrollment_tokens')
    with op.batch_alter_table('nonces', schema=None) as batch_op:
        batch_op.drop_index('ix_nonces_expires')

    op.drop_table('nonces')
