"""Console pages over clients: pending queue, detail, proofing and approval, inventory, actions."""
import re
from datetime import timedelta

import pytest

from app.extensions import db
from app.models import Client, IssuedToken
from app.support import clock

from .console_helpers import Console, csrf_token, unlabelled
from .factories import events, make_client

SCRIPT = "<script>alert(1)</script>"


@pytest.fixture
def console(client):
    console = Console(client).create_admin()
    assert console.login().status_code == 303
    return console


@pytest.fixture
def scopes_file(tmp_path, settings):
    path = tmp_path / "scopes.toml"
    path.write_text("""
[levels.1]
name = "low"
[levels.2]
name = "substantial"
[levels.3]
name = "high"
[catalogue]
default_assurance = 1
proofing_methods = ["in_person", "document_check", "software_statement"]
[scopes."payments:write"]
assurance = 3
""")
    settings["SCOPES_FILE"] = str(path)
    return path


def status_of(client_id):
    db.session.expire_all()
    return db.session.get(Client, client_id).status


def approval_data(**overrides):
    today = clock.now().date()
    data = {"assurance_level": "1", "version": "1", "proofing_method": "in_person", "evidence": "TICKET-42",
            "owner": "team-agents", "purpose": "nightly reports", "scopes": ["read"],
            "audiences": "https://api.example.com", "max_token_ttl": "300",
            "expires_at": (today + timedelta(days=90)).isoformat(),
            "review_at": (today + timedelta(days=30)).isoformat()}
    data.update(overrides)
    return data


def test_pending_queue_groups_by_provenance_and_denies_a_group(console):
    flood = [make_client(status="pending", address="198.51.100.7", software_id="flooder").client_id
             for _ in range(3)]
    other = make_client(status="pending", address="192.0.2.9", client_name="lonely agent").client_id
    page = console.client.get("/console/pending").get_data(as_text=True)
    assert "claims software flooder, from 198.51.100.7" in page and "— 3 registrations" in page
    assert "lonely agent" in page and "— 1 registration\n" in page
    assert page.index("flooder") < page.index("lonely agent")  # the largest group first
    assert "Deny all 3 registrations in this group…" in page and "Deny this registration…" in page
    confirm = console.client.post("/console/bulk/confirm", data={
        "csrf_token": csrf_token(page), "action": "deny", "back": "/console/pending", "client_id": flood})
    assert confirm.status_code == 200 and [status_of(c) for c in flood] == ["pending"] * 3
    html = confirm.get_data(as_text=True)
    response = console.client.post("/console/bulk", data={
        "csrf_token": csrf_token(html), "action": "deny", "client_ids": " ".join(flood), "back": "/console/pending",
        "reason": "registration flood"})
    assert response.status_code == 303
    assert [status_of(c) for c in flood] == ["denied"] * 3
    assert status_of(other) == "pending"
    assert events("client.denied", only="actor") == ["admin:alice"] * 3
    assert "Denied 3 clients." in console.client.get("/console/pending").get_data(as_text=True)


def test_deny_group_without_reason_changes_nothing(console):
    made = make_client(status="pending").client_id
    page = console.client.get("/console/pending").get_data(as_text=True)
    response = console.client.post("/console/bulk", data={"csrf_token": csrf_token(page), "action": "deny",
                                                          "client_ids": made})
    assert response.status_code == 400 and status_of(made) == "pending"


def test_client_metadata_is_escaped_and_links_are_inert_unless_https(console):
    made = make_client(status="pending", client_name=SCRIPT, client_uri="https://agent.example/",
                       logo_uri="https://agent.example/logo.png", contacts=[SCRIPT])
    page = console.client.get(f"/console/clients/{made.client_id}").get_data(as_text=True)
    assert SCRIPT not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert '<a href="https://agent.example/" rel="noopener noreferrer nofollow">' in page
    assert "<img" not in page  # the logo is never hot-linked


@pytest.mark.parametrize("path", ["/console/pending", "/console/inventory", "/console/audit"])
def test_client_metadata_is_escaped_on_every_list(console, path):
    make_client(status="pending", client_name=SCRIPT, contacts=[SCRIPT])
    assert SCRIPT not in console.client.get(path).get_data(as_text=True)


def test_invisible_characters_in_names_are_shown_escaped(console):
    made = make_client(status="pending", client_name="trusted\u202eagent")
    page = console.client.get(f"/console/clients/{made.client_id}").get_data(as_text=True)
    assert "trusted\\u202eagent" in page and "\u202e" not in page


def test_detail_shows_keys_and_provenance(console):
    made = make_client(status="pending")
    page = console.client.get(f"/console/clients/{made.client_id}").get_data(as_text=True)
    assert made.private_key.thumbprint() in page
    assert "None: the registration is self-asserted" in page
    assert "<legend>Approved scopes</legend>" in page and '<label for="scopes-0">read</label>' in page
    labels = ["Proofing method", "Evidence reference", "Owner", "Purpose", "Audiences", "Maximum token lifetime",
              "Approval expires on", "Review on", "Assurance level of this proofing", "Reason for denying"]
    assert [label for label in labels if not re.search(rf'<label for="[\w-]+">{label}', page)] == []


def test_approve_records_the_proofing(console):
    made = make_client(status="pending", scopes=("read",))
    page = console.client.get(f"/console/clients/{made.client_id}").get_data(as_text=True)
    response = console.client.post(f"/console/clients/{made.client_id}/approve",
                                   data={"csrf_token": csrf_token(page), **approval_data()})
    assert response.status_code == 303, response.get_data(as_text=True)
    assert status_of(made.client_id) == "active"
    approval = db.session.get(Client, made.client_id).approval
    assert (approval.owner, approval.scopes, approval.audiences, approval.evidence, approval.proofed_by) == (
        "team-agents", ["read"], ["https://api.example.com"], "TICKET-42", "admin:alice")
    assert events("client.approved", only="actor") == ["admin:alice"]


def test_scopes_above_the_assurance_level_are_not_offered_and_refused(scopes_file, console):
    made = make_client(status="pending", scopes=("read", "payments:write"))
    url = f"/console/clients/{made.client_id}"
    low = console.client.get(url + "?level=1").get_data(as_text=True)
    assert 'value="read"' in low and 'value="payments:write"' not in low
    assert "payments:write (needs level 3)" in low
    high = console.client.get(url + "?level=3").get_data(as_text=True)
    assert 'value="payments:write"' in high
    response = console.client.post(url + "/approve", data={
        "csrf_token": csrf_token(low), **approval_data(scopes=["read", "payments:write"])})
    assert response.status_code == 400
    assert status_of(made.client_id) == "pending"
    response = console.client.post(url + "/approve", data={
        "csrf_token": csrf_token(high),
        **approval_data(scopes=["read", "payments:write"], assurance_level="3")})
    assert response.status_code == 303 and status_of(made.client_id) == "active"


@pytest.mark.parametrize("overrides,message", [
    ({"owner": ""}, "This field is required."),
    ({"review_at": "2001-01-01"}, "the review date must be in the future"),
    ({"audiences": "not a uri"}, "is not an absolute URI"),
    ({"proofing_method": "software_statement"}, "came without a verified software statement"),
    ({"proofing_method": "telepathy"}, "Not a valid choice"),
    ({"scopes": ["write"]}, "not a valid choice"),
])
def test_approval_refusals_explain_and_change_nothing(console, overrides, message):
    made = make_client(status="pending")
    page = console.client.get(f"/console/clients/{made.client_id}").get_data(as_text=True)
    response = console.client.post(f"/console/clients/{made.client_id}/approve",
                                   data={"csrf_token": csrf_token(page), **approval_data(**overrides)})
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert status_of(made.client_id) == "pending"


def test_approve_without_csrf_token_is_refused(console):
    made = make_client(status="pending")
    response = console.client.post(f"/console/clients/{made.client_id}/approve", data=approval_data())
    assert response.status_code == 400 and b"CSRF" in response.data
    assert status_of(made.client_id) == "pending"


def test_suspend_reactivate_retire(console):
    made = make_client(status="active")
    url = f"/console/clients/{made.client_id}"
    token = csrf_token(console.client.get(url).get_data(as_text=True))
    console.client.post(url + "/suspend", data={"csrf_token": token, "reason": "leaked key", "confirmed": "yes"})
    assert status_of(made.client_id) == "suspended"
    page = console.client.get(url).get_data(as_text=True)
    assert "Suspended test agent." in page and "leaked key" in page
    console.client.post(url + "/reactivate", data={"csrf_token": token})
    assert status_of(made.client_id) == "active"
    console.client.post(url + "/retire", data={"csrf_token": token, "confirmed": "yes"})
    assert status_of(made.client_id) == "retired"
    assert events("client.suspended", only="actor") == ["admin:alice"]
    assert events("client.reactivated", only="actor") == ["admin:alice"]
    assert events("client.retired", only="actor") == ["admin:alice"]


def test_suspend_needs_a_reason(console):
    made = make_client(status="active")
    url = f"/console/clients/{made.client_id}"
    token = csrf_token(console.client.get(url).get_data(as_text=True))
    console.client.post(url + "/suspend", data={"csrf_token": token, "reason": ""})
    assert status_of(made.client_id) == "active"
    assert "Nothing was changed" in console.client.get(url).get_data(as_text=True)


def test_refused_transition_explains(console):
    made = make_client(status="pending")
    url = f"/console/clients/{made.client_id}"
    token = csrf_token(console.client.get(url).get_data(as_text=True))
    console.client.post(url + "/reactivate", data={"csrf_token": token})
    assert "only a suspended client can be reactivated" in console.client.get(url).get_data(as_text=True)


def test_rotate_secret_shows_it_once(console):
    made = make_client(auth_method="client_secret_basic", status="active")
    url = f"/console/clients/{made.client_id}"
    token = csrf_token(console.client.get(url).get_data(as_text=True))
    response = console.client.post(url + "/rotate-secret", data={"csrf_token": token, "confirmed": "yes"})
    secret = re.search(r'<p class="secret"><code>([^<]+)</code>', response.get_data(as_text=True)).group(1)
    assert secret != made.client_secret and response.headers["Cache-Control"] == "no-store"
    assert secret not in console.client.get(url).get_data(as_text=True)
    assert events("client.secret_rotated", only="actor") == ["admin:alice"]


def test_unknown_client_is_a_404_page(console):
    response = console.client.get("/console/clients/nope")
    assert response.status_code == 404 and b"There is no client" in response.data


def issue_token(client_id, at):
    db.session.add(IssuedToken(jti=f"jti-{at.timestamp()}", client_id=client_id, subject=client_id,
                               scope="read", audience=[], grant_type="client_credentials",
                               issued_at=at, expires_at=at + timedelta(minutes=5)))
    db.session.commit()


def test_inventory_flags_and_usage(console):
    make_client(status="active", client_name="never used agent")
    busy = make_client(status="active", client_name="busy agent").client_id
    idle = make_client(status="active", client_name="idle agent").client_id
    now = clock.now()
    issue_token(busy, now - timedelta(hours=1))
    issue_token(busy, now - timedelta(hours=2))
    issue_token(busy, now - timedelta(days=2))
    issue_token(idle, now - timedelta(days=40))
    page = console.client.get("/console/inventory").get_data(as_text=True)
    row = {name: page[page.index(name):].split("</tr>")[0] for name in ("never used agent", "busy agent",
                                                                         "idle agent")}
    assert "never used" in row["never used agent"].split("</a>", 1)[1]
    assert "<td>2</td>" in row["busy agent"] and "flag" not in row["busy agent"]
    assert "unused 30 d" in row["idle agent"]
    only_never = console.client.get("/console/inventory?flag=never_used").get_data(as_text=True)
    assert "never used agent" in only_never and "busy agent" not in only_never
    assert "idle agent" not in console.client.get("/console/inventory?unused_days=60").get_data(
        as_text=True).split("idle agent")[1].split("</tr>")[0]


def test_inventory_review_overdue_and_status_filter(console):
    make_client(status="active", client_name="reviewed agent")
    make_client(status="pending", client_name="waiting agent")
    clock.advance(31 * 86400)  # the factory's review date is 30 days out
    page = console.client.get("/console/inventory?status=active").get_data(as_text=True)
    assert "review overdue" in page and "waiting agent" not in page


def test_every_field_has_a_label_and_every_button_says_what_it_does(console):
    pending = make_client(status="pending", auth_method="client_secret_basic").client_id
    active = make_client(status="active", auth_method="client_secret_basic").client_id
    suspended = make_client(status="suspended").client_id
    pages = ["/console/pending", "/console/inventory", "/console/keys", "/console/trust", "/console/audit",
             *(f"/console/clients/{c}" for c in (pending, active, suspended))]
    for path in pages:
        assert unlabelled(console.client.get(path).get_data(as_text=True)) == ([], [], []), path
    console.post("/console/logout", page="/console/pending")
    assert unlabelled(console.client.get("/console/login").get_data(as_text=True)) == ([], [], [])


def test_an_approval_of_what_changed_after_the_page_was_opened_is_refused(console):
    """The form names the version on screen: keys swapped in meanwhile are not approved."""
    from app.registration import service

    from .factories import new_key, public_jwks
    made = make_client(status="pending")
    page = console.client.get(f"/console/clients/{made.client_id}").get_data(as_text=True)
    assert re.search(r'name="version" type="hidden" value="1"', page) or 'name="version" value="1"' in page
    client = db.session.get(Client, made.client_id)
    body = {**service.client_info(client), "jwks": public_jwks(new_key("swapped"))}
    for name in ("status_description", "pending_expires_at"):
        body.pop(name, None)
    service.update(client, body)
    response = console.client.post(f"/console/clients/{made.client_id}/approve",
                                   data={"csrf_token": csrf_token(page), **approval_data(version="1")})
    text = response.get_data(as_text=True)
    assert response.status_code == 400 and "changed after version 1 was reviewed" in text and "jwks" in text
    assert status_of(made.client_id) == "pending"
    fresh = console.client.get(f"/console/clients/{made.client_id}").get_data(as_text=True)
    response = console.client.post(f"/console/clients/{made.client_id}/approve",
                                   data={"csrf_token": csrf_token(fresh), **approval_data(version="2")})
    assert response.status_code == 303 and status_of(made.client_id) == "active"


def test_an_approval_without_a_version_is_refused(console):
    made = make_client(status="pending")
    page = console.client.get(f"/console/clients/{made.client_id}").get_data(as_text=True)
    data = approval_data()
    data.pop("version")
    response = console.client.post(f"/console/clients/{made.client_id}/approve",
                                   data={"csrf_token": csrf_token(page), **data})
    assert response.status_code == 400 and status_of(made.client_id) == "pending"
