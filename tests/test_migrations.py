"""The migrations build exactly the models' schema, on both backends (the ``app`` fixture's
database is made by ``ostiary init``'s migrations)."""
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from app.extensions import db


def _indexes(table: str) -> dict[str, tuple]:
    """name -> (columns, partial WHERE clause or None), as the database reports them."""
    found = {}
    for index in inspect(db.engine).get_indexes(table):
        options = index.get("dialect_options", {})
        where = options.get("sqlite_where", options.get("postgresql_where"))
        found[index["name"]] = (tuple(index["column_names"]), str(where) if where is not None else None)
    return found


def test_the_migrated_schema_is_the_models(app):
    with db.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), db.metadata) == []


def test_an_issued_token_writes_one_index_entry_per_query(app):
    """The rows the token endpoint writes carry only the indexes some query reads."""
    unbracketed = {name: (columns, where and where.replace("(", "").replace(")", ""))
                   for name, (columns, where) in _indexes("issued_token").items()}
    assert unbracketed == {"ix_issued_token_client_id_issued_at": (("client_id", "issued_at"), None),
                           "ix_issued_token_parent_jti": (("parent_jti",), "parent_jti IS NOT NULL"),
                           "ix_issued_token_task_id": (("task_id",), "task_id IS NOT NULL")}
    # (PostgreSQL reports the unique constraint on seq as an index too; SQLite does not.)
    assert set(_indexes("audit_event")) - {"uq_audit_event_seq"} == {
        f"ix_audit_event_{name}" for name in ("at", "event_type", "actor", "client_id")}


def test_0004_goes_down_and_up_again(tmp_path, new_pg_database):
    """Revision 0004 (the approval lifecycle) downgrades to 0003 and upgrades again, on both
    backends, on a database of its own."""
    from flask_migrate import downgrade, upgrade

    from app import create_app

    from .conftest import _overrides
    for url in (f"sqlite:///{tmp_path}/round-trip.db", new_pg_database()):
        app = create_app(_overrides(tmp_path, url), check=False)
        directory = app.extensions["migrate"].directory
        with app.app_context():
            upgrade(directory=directory, revision="0004")
            assert {"previous_secret_hash", "previous_secret_until", "approval_expired_at"} <= {
                c["name"] for c in inspect(db.engine).get_columns("client")}
            assert {"change", "supersedes_id"} <= {c["name"] for c in inspect(db.engine).get_columns("approval")}
            downgrade(directory=directory, revision="0003")
            assert "previous_secret_hash" not in {c["name"] for c in inspect(db.engine).get_columns("client")}
            assert "change" not in {c["name"] for c in inspect(db.engine).get_columns("approval")}
            upgrade(directory=directory, revision="0004")
            assert "approval_expired_at" in {c["name"] for c in inspect(db.engine).get_columns("client")}
            db.engine.dispose()
