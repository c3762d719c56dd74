"""client ID metadata documents: URL client ids up to 512 characters, the fetched documents,
and the trusted publishers of documents

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 13:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

# Every column that holds a client id (app.models.client.CLIENT_ID_MAX). Only PostgreSQL is
# altered: SQLite enforces no VARCHAR length, and the models keep its declared type.
CLIENT_ID_COLUMNS = ('client', 'approval', 'task', 'issued_token', 'assertion_jti', 'audit_event',
                     'authorization_code', 'refresh_token', 'consent', 'access_request')


def _postgresql() -> bool:
    return op.get_bind().dialect.name == 'postgresql'


def upgrade():
    if _postgresql():
        for table in CLIENT_ID_COLUMNS:
            op.alter_column(table, 'client_id', type_=sa.String(length=512), existing_type=sa.String(length=64))
        op.alter_column('client', 'registered_from', type_=sa.String(length=255), existing_type=sa.String(length=64))
    op.create_table('client_document',
    sa.Column('client_id', sa.String(length=512).with_variant(sa.String(length=64), 'sqlite'), nullable=False),
    sa.Column('document', sa.JSON(), nullable=False),
    sa.Column('fetched_at', sa.DateTime(), nullable=False),
    sa.Column('fresh_until', sa.DateTime(), nullable=False),
    sa.Column('checked_at', sa.DateTime(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['client_id'], ['client.client_id'], name=op.f('fk_client_document_client_id_client'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('client_id', name=op.f('pk_client_document')))
    op.create_table('document_publisher',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('prefix', sa.String(length=512), nullable=False),
    sa.Column('owner', sa.String(length=255), nullable=False),
    sa.Column('scopes', sa.JSON(), nullable=False),
    sa.Column('audiences', sa.JSON(), nullable=False),
    sa.Column('approval_days', sa.Integer(), nullable=False),
    sa.Column('assurance_level', sa.Integer(), nullable=False),
    sa.Column('proofing_method', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('created_by', sa.String(length=255), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_document_publisher')),
    sa.UniqueConstraint('prefix', name=op.f('uq_document_publisher_prefix')))


def downgrade():
    # A URL client id does not fit the narrower column: say so rather than cut ids apart.
    if _postgresql() and op.get_bind().execute(
            sa.text("SELECT count(*) FROM client WHERE length(client_id) > 64")).scalar():
        raise RuntimeError("clients with URL client ids (metadata documents) exist: retire and purge "
                           "them before downgrading below 0007")
    op.drop_table('document_publisher')
    op.drop_table('client_document')
    if _postgresql():
        op.alter_column('client', 'registered_from', type_=sa.String(length=64), existing_type=sa.String(length=255),
                        postgresql_using="left(registered_from, 64)")
        for table in CLIENT_ID_COLUMNS:
            op.alter_column(table, 'client_id', type_=sa.String(length=64), existing_type=sa.String(length=512))
