"""failed sign-ins per user name, shared by every worker and node

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30
"""

from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('login_failures',
    sa.Column('canonical', sa.String(length=255), nullable=False),
    sa.Column('window_start_ms', sa.BigInteger(), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('locked_until_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('canonical')
    )
    op.create_index('ix_login_failures_window', 'login_failures', ['window_start_ms'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_login_failures_window', table_name='login_failures')
    op.drop_table('login_failures')
