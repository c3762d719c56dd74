"""approval lifecycle: overlapping client secrets, expiry kept beside a suspension, approvals
that are renewed or edited

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 07:30:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('client', schema=None) as batch_op:
        batch_op.add_column(sa.Column('previous_secret_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('previous_secret_until', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('approval_expired_at', sa.DateTime(), nullable=True))

    with op.batch_alter_table('approval', schema=None) as batch_op:
        batch_op.add_column(sa.Column('change', sa.String(length=16), server_default=sa.text("'approved'"),
                                      nullable=False))
        batch_op.add_column(sa.Column('supersedes_id', sa.Integer(), nullable=True))

    # A client already expired before this revision: its approval ran out when it was expired.
    op.execute("UPDATE client SET approval_expired_at = updated_at WHERE status = 'expired'")


def downgrade():
    with op.batch_alter_table('approval', schema=None) as batch_op:
        batch_op.drop_column('supersedes_id')
        batch_op.drop_column('change')

    with op.batch_alter_table('client', schema=None) as batch_op:
        batch_op.drop_column('approval_expired_at')
        batch_op.drop_column('previous_secret_until')
        batch_op.drop_column('previous_secret_hash')
