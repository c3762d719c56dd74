"""Every matching client, on every page, in two steps (app.console.bulk): the confirmation names
how many and the first few; at the second step the match runs again, and the action applies
to exactly the clients confirmed, or, if the match changed, to none."""
import html as htmllib
import re

import pytest

from app.console import bulk
from app.extensions import db
from app.models import Client
from app.registration import lifecycle

from .console_helpers import Console, csrf_token
from .factories import ACTOR, clone_clients, events, make_client


@pytest.fixture
def console(client):
    console = Console(client).create_admin()
    assert console.login().status_code == 303
    return console


def statuses(client_ids):
    db.session.expire_all()
    return {db.session.get(Client, c).status for c in client_ids}


def hidden(html, name):
    return htmllib.unescape(re.search(rf'name="{name}" type="hidden" value="([^"]*)"', html).group(1))


def confirm_matching(console, page, action):
    """Press the page's "every matching" button for ``action``: post its form's fields."""
    html = console.client.get(page).get_data(as_text=True)
    match = re.search(r'name="match" value="([^"]*)"', html).group(1)
    return console.client.post("/console/bulk/confirm-matching", data={
        "csrf_token": csrf_token(html), "action": action, "match": htmllib.unescape(match), "back": page})


def apply(console, confirmation, reason="bulk test"):
    html = confirmation.get_data(as_text=True)
    return console.client.post("/console/bulk/matching", data={
        "csrf_token": csrf_token(html), "reason": reason,
        **{name: hidden(html, name) for name in ("action", "match", "count", "digest", "back")}})


def fleet(n, name="fleet"):
    """``n`` active clients named "fleet 0"…, quickly (one registered, the rest copied)."""
    made = make_client(status="active", client_name=f"{name} x")
    return [*clone_clients(made, n - 1, client_name=name + " {i}"), made.client_id]


def test_suspending_every_match_across_pages_names_the_count_and_the_first_few(console):
    matched = fleet(60)  # more than the inventory's page of 50
    spared = make_client(status="active", client_name="spared").client_id
    pending = make_client(status="pending", client_name="fleet pending").client_id
    page = "/console/inventory?q=fleet&sort=name"
    listing = console.client.get(page).get_data(as_text=True)
    assert "61 clients match; page 1 of 2" in listing and "Suspend every matching active client…" in listing
    confirmation = confirm_matching(console, page, "suspend")
    html = confirmation.get_data(as_text=True)
    assert confirmation.status_code == 200 and "Suspend 60 clients?" in html
    assert "the clients the inventory&#39;s filter matches (search “fleet”) that are active now" in html
    assert html.count("<code>") == bulk.SHOWN and "… and 50 more clients" in html
    assert "1 other matching client is not active and will not be changed." in html
    assert hidden(html, "count") == "60" and statuses(matched) == {"active"}
    done = apply(console, confirmation, reason="fleet decommissioned")
    assert done.status_code == 303 and done.headers["Location"].endswith(page)
    assert statuses(matched) == {"suspended"} and statuses([spared]) == {"active"}
    assert statuses([pending]) == {"pending"}
    suspended = events("client.suspended")
    assert sorted(e.client_id for e in suspended) == sorted(matched)
    assert {(e.actor, e.reason) for e in suspended} == {("admin:alice", "fleet decommissioned")}
    assert "Suspended 60 clients." in console.client.get(page).get_data(as_text=True)


@pytest.mark.parametrize("change", ["joins", "leaves", "swaps"])
def test_a_match_that_changed_since_the_confirmation_changes_nothing_and_is_shown_again(console, change):
    matched = fleet(3)
    confirmation = confirm_matching(console, "/console/inventory?q=fleet", "suspend")
    if change in ("joins", "swaps"):
        make_client(status="active", client_name="fleet newcomer")
    if change in ("leaves", "swaps"):
        lifecycle.suspend(matched[0], reason="by hand", actor=ACTOR)
    again = apply(console, confirmation)
    html = again.get_data(as_text=True)
    assert again.status_code == 409 and "nothing was changed" in html
    assert events("client.suspended", only="client_id") == ([matched[0]] if change != "joins" else [])
    now = {"joins": 4, "leaves": 2, "swaps": 3}[change]
    assert f"(3 then, {now} now, or others in their place)" in html and f"Suspend {now} clients?" in html
    assert apply(console, again).status_code == 303  # the new list, confirmed
    assert len(events("client.suspended")) == 4 if change == "joins" else 3


def test_denying_every_pending_registration_and_a_group_by_its_key(console):
    group = [make_client(status="pending", address="198.51.100.7", software_id="flooder").client_id
             for _ in range(3)]
    other = make_client(status="pending", address="192.0.2.9", client_name="lonely agent").client_id
    active = make_client(status="active").client_id
    page = console.client.get("/console/pending").get_data(as_text=True)
    key = re.search(r'name="match" value="(group:[^"]*flooder[^"]*)"', page).group(1)
    confirmation = console.client.post("/console/bulk/confirm-matching", data={
        "csrf_token": csrf_token(page), "action": "deny", "match": htmllib.unescape(key),
        "back": "/console/pending"})
    html = confirmation.get_data(as_text=True)
    assert "Deny 3 clients?" in html and "group self-asserted, claims software flooder" in html
    apply(console, confirmation, reason="flood")
    assert statuses(group) == {"denied"} and statuses([other]) == {"pending"}
    everything = confirm_matching(console, "/console/pending", "deny")
    assert "Deny 1 client?" in everything.get_data(as_text=True)
    apply(console, everything, reason="spring cleaning")
    assert statuses([other]) == {"denied"} and statuses([active]) == {"active"}
    assert [(e.client_id, e.reason) for e in events("client.denied")] == [
        *((c, "flood") for c in group), (other, "spring cleaning")]


@pytest.mark.parametrize("match, message", [
    ("inventory:status=bogus", "the inventory&#39;s filter is not valid (Status: Not a valid choice."),
    ("inventory:unused_days=0", "Unused for (days): Number must be between 1 and 3650."),
    ("everything", "the selection is not one this console makes"),
    ("group:self:nobody::", "that group has no pending registration any more"),
    ("", "Say which clients."),
])
def test_a_malformed_match_changes_nothing(console, match, message):
    made = make_client(status="active").client_id
    page = console.client.get("/console/inventory").get_data(as_text=True)
    response = console.client.post("/console/bulk/confirm-matching", data={
        "csrf_token": csrf_token(page), "action": "suspend", "match": match, "back": "/console/inventory"})
    assert response.status_code == 303
    assert message in console.client.get("/console/inventory").get_data(as_text=True)
    assert statuses([made]) == {"active"}


def test_more_matches_than_a_bulk_action_takes_are_refused(console, monkeypatch):
    monkeypatch.setattr(bulk, "MAX_BULK", 2)
    matched = fleet(3)
    response = confirm_matching(console, "/console/inventory?q=fleet", "suspend")
    assert response.status_code == 303
    assert ("3 clients match; at most 2 at a time: narrow the selection"
            in console.client.get("/console/inventory").get_data(as_text=True))
    assert statuses(matched) == {"active"}


def test_without_the_csrf_token_or_a_reason_nothing_is_changed(console):
    matched = fleet(2)
    confirmation = confirm_matching(console, "/console/inventory?q=fleet", "suspend")
    html = confirmation.get_data(as_text=True)
    fields = {name: hidden(html, name) for name in ("action", "match", "count", "digest", "back")}
    console.client.post("/console/bulk/matching", data={**fields, "reason": "forged"})
    no_reason = apply(console, confirmation, reason="")
    assert no_reason.status_code == 400 and "This field is required." in no_reason.get_data(as_text=True)
    assert statuses(matched) == {"active"} and events("client.suspended") == []
