"""people: the persons agents act for, apart from the console's administrators

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 07:15:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('person',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('public_id', sa.String(length=64), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=True),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('email_verified', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('display_name', sa.String(length=255), nullable=True),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('issuer', sa.String(length=255), nullable=True),
    sa.Column('subject', sa.String(length=255), nullable=True),
    sa.Column('password_hash', sa.String(length=255), nullable=True),
    sa.Column('groups', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('last_login_at', sa.DateTime(), nullable=True),
    sa.Column('disabled_at', sa.DateTime(), nullable=True),
    sa.Column('session_generation', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.CheckConstraint("(source = 'local' AND username IS NOT NULL AND issuer IS NULL AND subject IS NULL) OR "
                       "(source = 'oidc' AND issuer IS NOT NULL AND subject IS NOT NULL)",
                       name=op.f('ck_person_source')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_person')),
    sa.UniqueConstraint('issuer', 'subject', name=op.f('uq_person_issuer')),
    sa.UniqueConstraint('public_id', name=op.f('uq_person_public_id')),
    sa.UniqueConstraint('username', name=op.f('uq_person_username')))


def downgrade():
    op.drop_table('person')
