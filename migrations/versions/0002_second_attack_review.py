"""second attack review: signed fields, registration versions, token not-before, resource
servers, once-only statement jti, console session generations, failed logins

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 14:50:35.206235

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('login_failure',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('address', sa.String(length=64), nullable=True),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_login_failure'))
    )
    with op.batch_alter_table('login_failure', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_login_failure_address'), ['address'], unique=False)
        batch_op.create_index(batch_op.f('ix_login_failure_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_login_failure_username'), ['username'], unique=False)

    op.create_table('statement_jti',
    sa.Column('publisher_id', sa.Integer(), nullable=False),
    sa.Column('jti', sa.String(length=255), nullable=False),
    sa.Column('used_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['publisher_id'], ['publisher.id'], name=op.f('fk_statement_jti_publisher_id_publisher'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('publisher_id', 'jti', name=op.f('pk_statement_jti'))
    )
    with op.batch_alter_table('admin', schema=None) as batch_op:
        batch_op.add_column(sa.Column('disabled_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('session_generation', sa.Integer(), server_default=sa.text('0'), nullable=False))

    with op.batch_alter_table('approval', schema=None) as batch_op:
        batch_op.add_column(sa.Column('serves', sa.JSON(), server_default=sa.text("'[]'"), nullable=False))

    with op.batch_alter_table('client', schema=None) as batch_op:
        batch_op.add_column(sa.Column('signed_fields', sa.JSON(), server_default=sa.text("'[]'"), nullable=False))
        batch_op.add_column(sa.Column('statement_digest', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('version', sa.Integer(), server_default=sa.text('1'), nullable=False))
        batch_op.add_column(sa.Column('tokens_not_before', sa.DateTime(), nullable=True))
        batch_op.create_index(batch_op.f('ix_client_statement_digest'), ['statement_digest'], unique=False)

    with op.batch_alter_table('publisher', schema=None) as batch_op:
        batch_op.add_column(sa.Column('require_jti', sa.Boolean(), server_default=sa.false(), nullable=False))



def downgrade():
    with op.batch_alter_table('publisher', schema=None) as batch_op:
        batch_op.drop_column('require_jti')

    with op.batch_alter_table('client', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_client_statement_digest'))
        batch_op.drop_column('tokens_not_before')
        batch_op.drop_column('version')
        batch_op.drop_column('statement_digest')
        batch_op.drop_column('signed_fields')

    with op.batch_alter_table('approval', schema=None) as batch_op:
        batch_op.drop_column('serves')

    with op.batch_alter_table('admin', schema=None) as batch_op:
        batch_op.drop_column('session_generation')
        batch_op.drop_column('disabled_at')

    op.drop_table('statement_jti')
    with op.batch_alter_table('login_failure', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_login_failure_username'))
        batch_op.drop_index(batch_op.f('ix_login_failure_at'))
        batch_op.drop_index(batch_op.f('ix_login_failure_address'))

    op.drop_table('login_failure')
