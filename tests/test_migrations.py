"""The migrations build exactly the models' schema, on both backends, and undo cleanly."""
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect

from app import create_app
from app.cli import initialise
from app.extensions import db

from .conftest import BACKENDS, _overrides


@pytest.fixture(params=BACKENDS)
def fresh_app(request, tmp_path, new_pg_database):
    """An app on a database of its own, migrated to the head: these tests take it apart."""
    url = f"sqlite:///{tmp_path}/ostiary.db" if request.param == "sqlite" else new_pg_database()
    app = create_app(_overrides(tmp_path, url), check=False)
    initialise(app)
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


def _indexes(table: str) -> dict[str, tuple]:
    """name -> (columns, partial WHERE clause or None), as the database reports them."""
    found = {}
    for index in inspect(db.engine).get_indexes(table):
        options = index.get("dialect_options", {})
        where = options.get("sqlite_where", options.get("postgresql_where"))
        found[index["name"]] = (tuple(index["column_names"]), str(where) if where is not None else None)
    return found


def test_the_migrated_schema_is_the_models(fresh_app):
    with db.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), db.metadata) == []


def test_an_issued_token_writes_one_index_entry_per_query(fresh_app):
    """0002: the rows the token endpoint writes carry only the indexes some query reads."""
    tokens = _indexes("issued_token")
    assert set(tokens) == {"ix_issued_token_client_id_issued_at", "ix_issued_token_parent_jti",
                           "ix_issued_token_task_id"}
    assert tokens["ix_issued_token_client_id_issued_at"] == (("client_id", "issued_at"), None)
    for column in ("parent_jti", "task_id"):
        columns, where = tokens[f"ix_issued_token_{column}"]
        assert columns == (column,) and where.replace("(", "").replace(")", "") == f"{column} IS NOT NULL"
    assert set(_indexes("audit_event")) == {f"ix_audit_event_{name}"
                                            for name in ("at", "event_type", "actor", "client_id")}


def test_0002_comes_off_and_back_on(fresh_app):
    directory = fresh_app.extensions["migrate"].directory
    downgrade(directory=directory, revision="0001")
    assert set(_indexes("issued_token")) == {f"ix_issued_token_{name}"
                                             for name in ("client_id", "issued_at", "parent_jti", "task_id")}
    assert "ix_audit_event_jti" in _indexes("audit_event")
    upgrade(directory=directory)
    with db.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), db.metadata) == []
    assert _indexes("issued_token")["ix_issued_token_task_id"][1] is not None
