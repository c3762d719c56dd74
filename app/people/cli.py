"""``ostiary user …``: the people agents act for (local accounts, and people from the OpenID
provider, ``app.people.oidc``), apart from ``ostiary admin``."""
from __future__ import annotations

import click
from flask.cli import with_appcontext

from app.people import accounts
from app.support.cli import actor, emit, failing_on, read_password


@click.group("user")
def user_group():
    """People, on whose behalf agents act (not console administrators)."""


@user_group.command("create")
@click.argument("username")
@click.option("--email", help="Their email address.")
@click.option("--email-verified", is_flag=True, help="You have checked that the address is theirs.")
@click.option("--name", "display_name", help="The name shown to them and to administrators.")
@click.option("--group", "groups", multiple=True, help="A group they belong to (repeat for more).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@with_appcontext
def user_create(username: str, email: str | None, email_verified: bool, display_name: str | None,
                groups: tuple[str, ...], password_stdin: bool):
    """A person who signs in with USERNAME and a password."""
    password = read_password(password_stdin)
    with failing_on(accounts.PersonError):
        person = accounts.create(username, password, actor(), email=email, email_verified=email_verified,
                                 display_name=display_name, groups=groups)
    click.echo(f"created user {username} (sub {person.public_id})")


@user_group.command("set-password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@with_appcontext
def user_set_password(username: str, password_stdin: bool):
    """A new password; every session of the person ends."""
    password = read_password(password_stdin)
    with failing_on(accounts.PersonError):
        accounts.set_password(username, password, actor())
    click.echo(f"changed the password of {username}; their sessions have ended")


@user_group.command("set-groups")
@click.argument("username")
@click.argument("groups", nargs=-1)
@with_appcontext
def user_set_groups(username: str, groups: tuple[str, ...]):
    """Replace a local person's groups with GROUPS (none: no group), which the policy's
    [[people]] rules read. People from the OpenID provider get theirs from it."""
    with failing_on(accounts.PersonError):
        stored = accounts.set_groups(username, groups, actor())
    click.echo(f"{username} is in {', '.join(stored) if stored else 'no group'}")


@user_group.command("disable")
@click.argument("username")
@click.option("--reason", default="disabled from the command line", show_default=True)
@with_appcontext
def user_disable(username: str, reason: str):
    """The person can no longer sign in; every session of theirs ends now. USERNAME may be the
    sub of a person from the OpenID provider."""
    with failing_on(accounts.PersonError):
        accounts.disable(username, actor(), reason)
    click.echo(f"disabled {username}; their sessions have ended")


@user_group.command("enable")
@click.argument("username")
@with_appcontext
def user_enable(username: str):
    """Let a disabled person sign in again (USERNAME, or the sub of a person from the provider)."""
    with failing_on(accounts.PersonError):
        accounts.enable(username, actor())
    click.echo(f"enabled {username}")


@user_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="A JSON array instead of one line each.")
@with_appcontext
def user_list(as_json: bool):
    """Every person: username, sub, email, groups, and whether they are disabled."""
    people = [{"username": p.username, "sub": p.public_id, "email": p.email, "email_verified": p.email_verified,
               "name": p.display_name, "source": p.source, "groups": p.groups,
               "created_at": p.created_at.isoformat(),
               "last_login_at": p.last_login_at.isoformat() if p.last_login_at else None,
               "disabled_at": p.disabled_at.isoformat() if p.disabled_at else None}
              for p in accounts.list_people()]
    emit(people, as_json, lambda p: "  ".join([
        p["username"] or "-", p["sub"], p["email"] or "-", ",".join(p["groups"]) or "-",
        "disabled" if p["disabled_at"] else "active"]))
