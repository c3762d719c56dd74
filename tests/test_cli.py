from sqlalchemy import select

from app.extensions import db
from app.models import Admin

from .factories import events


def test_init_is_idempotent(runner):
    result = runner.invoke(args=["init"])
    assert result.exit_code == 0 and "already initialised" in result.output


def test_keys_list_and_rotate(runner):
    before = runner.invoke(args=["keys", "list"]).output
    assert "active" in before and "next" in before
    result = runner.invoke(args=["keys", "rotate"])
    assert result.exit_code == 0 and "active:" in result.output
    assert "retiring" in runner.invoke(args=["keys", "list"]).output


def test_admin_create_hashes_the_password_with_argon2(runner):
    result = runner.invoke(args=["admin", "create", "alice", "--password-stdin"],
                           input="correct horse battery\n")
    assert result.exit_code == 0, result.output
    admin = db.session.execute(select(Admin)).scalar_one()
    assert admin.password_hash.startswith("$argon2id$")
    assert "correct horse" not in admin.password_hash
    [event] = events("admin.created")
    assert event.data == {"username": "alice"}


def test_admin_create_refuses_weak_password_and_duplicates(runner):
    assert runner.invoke(args=["admin", "create", "bob", "--password-stdin"], input="short\n").exit_code == 1
    assert runner.invoke(args=["admin", "create", "bob", "--password-stdin"],
                         input="long enough password\n").exit_code == 0
    again = runner.invoke(args=["admin", "create", "bob", "--password-stdin"], input="long enough password\n")
    assert again.exit_code == 1 and "already exists" in again.output
