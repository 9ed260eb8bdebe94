"""workload identity: JWT roles, used JWTs, and the role that created a machine

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (no batch table copy): a copy would drop machines' access-epoch triggers.
    op.add_column('machines', sa.Column('jwt_role_id', sa.String(length=32), nullable=True))
    op.create_index('ix_machines_jwt_role', 'machines', ['jwt_role_id'], unique=False)
    op.create_table('jwt_roles',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('vault_id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('issuer', sa.String(length=512), nullable=False),
    sa.Column('discovery_url', sa.String(length=2048), nullable=True),
    sa.Column('jwks_url', sa.String(length=2048), nullable=True),
    sa.Column('public_keys', sa.Text(), nullable=True),
    sa.Column('bound_audiences', sa.Text(), nullable=False),
    sa.Column('bound_subject', sa.String(length=256), nullable=True),
    sa.Column('bound_claims', sa.Text(), nullable=True),
    sa.Column('name_claim', sa.String(length=128), nullable=True),
    sa.Column('project_ids', sa.Text(), nullable=False),
    sa.Column('secret_ids', sa.Text(), nullable=False),
    sa.Column('machine_ttl_s', sa.BigInteger(), nullable=False),
    sa.Column('source_cidrs', sa.Text(), nullable=True),
    sa.Column('kubernetes_mode', sa.String(length=16), nullable=True),
    sa.Column('kubernetes_cluster', sa.String(length=64), nullable=True),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('created_ms', sa.BigInteger(), nullable=False),
    sa.Column('updated_ms', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['vault_id'], ['vaults.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('vault_id', 'name', name='uq_jwt_roles_vault_name')
    )
    op.create_table('jwt_uses',
    sa.Column('vault_id', sa.String(length=32), nullable=False),
    sa.Column('digest', sa.LargeBinary(length=32), nullable=False),
    sa.Column('expires_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('vault_id', 'digest')
    )
    op.create_index('ix_jwt_uses_expires', 'jwt_uses', ['expires_ms'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_jwt_uses_expires', table_name='jwt_uses')
    op.drop_table('jwt_uses')
    op.drop_table('jwt_roles')
    op.drop_index('ix_machines_jwt_role', table_name='machines')
    op.drop_column('machines', 'jwt_role_id')  # SQLite 3.35+ drops a column in place
