"""Console: an approval form that decides nothing in advance and loses nothing typed; the review
queue, renewal and edits; a second step before suspend, retire, deny and rotate."""
import re
from datetime import timedelta

import pytest

from app.extensions import db
from app.models import Client
from app.support import clock

from .console_helpers import Console, csrf_token, unlabelled
from .factories import events, make_client


@pytest.fixture
def console(client):
    console = Console(client).create_admin()
    assert console.login().status_code == 303
    return console


def fresh(client_id) -> Client:
    db.session.expire_all()
    return db.session.get(Client, client_id)


def page(console, path) -> str:
    return console.client.get(path).get_data(as_text=True)


def approval_data(**overrides):
    today = clock.now().date()
    data = {"assurance_level": "1", "version": "1", "proofing_method": "video_call", "evidence": "",
            "owner": "team-agents", "purpose": "nightly reports", "scopes": ["read"],
            "audiences": "https://api.example.com", "max_token_ttl": "300",
            "expires_at": (today + timedelta(days=90)).isoformat(),
            "review_at": (today + timedelta(days=30)).isoformat()}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def checked(html: str, value: str) -> bool:
    tag = re.search(rf'<input[^>]*value="{re.escape(value)}"[^>]*>', html)
    assert tag, f"no input for {value}"
    return "checked" in tag.group(0)


# ---- the approval form ---------------------------------------------------------------------------

def test_nothing_is_decided_in_advance(scopes_file, console):
    made = make_client(status="pending", scopes=("read", "write", "payments:write"))
    html = page(console, f"/console/clients/{made.client_id}?level=2")
    method = re.search(r'<select[^>]*name="proofing_method".*?</select>', html, re.DOTALL).group(0)
    assert re.search(r'<option selected value="">', method) and method.count("selected") == 1
    assert checked(html, "read") and not checked(html, "write") and not checked(html, "payments:write")
    assert "reads the nightly reports" in html and "moves money" in html
    assert "sensitive: needs your confirmation" in html and "I confirm the sensitive scopes" in html
    assert "In person (needs an evidence reference)" in html


def test_a_publishers_client_gets_no_preselected_method_either(console):
    from app.registration.service import register

    from .factories import add_publisher, new_key, public_jwks, software_statement
    _, key = add_publisher(assurance_level=1)
    reg = register({"software_statement": software_statement(key), "jwks": public_jwks(new_key()),
                    "scope": "read"}, address=None)
    html = page(console, f"/console/clients/{reg.client.client_id}")
    method = re.search(r'<select[^>]*name="proofing_method".*?</select>', html, re.DOTALL).group(0)
    assert '<option selected value="">' in method and 'selected value="software_statement"' not in method


@pytest.mark.parametrize("settings", [{"APPROVAL_DAYS": 60, "REVIEW_DAYS": 20, "ACCESS_TOKEN_TTL": 120}])
def test_the_proposed_dates_are_the_settings_and_say_so(console):
    made = make_client(status="pending")
    html = page(console, f"/console/clients/{made.client_id}")
    today = clock.now().date()
    assert f'value="{(today + timedelta(days=60)).isoformat()}"' in html
    assert f'value="{(today + timedelta(days=20)).isoformat()}"' in html
    assert "Proposed: 60 days from today (OSTIARY_APPROVAL_DAYS)" in html
    assert "Proposed: 20 days from today (OSTIARY_REVIEW_DAYS)" in html
    assert re.search(r'name="max_token_ttl"[^>]*value="120"', html)


@pytest.mark.parametrize("overrides, message", [
    ({"proofing_method": ""}, "Choose how the client was proofed."),
    ({"proofing_method": "in_person"}, "claims evidence"),
    ({"assurance_level": "2"}, "level 2 needs an evidence reference"),
])
def test_proofing_refusals_are_shown_on_the_form(scopes_file, console, overrides, message):
    made = make_client(status="pending")
    url = f"/console/clients/{made.client_id}"
    response = console.client.post(url + "/approve", data={"csrf_token": csrf_token(page(console, url)),
                                                           **approval_data(**overrides)})
    html = response.get_data(as_text=True)
    assert response.status_code == 400 and message in html
    assert "nightly reports" in html and 'value="team-agents"' in html  # what was typed stays
    assert fresh(made.client_id).status == "pending" and events("client.approved") == []


def test_a_sensitive_scope_is_approved_only_when_confirmed(scopes_file, console):
    made = make_client(status="pending", scopes=("read", "payments:write"))
    url = f"/console/clients/{made.client_id}"
    data = approval_data(scopes=["read", "payments:write"], assurance_level="2", proofing_method="document_check",
                         evidence="DOC-1")
    response = console.client.post(url + "/approve", data={"csrf_token": csrf_token(page(console, url)), **data})
    assert response.status_code == 400 and "are sensitive: confirm" in response.get_data(as_text=True)
    assert fresh(made.client_id).status == "pending"
    response = console.client.post(url + "/approve", data={"csrf_token": csrf_token(page(console, url)), **data,
                                                           "confirm_sensitive": "y"})
    assert response.status_code == 303 and fresh(made.client_id).approval.scopes == ["read", "payments:write"]


def test_showing_other_scopes_keeps_everything_typed_and_approves_nothing(scopes_file, console):
    made = make_client(status="pending", scopes=("read", "payments:write"))
    url = f"/console/clients/{made.client_id}"
    low = page(console, url)
    assert 'value="payments:write"' not in low and "payments:write (needs level 2)" in low
    typed = approval_data(assurance_level="2", proofing_method="document_check", evidence="DOC-77",
                          owner="reports team", purpose="builds the reports", scopes=["read"],
                          max_token_ttl="600", refresh="1")
    response = console.client.post(url + "/approve", data={"csrf_token": csrf_token(low), **typed})
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and 'value="payments:write"' in html
    assert not checked(html, "payments:write") and checked(html, "read")
    assert 'value="DOC-77"' in html and 'value="reports team"' in html and "builds the reports" in html
    assert re.search(r'name="max_token_ttl"[^>]*value="600"', html)
    assert '<option selected value="document_check">' in html and '<option selected value="2">' in html
    assert fresh(made.client_id).status == "pending" and events("client.approved") == []


def test_the_refresh_button_comes_first_so_enter_never_approves(console):
    made = make_client(status="pending")
    html = page(console, f"/console/clients/{made.client_id}")
    form = html[html.index('/approve"'):]
    assert form.index('name="refresh"') < form.index("Approve this client")


# ---- confirmation before suspend, retire, deny, rotate -------------------------------------------

@pytest.mark.parametrize("action, status, data, words, after", [
    ("suspend", "active", {"reason": "leaked key"}, "gets no new token until an administrator reactivates it",
     "suspended"),
    ("retire", "active", {"reason": ""}, "it cannot be undone", "retired"),
    ("deny", "pending", {"reason": "unknown vendor"}, "can never be approved", "denied"),
    ("rotate-secret", "active", {}, "keeps working until", "active"),
])
def test_a_second_step_names_what_will_happen(console, action, status, data, words, after):
    made = make_client(status=status, auth_method="client_secret_basic")
    url = f"/console/clients/{made.client_id}"
    first = console.client.post(f"{url}/{action}", data={"csrf_token": csrf_token(page(console, url)), **data})
    html = first.get_data(as_text=True)
    assert first.status_code == 200 and words in html and "Cancel: change nothing" in html
    assert unlabelled(html)[2] == []
    client = fresh(made.client_id)
    assert client.status == status and client.previous_secret_hash is None
    assert [e for e in events() if e.event_type in ("client.suspended", "client.retired", "client.denied",
                                                   "client.secret_rotated")] == []
    hidden = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', html))
    assert hidden["confirmed"] == "yes" and all(hidden[k] == v for k, v in data.items())
    second = console.client.post(f"{url}/{action}", data={"csrf_token": csrf_token(html), **hidden})
    assert second.status_code in (200, 303)
    assert fresh(made.client_id).status == after
    if action == "rotate-secret":
        assert "The old secret keeps working until" in second.get_data(as_text=True)
        assert "the previous secret still works until" in page(console, url)


def test_the_confirmation_still_checks_the_form(console):
    made = make_client()
    url = f"/console/clients/{made.client_id}"
    response = console.client.post(url + "/suspend", data={"csrf_token": csrf_token(page(console, url)),
                                                          "reason": "", "confirmed": "yes"})
    assert response.status_code == 303 and fresh(made.client_id).status == "active"
    response = console.client.post(url + "/suspend", data={"reason": "x", "confirmed": "yes"})
    assert fresh(made.client_id).status == "active"


# ---- the review queue, renewal, edits ------------------------------------------------------------

def test_the_home_page_is_the_review_queue(console):
    due = make_client(client_name="due agent")
    clock.advance(20 * 86400)
    make_client(client_name="fresh agent")
    html = page(console, "/console/")
    assert "due agent" in html and "fresh agent" not in html and "within 14 days" in html
    clock.advance(11 * 86400)
    html = page(console, "/console/")
    assert "overdue</span> since" in html
    assert f'href="/console/clients/{due.client_id}"' in html and '<a href="/console/"' in html
    assert unlabelled(html) == ([], [], [])


def test_renew_from_the_client_page(console):
    made = make_client()
    url = f"/console/clients/{made.client_id}"
    clock.advance(31 * 86400)
    html = page(console, url)
    assert "The review was due on" in html and "Renew this approval" in html
    next_review = (clock.now().date() + timedelta(days=30)).isoformat()
    refused = console.client.post(url + "/renew", data={
        "csrf_token": csrf_token(html), "renew-assurance_level": "1", "renew-proofing_method": "in_person",
        "renew-evidence": "", "renew-review_at": next_review})
    assert refused.status_code == 400 and "claims evidence" in refused.get_data(as_text=True)
    missing = console.client.post(url + "/renew", data={
        "csrf_token": csrf_token(html), "renew-assurance_level": "1", "renew-proofing_method": "",
        "renew-review_at": next_review})
    assert missing.status_code == 400 and "Choose how the client was proofed." in missing.get_data(as_text=True)
    assert events("client.renewed") == []
    done = console.client.post(url + "/renew", data={
        "csrf_token": csrf_token(html), "renew-assurance_level": "1", "renew-proofing_method": "in_person",
        "renew-evidence": "MEET-1", "renew-review_at": next_review})
    assert done.status_code == 303
    approval = fresh(made.client_id).approval
    assert (approval.change, approval.evidence, approval.proofed_by) == ("renewed", "MEET-1", "admin:alice")
    assert approval.review_at.date().isoformat() == next_review
    assert "renewed by admin:alice" in page(console, url)


def edit_data(html, **values):
    data = {"csrf_token": csrf_token(html), "edit-audiences": "https://api.example.com",
            "edit-max_token_ttl": "300", "edit-expires_at": re.search(
                r'name="edit-expires_at"[^>]*value="([^"]+)"', html).group(1),
            "edit-assurance_level": "", "edit-proofing_method": ""}
    data.update({f"edit-{k}": v for k, v in values.items()})
    return data


def test_edit_narrows_at_once_and_widening_needs_the_proofing(console):
    made = make_client(scopes=("read", "write"))
    url = f"/console/clients/{made.client_id}"
    html = page(console, url)
    assert checked(html, "read") and checked(html, "write")  # the approval as it is
    same = console.client.post(url + "/edit", data=edit_data(html, scopes=["read", "write"]))
    assert same.status_code == 400 and "nothing was changed" in same.get_data(as_text=True)
    narrowed = console.client.post(url + "/edit", data=edit_data(html, scopes=["read"]))
    assert narrowed.status_code == 303 and fresh(made.client_id).approval.scopes == ["read"]
    assert fresh(made.client_id).tokens_not_before is not None
    html = page(console, url)
    assert "Narrowed the approval" in html and not checked(html, "write")
    widened = console.client.post(url + "/edit", data=edit_data(html, scopes=["read", "write"]))
    text = widened.get_data(as_text=True)
    assert widened.status_code == 400 and "is a new approval: record the proofing again" in text
    assert fresh(made.client_id).approval.scopes == ["read"]
    widened = console.client.post(url + "/edit", data=edit_data(
        html, scopes=["read", "write"], assurance_level="1", proofing_method="document_check", evidence="DOC-5"))
    assert widened.status_code == 303
    approval = fresh(made.client_id).approval
    assert (approval.change, approval.scopes, approval.evidence) == ("widened", ["read", "write"], "DOC-5")
    assert [len(events(t)) for t in ("client.approval_narrowed", "client.approval_widened")] == [1, 1]


def test_a_suspended_client_that_expired_shows_both(console):
    made = make_client(status="suspended")
    clock.advance(91 * 86400)
    from app.registration import lifecycle
    lifecycle.expire_due()
    html = page(console, f"/console/clients/{made.client_id}")
    assert "status-suspended" in html and "Approval expired" in html
    assert "the client stays suspended (test suspension)" in html
    assert "Renew this approval" not in html and "Save the approval" not in html  # both would be refused
