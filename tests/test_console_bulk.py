"""Bulk deny and suspend from the pending queue and the inventory: a confirmation page that
changes nothing, then one lifecycle call (and one audit event) per client."""
import re

import pytest

from app.console.bulk import MAX_BULK
from app.extensions import db
from app.models import Client

from .console_helpers import Console, csrf_token, unlabelled
from .factories import events, make_client


@pytest.fixture
def console(client):
    console = Console(client).create_admin()
    assert console.login().status_code == 303
    return console


def status_of(client_id):
    db.session.expire_all()
    return db.session.get(Client, client_id).status


def confirm(console, action, client_ids, page="/console/inventory", back="/console/inventory"):
    html = console.client.get(page).get_data(as_text=True)
    return console.client.post("/console/bulk/confirm", data={
        "csrf_token": csrf_token(html), "action": action, "client_id": client_ids, "back": back})


def apply(console, confirmation, reason="bulk test"):
    html = confirmation.get_data(as_text=True)
    ids = re.search(r'name="client_ids" type="hidden" value="([^"]*)"', html).group(1)
    action = re.search(r'name="action" type="hidden" value="([^"]*)"', html).group(1)
    back = re.search(r'name="back" type="hidden" value="([^"]*)"', html).group(1)
    return console.client.post("/console/bulk", data={"csrf_token": csrf_token(html), "action": action,
                                                      "client_ids": ids, "back": back, "reason": reason})


def test_suspending_ticked_clients_names_them_first_then_suspends_each_audited(console):
    chosen = [make_client(status="active", client_name=f"chosen {i}").client_id for i in range(3)]
    spared = make_client(status="active", client_name="spared").client_id
    page = console.client.get("/console/inventory").get_data(as_text=True)
    assert all(f'value="{c}" id="select-{c}"' in page for c in chosen)
    assert "Suspend the selected clients…" in page
    confirmation = confirm(console, "suspend", chosen)
    html = confirmation.get_data(as_text=True)
    assert confirmation.status_code == 200 and "Suspend 3 clients?" in html
    assert all(c in html for c in chosen) and "spared" not in html
    assert [status_of(c) for c in chosen] == ["active"] * 3 and events("client.suspended") == []
    assert unlabelled(html) == ([], [], [])
    done = apply(console, confirmation, reason="owner left")
    assert done.status_code == 303 and done.headers["Location"].endswith("/console/inventory")
    assert [status_of(c) for c in chosen] == ["suspended"] * 3 and status_of(spared) == "active"
    suspended = events("client.suspended")
    assert [(e.client_id, e.actor, e.reason) for e in suspended] == [(c, "admin:alice", "owner left") for c in chosen]
    assert "Suspended 3 clients." in console.client.get("/console/inventory").get_data(as_text=True)


def test_the_confirmation_names_what_it_will_not_touch(console):
    active = make_client(status="active", client_name="active one").client_id
    pending = make_client(status="pending", client_name="pending one").client_id
    html = confirm(console, "suspend", [active, pending, "f" * 32]).get_data(as_text=True)
    assert "Suspend 1 client?" in html
    assert "pending one" in html and "is pending: only active clients can be suspended" in html
    assert f"<code>{'f' * 32}</code>: there is no such client." in html
    assert re.search(rf'name="client_ids" type="hidden" value="{active}"', html)  # only the one it can
    nothing = confirm(console, "deny", [active]).get_data(as_text=True)
    assert "Nothing here can be denied." in nothing and 'action="/console/bulk"' not in nothing


def test_a_client_that_changed_between_the_two_steps_is_skipped_and_named(console):
    first, second = (make_client(status="pending").client_id for _ in range(2))
    confirmation = confirm(console, "deny", [first, second], page="/console/pending", back="/console/pending")
    from app.registration import lifecycle

    from .factories import approve
    approve(second)  # someone approved it meanwhile
    done = apply(console, confirmation)
    assert done.headers["Location"].endswith("/console/pending")
    assert status_of(first) == "denied" and status_of(second) == "active"
    flashed = console.client.get("/console/pending").get_data(as_text=True)
    assert "Denied 1 client. Skipped 1:" in flashed and f"client &#39;{second}&#39; is active" in flashed
    assert events("client.denied", only="client_id") == [first]
    assert lifecycle.get_client(second).approval is not None


@pytest.mark.parametrize("data, message", [
    ({"action": "deny"}, "Select at least one client."),
    ({"action": "retire", "client_id": ["x"]}, "Choose deny or suspend."),
    ({"client_id": ["x"]}, "Choose deny or suspend."),
])
def test_a_selection_that_names_no_clients_or_no_known_action_changes_nothing(console, data, message):
    made = make_client(status="pending").client_id
    html = console.client.get("/console/pending").get_data(as_text=True)
    response = console.client.post("/console/bulk/confirm", data={"csrf_token": csrf_token(html),
                                                                  "back": "/console/pending", **data})
    assert response.status_code == 303
    assert message in console.client.get("/console/pending").get_data(as_text=True)
    assert status_of(made) == "pending"


def test_too_many_clients_at_once_are_refused(console):
    html = console.client.get("/console/pending").get_data(as_text=True)
    ids = [f"{i:032x}" for i in range(MAX_BULK + 1)]
    response = console.client.post("/console/bulk/confirm", data={
        "csrf_token": csrf_token(html), "action": "deny", "client_id": ids})
    assert response.status_code == 303
    assert f"at most {MAX_BULK} clients at a time" in console.client.get("/console/pending").get_data(as_text=True)


@pytest.mark.parametrize("path", ["/console/bulk/confirm", "/console/bulk"])
def test_without_the_csrf_token_nothing_is_changed(console, path):
    made = make_client(status="pending").client_id
    console.client.post(path, data={"action": "deny", "client_id": [made], "client_ids": made,
                                    "reason": "forged"})
    assert status_of(made) == "pending" and events("client.denied") == []


def test_the_confirmation_without_a_reason_is_shown_again_and_changes_nothing(console):
    made = make_client(status="active", client_name="kept").client_id
    confirmation = confirm(console, "suspend", [made])
    response = apply(console, confirmation, reason="")
    html = response.get_data(as_text=True)
    assert response.status_code == 400 and "This field is required." in html and "kept" in html
    assert status_of(made) == "active"


@pytest.mark.parametrize("back", ["https://evil.example/", "//evil.example/console/", "/elsewhere"])
def test_it_only_returns_to_a_console_page(console, back):
    made = make_client(status="pending").client_id
    confirmation = confirm(console, "deny", [made], back=back)
    done = apply(console, confirmation)
    assert done.headers["Location"].endswith("/console/pending") and status_of(made) == "denied"


def test_ticking_registrations_in_the_pending_queue_denies_only_those(console):
    group = [make_client(status="pending", address="198.51.100.7", software_id="flooder").client_id
             for _ in range(3)]
    page = console.client.get("/console/pending").get_data(as_text=True)
    assert unlabelled(page) == ([], [], [])
    assert all(f'form="pending-selection" name="client_id" value="{c}"' in page for c in group)
    confirmation = confirm(console, "deny", group[:2], page="/console/pending", back="/console/pending")
    assert "Deny 2 clients?" in confirmation.get_data(as_text=True)
    apply(console, confirmation, reason="two of three")
    assert [status_of(c) for c in group] == ["denied", "denied", "pending"]
    assert [(e.client_id, e.reason) for e in events("client.denied")] == [(c, "two of three") for c in group[:2]]
