"""A person learns what became of their request for a pending agent (``app.registration.access``):
on their own "My agents" page, after an administrator approved or denied it with the lifecycle's
own functions or commands, and on the waiting page while it waits. Nobody sees another's."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Person
from app.models.client import PENDING
from app.people import accounts
from app.registration import access, lifecycle
from app.support import clock

from .console_helpers import csrf_token
from .factories import ACTOR, approve, make_client
from .test_authorization_code import (
    PASSWORD,
    PERSON_GRANTS,
    REDIRECT,
    authorize_params,
    person,  # noqa: F401 (a fixture: alice, signed in on the test's client)
    pkce,
)

HOME = "https://reports.example.com/"
DAY = 24 * 3600


def pending_agent(name: str = "Report Bot", **metadata):
    return make_client("none", PENDING, scopes=("read", "write"), grant_types=PERSON_GRANTS,
                       redirect_uris=[REDIRECT], client_name=name, **metadata)


def ask(client, made, reason: str = "for the quarterly report") -> str:
    """As the signed-in person: open the agent's authorization request, ask for access."""
    html = client.get("/authorize", query_string=authorize_params(made, pkce()[1])).get_data(as_text=True)
    response = client.post("/authorize/request-access", data={"client_id": made.client_id, "reason": reason,
                                                              "csrf_token": csrf_token(html)})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_data(as_text=True)


def requests_row(client, name: str) -> str:
    """The text of the row of the person's requests that names ``name`` ('' if there is none)."""
    html = client.get("/my/agents").get_data(as_text=True)
    table = html.split("Your requests for access", 1)[1] if "Your requests for access" in html else ""
    rows = [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)) for row in re.findall(r"<tr>(.*?)</tr>", table, re.DOTALL)]
    return next((row for row in rows if name in row), "")


def sign_in(browser, username: str) -> None:
    """``username`` signs in on ``browser`` (again, after the clock moved past their session)."""
    page = browser.get("/signin")
    response = browser.post("/signin", data={"username": username, "password": PASSWORD,
                                             "csrf_token": csrf_token(page.get_data(as_text=True))})
    assert response.status_code == 303


def alice() -> Person:
    return db.session.execute(select(Person).where(Person.username == "alice")).scalar_one()


@pytest.mark.usefixtures("person")
def test_the_waiting_page_says_the_request_waits_and_where_the_decision_will_show(client):
    made = pending_agent()
    html = ask(client, made)
    assert "Your request is waiting for a decision" in html and 'href="/my/agents"' in html
    row = requests_row(client, "Report Bot")
    assert "waiting" in row and "have not decided yet" in row
    again = client.get("/authorize", query_string=authorize_params(made, pkce()[1])).get_data(as_text=True)
    assert "Your request is waiting for a decision" in again  # coming back, the person sees the same


@pytest.mark.usefixtures("person")
def test_an_approval_shows_on_the_persons_page_with_the_way_back(client):
    made = pending_agent(client_uri=HOME)
    ask(client, made)
    clock.advance(3 * DAY)
    approve(made.client_id, scopes=("read",))
    sign_in(client, "alice")
    row = requests_row(client, "Report Bot")
    assert f"approved on {clock.now():%Y-%m-%d}" in row
    assert "You can now connect" in row
    html = client.get("/my/agents").get_data(as_text=True)
    assert f'<a href="{HOME}" rel="noopener noreferrer">the agent</a>' in html
    consent = client.get("/authorize", query_string=authorize_params(made, pkce()[1]))
    assert "act for you" in consent.get_data(as_text=True)  # and going back, consent is asked


@pytest.mark.usefixtures("person")
def test_a_denial_by_the_command_shows_on_the_persons_page(client, runner):
    made = pending_agent()
    ask(client, made)
    clock.advance(2 * DAY)
    sign_in(client, "alice")
    result = runner.invoke(args=["registration", "deny", made.client_id, "--reason", "unknown vendor", "--yes"])
    assert result.exit_code == 0, result.output
    db.session.remove()
    row = requests_row(client, "Report Bot")
    assert f"denied on {clock.now():%Y-%m-%d}" in row and "will not act for anyone" in row
    assert "You can now connect" not in row
    assert "unknown vendor" not in row  # the reason was written for the record and the registrant


@pytest.mark.usefixtures("person")
def test_an_agent_approved_then_suspended_cannot_be_connected(client):
    made = pending_agent(client_uri=HOME)
    ask(client, made)
    approve(made.client_id, scopes=("read",))
    lifecycle.suspend(made.client_id, reason="incident 7", actor=ACTOR)
    row = requests_row(client, "Report Bot")
    assert "approved on" in row and "It is suspended now" in row and "You can now connect" not in row


@pytest.mark.usefixtures("person")
def test_an_agent_retired_while_pending_closes_the_request_without_a_decision(client):
    made = pending_agent()
    ask(client, made)
    lifecycle.retire(made.client_id, actor=ACTOR, reason="withdrawn by its vendor")
    row = requests_row(client, "Report Bot")
    assert "closed without a decision" in row and "retired" in row


def back_to_review(client, made) -> None:
    """The agent changes its redirect URIs (RFC 7592): a new review, pending again."""
    auth = {"Authorization": f"Bearer {made.registration_access_token}"}
    body = client.get(f"/register/{made.client_id}", headers=auth).get_json()
    body = {k: v for k, v in body.items() if k not in ("registration_access_token", "status_description",
                                                       "pending_expires_at")}
    body["redirect_uris"] = [REDIRECT, "https://agent.example.com/other"]
    response = client.put(f"/register/{made.client_id}", json=body, headers=auth)
    assert response.status_code == 200 and response.get_json()["status"] == PENDING, response.get_json()


@pytest.mark.usefixtures("person")
def test_a_decision_before_the_request_is_not_its_outcome(client):
    """Approved after the person asked, then back in review: waiting again. Asked again, then
    retired: the approval before that request does not answer it."""
    made = pending_agent()
    ask(client, made)
    clock.advance(DAY)
    approve(made.client_id, scopes=("read",))
    sign_in(client, "alice")
    assert "approved on" in requests_row(client, "Report Bot")
    back_to_review(client, made)
    assert "have not decided yet" in requests_row(client, "Report Bot")
    clock.advance(DAY)
    sign_in(client, "alice")
    ask(client, made, "still for the quarterly report")
    lifecycle.retire(made.client_id, actor=ACTOR)
    [outcome] = access.my_requests(alice())
    assert outcome.state == access.CLOSED and outcome.decided_at is None
    assert "closed without a decision" in requests_row(client, "Report Bot")


@pytest.mark.usefixtures("person")
def test_a_person_sees_only_their_own_requests(app, client):
    mine, theirs = pending_agent("Alice Bot"), pending_agent("Bob Bot")
    ask(client, mine)
    accounts.create("bob", PASSWORD, "admin:test")
    bob = app.test_client()
    sign_in(bob, "bob")
    ask(bob, theirs, "bob's own reason")
    approve(theirs.client_id, scopes=("read",))
    assert requests_row(client, "Alice Bot") and not requests_row(client, "Bob Bot")
    assert "bob's own reason" not in client.get("/my/agents").get_data(as_text=True)
    assert "approved on" in requests_row(bob, "Bob Bot") and not requests_row(bob, "Alice Bot")
    bob_person = db.session.execute(select(Person).where(Person.username == "bob")).scalar_one()
    assert [o.client.client_id for o in access.my_requests(bob_person)] == [theirs.client_id]


@pytest.mark.usefixtures("person")
def test_without_requests_the_page_has_no_requests_table(client):
    assert "Your requests for access" not in client.get("/my/agents").get_data(as_text=True)


def test_the_requests_page_needs_a_signed_in_person(app):
    response = app.test_client().get("/my/agents")
    assert response.status_code == 303 and "/signin" in response.headers["Location"]
