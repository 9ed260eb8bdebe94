"""seal epoch

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('seal_config', schema=None) as batch_op:
        batch_op.add_column(sa.Column('seal_epoch', sa.BigInteger(), server_default=sa.text('0'), nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('seal_config', schema=None) as batch_op:
        batch_op.drop_column('seal_epoch')

