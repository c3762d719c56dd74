"""audit trail appended without a lock, sealed by the sequencer; signed checkpoints

Events get an ``id`` from the database when they are written; ``seq``, ``prev_hash`` and
``hash`` are given when the sequencer seals them (``app.audit.sequencer``). Events sealed
before this revision keep their ``seq`` and hashes, and their ``id`` is their ``seq``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 18:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

BIG = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
INDEXED = ('actor', 'at', 'client_id', 'event_type')
COLUMNS = ('at', 'event_type', 'actor', 'client_id', 'jti', 'task_id', 'decision', 'reason', 'address',
           'data', 'prev_hash', 'hash')


def _event_table(name, *, sealed_later):
    key = ([sa.Column('id', BIG, autoincrement=True, nullable=False),
            sa.Column('seq', BIG, nullable=True)] if sealed_later else
           [sa.Column('seq', BIG, autoincrement=False, nullable=False)])
    op.create_table(name, *key,
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('event_type', sa.String(length=64), nullable=False),
    sa.Column('actor', sa.String(length=255), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=True),
    sa.Column('jti', sa.String(length=64), nullable=True),
    sa.Column('task_id', sa.String(length=64), nullable=True),
    sa.Column('decision', sa.String(length=16), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('address', sa.String(length=64), nullable=True),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=sealed_later),
    sa.Column('hash', sa.String(length=64), nullable=sealed_later),
    sa.PrimaryKeyConstraint('id' if sealed_later else 'seq', name=op.f('pk_audit_event')),
    *([sa.UniqueConstraint('seq', name=op.f('uq_audit_event_seq'))] if sealed_later else []))
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        for column in INDEXED:
            batch_op.create_index(batch_op.f(f'ix_audit_event_{column}'), [column], unique=False)


def _replace_events(*, sealed_later):
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        for column in INDEXED:
            batch_op.drop_index(batch_op.f(f'ix_audit_event_{column}'))
    op.rename_table('audit_event', 'audit_event_old')
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER TABLE audit_event_old RENAME CONSTRAINT pk_audit_event TO pk_audit_event_old')
    _event_table('audit_event', sealed_later=sealed_later)
    columns = ', '.join(COLUMNS)
    if sealed_later:
        op.execute(f'INSERT INTO audit_event (id, seq, {columns}) SELECT seq, seq, {columns} FROM audit_event_old')
    else:  # only what was sealed goes back; nothing unsealed can be put in the old chain here
        op.execute(f'INSERT INTO audit_event (seq, {columns}) SELECT seq, {columns} FROM audit_event_old '
                   'WHERE seq IS NOT NULL')
    op.drop_table('audit_event_old')
    if sealed_later and op.get_bind().dialect.name == 'postgresql':
        op.execute("SELECT setval(pg_get_serial_sequence('audit_event', 'id'), "
                   "COALESCE((SELECT max(id) FROM audit_event), 0) + 1, false)")


def upgrade():
    _replace_events(sealed_later=True)
    op.create_table('audit_checkpoint',
    sa.Column('seq', BIG, autoincrement=False, nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('jws', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_audit_checkpoint'))
    )


def downgrade():
    op.drop_table('audit_checkpoint')
    _replace_events(sealed_later=False)
