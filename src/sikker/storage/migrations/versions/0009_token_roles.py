"""token roles: an admin token carries a role and, optionally, one project of its vault

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06

Existing admin tokens become role 'admin' at their vault: what they could do before.
A token bound to a project goes with the project (ON DELETE CASCADE): it must never
widen to the whole vault, which SET NULL would do.
"""

from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('role', sa.String(length=16), server_default='admin', nullable=False))
        batch_op.add_column(sa.Column('project_id', sa.String(length=32), nullable=True))
        batch_op.create_foreign_key(
            'fk_tokens_project_id_projects', 'projects', ['project_id'], ['id'], ondelete='CASCADE'
        )


def downgrade() -> None:
    with op.batch_alter_table('tokens', schema=None) as batch_op:
        batch_op.drop_constraint('fk_tokens_project_id_projects', type_='foreignkey')
        batch_op.drop_column('project_id')
        batch_op.drop_column('role')
