"""Indexes written with every issued token: one per query, partial where most rows are NULL

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 02:00:00

The token endpoint writes an issued_token row and an audit_event row per token, and each of
their indexes with them. issued_token's client_id and issued_at indexes become one, on both
(the console's per-client inventory, suspension's revocation by client); parent_jti and
task_id, NULL for every client_credentials token, are indexed where set, which is all their
queries ask for; audit_event's jti and task_id indexes served no query.
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

PARTIAL = ("parent_jti", "task_id")  # issued_token columns indexed where not NULL


def upgrade():
    for name in ("client_id", "issued_at", *PARTIAL):
        op.drop_index(f"ix_issued_token_{name}", table_name="issued_token")
    for name in ("jti", "task_id"):
        op.drop_index(f"ix_audit_event_{name}", table_name="audit_event")
    op.create_index("ix_issued_token_client_id_issued_at", "issued_token", ["client_id", "issued_at"])
    for name in PARTIAL:
        where = sa.text(f"{name} IS NOT NULL")
        op.create_index(f"ix_issued_token_{name}", "issued_token", [name],
                        sqlite_where=where, postgresql_where=where)


def downgrade():
    for name in PARTIAL:
        op.drop_index(f"ix_issued_token_{name}", table_name="issued_token")
    op.drop_index("ix_issued_token_client_id_issued_at", table_name="issued_token")
    for name in ("jti", "task_id"):
        op.create_index(f"ix_audit_event_{name}", "audit_event", [name])
    for name in ("client_id", "issued_at", *PARTIAL):
        op.create_index(f"ix_issued_token_{name}", "issued_token", [name])
