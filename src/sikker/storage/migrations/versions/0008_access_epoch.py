"""access epoch: one counter bumped by every change that can alter a machine read's outcome

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29

Nodes cache what a signed read needs (machine, grant, secret, project, sealed value) and
check, in the transaction that commits the read's audit record, that the counter has not
moved since the cache was filled. Triggers keep the counter honest whatever code path (or
operator with psql) changes these tables.
"""

from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

# (table, events). Machines: every column but last_poll_ms (poll bookkeeping, not access).
WATCHED = [
    ('vaults', 'UPDATE OR DELETE'),
    ('projects', 'UPDATE OR DELETE'),
    ('secrets', 'UPDATE OR DELETE'),
    ('secret_versions', 'UPDATE OR DELETE'),
    ('machines', 'UPDATE OF vault_id, public_key, approved, enabled, allowed_cidr, expires_ms, revoked_ms OR DELETE'),
    ('machine_projects', 'INSERT OR UPDATE OR DELETE'),
    ('grants', 'INSERT OR UPDATE OR DELETE'),
    ('canaries', 'INSERT OR UPDATE OR DELETE'),
]
BUMP = 'UPDATE access_epoch SET epoch = epoch + 1 WHERE id = 1'


def upgrade() -> None:
    op.create_table(
        'access_epoch',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('epoch', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.execute('INSERT INTO access_epoch (id, epoch) VALUES (1, 0)')
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(
            'CREATE FUNCTION sikker_bump_access_epoch() RETURNS trigger LANGUAGE plpgsql AS '
            f"$$ BEGIN {BUMP}; RETURN NULL; END $$"
        )
        for table, events in WATCHED:
            op.execute(
                f'CREATE TRIGGER {table}_access_epoch AFTER {events} ON {table} '
                'FOR EACH STATEMENT EXECUTE FUNCTION sikker_bump_access_epoch()'
            )
        return
    # SQLite: one trigger per event, row level (the only kind it has).
    for table, events in WATCHED:
        for event in events.split(' OR '):
            name = f"{table}_access_epoch_{event.split()[0].lower()}"
            op.execute(f'CREATE TRIGGER {name} AFTER {event} ON {table} BEGIN {BUMP}; END')


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        for table, _ in WATCHED:
            op.execute(f'DROP TRIGGER {table}_access_epoch ON {table}')
        op.execute('DROP FUNCTION sikker_bump_access_epoch()')
    else:
        for table, events in WATCHED:
            for event in events.split(' OR '):
                op.execute(f"DROP TRIGGER {table}_access_epoch_{event.split()[0].lower()}")
    op.drop_table('access_epoch')
