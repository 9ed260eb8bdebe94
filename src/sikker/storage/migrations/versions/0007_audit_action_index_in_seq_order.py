"""audit action index in seq order

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_action'))
        batch_op.create_index('ix_audit_action_seq', ['chain', 'action', 'seq'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_action_seq')
        batch_op.create_index(batch_op.f('ix_audit_action'), ['chain', 'action', 'time_ms'], unique=False)

