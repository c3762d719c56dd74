"""Audit an auditor can use: date ranges that are refused when malformed (console and CLI),
`--since`/`--until`, filters by client, actor and type on both, and a client's own timeline."""
import json
from datetime import datetime, timedelta, timezone

import pytest

from app import audit
from app.console.queries import client_timeline
from app.extensions import db
from app.models.client import CLIENT_ID_MAX
from app.support import clock

from .console_helpers import Console
from .factories import make_client

START = datetime(2027, 3, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def console(client):
    console = Console(client).create_admin()
    assert console.login().status_code == 303
    return console


def move_to(at):
    clock.advance((at - clock.now()).total_seconds())


def write(event_type, actor, client_id, at):
    move_to(at)
    audit.record(event_type, actor, client_id=client_id)
    db.session.commit()


@pytest.fixture
def trail(app):
    """Four events on three days (a date after today's: the clock only moves on): 1 March 12:00, 2 March 00:00 and 23:30, 3 March 09:00 (UTC)."""
    write("client.registered", "client:a", "a", START)
    write("client.approved", "admin:alice", "a", START + timedelta(hours=12))
    write("client.registered", "client:b", "b", START + timedelta(hours=35, minutes=30))
    write("client.suspended", "admin:alice", "b", START + timedelta(days=1, hours=21))
    move_to(START + timedelta(days=10))


def exported(runner, *args):
    result = runner.invoke(args=["audit", "export", *args])
    assert result.exit_code == 0, result.output
    return mine(map(json.loads, result.stdout.splitlines()))


def mine(lines):
    """The trail fixture's events (not those of the keys and the administrator, made today)."""
    return [(e["event_type"], e["client_id"]) for e in lines if e["client_id"] in ("a", "b")]


@pytest.mark.parametrize("args, expected", [
    (["--until", "2027-03-01"], [("client.registered", "a")]),  # a date: to its end, inclusive
    (["--since", "2027-03-02", "--until", "2027-03-02"], [("client.approved", "a"), ("client.registered", "b")]),
    (["--until", "2027-03-02T00:00:00"], [("client.registered", "a")]),  # a time: before it
    (["--since", "2027-03-02T23:00:00Z"], [("client.registered", "b"), ("client.suspended", "b")]),
    (["--since", "2027-03-03T00:00:00+02:00", "--until", "2027-03-03T10:30:00+01:00"],
     [("client.registered", "b"), ("client.suspended", "b")]),
    (["--since", "2027-03-02", "--actor", "admin:alice"], [("client.approved", "a"), ("client.suspended", "b")]),
    (["--until", "2027-03-02", "--client", "b"], [("client.registered", "b")]),
    (["--type", "client.registered", "--since", "2027-03-01T13:00"], [("client.registered", "b")]),
])
def test_cli_export_between_dates_with_filters(runner, trail, args, expected):
    assert exported(runner, *args) == expected


@pytest.mark.parametrize("args, message", [
    (["--since", "2027-02-30"], "'2027-02-30' is not a date: give YYYY-MM-DD"),
    (["--until", "yesterday"], "'yesterday' is not a date"),
    (["--since", "01/03/2026"], "is not a date"),
    (["--since", "2027-03-02", "--until", "2027-03-01T00:00"], "is not after --since"),
])
def test_cli_export_refuses_a_malformed_or_empty_range_and_exports_nothing(runner, trail, args, message):
    result = runner.invoke(args=["audit", "export", *args])
    assert result.exit_code == 2 and message in result.output
    assert result.stdout.strip() == "" or "Usage" in result.stdout  # no event was written out


def console_export(console, query):
    response = console.client.get(f"/console/audit/export.jsonl?{query}")
    return response, mine(map(json.loads, response.get_data(as_text=True).splitlines()))


@pytest.mark.parametrize("query, expected", [
    ("until=2027-03-01", [("client.registered", "a")]),
    ("since=2027-03-02&until=2027-03-02&actor=admin:alice", [("client.approved", "a")]),
    ("client_id=b&event_type=client.suspended", [("client.suspended", "b")]),
])
def test_console_export_between_dates_with_filters(console, trail, query, expected):
    response, lines = console_export(console, query)
    assert response.status_code == 200 and lines == expected


@pytest.mark.parametrize("query, message", [
    ("since=2027-02-30", "Not a valid date value."),
    ("until=not-a-date", "Not a valid date value."),
    ("since=2027-03-02&until=2027-03-01", "The end date is before the start date."),
    ("client_id=" + "x" * (CLIENT_ID_MAX + 1), f"Field cannot be longer than {CLIENT_ID_MAX} characters."),
])
@pytest.mark.parametrize("path", ["/console/audit/export.jsonl", "/console/audit"])
def test_console_refuses_a_malformed_search_or_export_and_shows_why(console, trail, path, query, message):
    """The export used to ignore a filter it could not read and export the whole trail."""
    response = console.client.get(f"{path}?{query}")
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and response.mimetype == "text/html"
    assert message in page and "Nothing was searched or exported" in page
    assert "client.registered" not in page and "No events match." not in page


def test_a_client_page_shows_its_own_timeline_newest_first(console):
    made = make_client(status="active", client_name="timeline agent")
    other = make_client(status="active")
    from app.registration import lifecycle
    lifecycle.suspend(made.client_id, reason="lost laptop", actor="admin:bob")
    page = console.client.get(f"/console/clients/{made.client_id}").get_data(as_text=True)
    section = page[page.index('id="timeline-heading"'):]
    kinds = [t for t in ("client.suspended", "client.approved", "client.registered") if t in section]
    assert kinds == ["client.suspended", "client.approved", "client.registered"]
    assert section.index("client.suspended") < section.index("client.approved") < section.index("client.registered")
    assert "lost laptop" in section and "admin:bob" in section and other.client_id not in section
    assert f'href="/console/audit?client_id={made.client_id}"' in section


def test_the_timeline_is_bounded_and_says_there_is_more(app):
    made = make_client(status="pending")
    for i in range(5):
        audit.record("test.note", "system", client_id=made.client_id, data={"i": i})
    db.session.commit()
    events, more = client_timeline(made.client_id, limit=3)
    assert [e.data["i"] for e in events] == [4, 3, 2] and more
    events, more = client_timeline(made.client_id, limit=10)
    assert len(events) == 6 and not more  # the registration, then five notes
    assert client_timeline("nobody") == ([], False)
