"""The approval lifecycle: every transition, every refusal, each audited in its transaction."""
from datetime import timedelta

import pytest

from app.extensions import db
from app.models import Client, IssuedToken
from app.registration import lifecycle
from app.registration.lifecycle import LifecycleError
from app.support import clock

from .factories import approve, events, make_client, new_key, public_jwks


def status(client_id):
    db.session.expire_all()
    return db.session.get(Client, client_id).status


def test_approve_records_who_how_and_what(app):
    made = make_client(status="pending", scopes=("read", "write"))
    approval = approve(made.client_id, scopes=("read",), assurance_level=2, proofing_method="document_check")
    client = db.session.get(Client, made.client_id)
    assert client.status == "active" and client.approval.id == approval.id
    assert (approval.owner, approval.scopes, approval.proofed_by, approval.approved_by) == (
        "team-agents", ["read"], "admin:factory", "admin:factory")
    assert approval.assurance_level == 2 and approval.evidence == "ticket-1"
    assert client.pending_expires_at is None
    assert events(client_id=made.client_id, only="event_type") == ["client.registered", "client.approved"]


@pytest.mark.parametrize("wanted", ["pending", "active", "denied", "suspended", "retired", "expired"])
def test_every_status_the_factory_makes(app, wanted):
    assert status(make_client(status=wanted).client_id) == wanted


def approval_args(**override):
    args = dict(version=1, owner="team", purpose="p", scopes=["read"], audiences=["https://api.example.com"],
                max_token_ttl=300, expires_at=clock.now() + timedelta(days=30),
                review_at=clock.now() + timedelta(days=10), assurance_level=1,
                proofing_method="in_person", evidence="ticket-7", actor="admin:a")
    args.update(override)
    return args


@pytest.mark.parametrize("override, message", [
    ({"owner": " "}, "owner"),
    ({"purpose": ""}, "purpose"),
    ({"scopes": []}, "at least one scope"),
    ({"scopes": ["write"]}, "did not request"),
    ({"scopes": ['bad"scope']}, "not valid scope"),
    ({"audiences": []}, "audience"),
    ({"audiences": ["https://api.example.com/#frag"]}, "fragment"),
    ({"max_token_ttl": 0}, "lifetime"),
    ({"expires_at": clock.now() - timedelta(days=1)}, "expiry"),
    ({"review_at": clock.now() + timedelta(days=60)}, "review date"),
    ({"assurance_level": 9}, "assurance level"),
    ({"proofing_method": "vibes"}, "proofing method"),
    ({"proofing_method": "software_statement"}, "without a verified software statement"),
    ({"serves": ["not a uri"]}, "resource server identifier 'not a uri' is not an absolute URI"),
    ({"serves": ["https://api.example.com/#frag"]}, "resource server identifier .* fragment"),
])
def test_approve_refuses_bad_approvals(app, override, message):
    made = make_client(status="pending")
    with pytest.raises(LifecycleError, match=message):
        lifecycle.approve(made.client_id, **approval_args(**override))
    assert status(made.client_id) == "pending"
    assert events(client_id=made.client_id, only="event_type") == ["client.registered"]


def test_scopes_above_the_assurance_level_need_more_proofing(app, tmp_path):
    scopes_file = tmp_path / "scopes.toml"
    scopes_file.write_text('[levels.1]\nname="low"\n[levels.2]\nname="high"\n'
                           '[catalogue]\nrestrict=false\ndefault_assurance=1\nproofing_methods=["in_person"]\n'
                           '[scopes."payments:write"]\nassurance=2\n')
    app.config["SCOPES_FILE"] = str(scopes_file)
    made = make_client(status="pending", scopes=("read", "payments:write"))
    with pytest.raises(LifecycleError, match="need assurance level 2"):
        lifecycle.approve(made.client_id, **approval_args(scopes=["read", "payments:write"]))
    lifecycle.approve(made.client_id, **approval_args(scopes=["read", "payments:write"], assurance_level=2))
    assert status(made.client_id) == "active"


@pytest.mark.parametrize("start, action", [
    ("active", "approve"), ("denied", "approve"), ("active", "deny"), ("pending", "suspend"),
    ("suspended", "suspend"), ("active", "reactivate"), ("denied", "reactivate"), ("retired", "retire"),
    ("expired", "reactivate"),
])
def test_transitions_that_are_not_allowed(app, start, action):
    made = make_client(status=start)
    before = events(client_id=made.client_id, only="event_type")
    calls = {"approve": lambda c: lifecycle.approve(c, **approval_args()),
             "deny": lambda c: lifecycle.deny(c, reason="r", actor="admin:a"),
             "suspend": lambda c: lifecycle.suspend(c, reason="r", actor="admin:a"),
             "reactivate": lambda c: lifecycle.reactivate(c, actor="admin:a"),
             "retire": lambda c: lifecycle.retire(c, actor="admin:a")}
    with pytest.raises(LifecycleError):
        calls[action](made.client_id)
    assert status(made.client_id) == start and events(client_id=made.client_id, only="event_type") == before


def test_unknown_client_and_missing_reasons(app):
    with pytest.raises(LifecycleError, match="no client"):
        lifecycle.suspend("nope", reason="r", actor="admin:a")
    made = make_client(status="pending")
    with pytest.raises(LifecycleError, match="reason"):
        lifecycle.deny(made.client_id, reason=" ", actor="admin:a")


def test_suspend_reactivate_and_reactivate_refused_after_expiry(app):
    made = make_client()
    lifecycle.suspend(made.client_id, reason="investigating", actor="admin:a")
    lifecycle.reactivate(made.client_id, actor="admin:a")
    assert status(made.client_id) == "active"
    lifecycle.suspend(made.client_id, reason="again", actor="admin:a")
    clock.advance(91 * 24 * 3600)
    with pytest.raises(LifecycleError, match="approval has expired"):
        lifecycle.reactivate(made.client_id, actor="admin:a")
    assert events(client_id=made.client_id, only="event_type")[-3:] == [
        "client.suspended", "client.reactivated", "client.suspended"]
    # The sweep keeps the suspension and its reason, and records the expiry beside it, once.
    assert lifecycle.expire_due() == 1 and status(made.client_id) == "suspended"
    client = db.session.get(Client, made.client_id)
    assert client.status_reason == "again" and client.approval_expired_at is not None
    assert lifecycle.expire_due() == 0
    [expired] = events("client.expired", client_id=made.client_id)
    assert expired.data["status_kept"] == "suspended"


def test_expire_due_only_touches_clients_past_their_approval(app):
    short = make_client()
    clock.advance(60 * 24 * 3600)
    other, long_ = make_client(), make_client()
    pending = make_client(status="pending")
    clock.advance(31 * 24 * 3600)  # past the first approval (90 days), not the others
    assert lifecycle.expire_due(client_id=other.client_id) == 0
    assert lifecycle.expire_due(client_id=short.client_id) == 1
    assert status(short.client_id) == "expired"
    assert lifecycle.expire_due() == 0
    assert status(long_.client_id) == "active" and status(pending.client_id) == "pending"
    assert "client.expired" in events(client_id=short.client_id, only="event_type")


def test_retire_revokes_every_token(app):
    made = make_client()
    now = clock.now()
    db.session.add(IssuedToken(jti="j1", client_id=made.client_id, subject=made.client_id, scope="read",
                               audience=[], grant_type="client_credentials", issued_at=now,
                               expires_at=now + timedelta(minutes=5)))
    db.session.commit()
    lifecycle.retire(made.client_id, actor="admin:a", reason="decommissioned")
    assert db.session.get(IssuedToken, "j1").revoked_at is not None
    [event] = events("client.retired")
    assert event.data == {"from": "active", "tokens_revoked": 1} and event.reason == "decommissioned"


def test_rotate_secret(app):
    from app.support import hashing
    made = make_client(auth_method="client_secret_basic")
    secret, expires_at, _ = lifecycle.rotate_secret(made.client_id, actor="admin:a")
    client = db.session.get(Client, made.client_id)
    assert hashing.verify(secret, client.secret_hash) and not hashing.verify(made.client_secret, client.secret_hash)
    assert expires_at > clock.now() and secret not in str(client.client_metadata)
    assert "client.secret_rotated" in events(client_id=made.client_id, only="event_type")
    with pytest.raises(LifecycleError, match="private_key_jwt"):
        lifecycle.rotate_secret(make_client().client_id, actor="admin:a")


def test_purge_stale_pending(app):
    stale = make_client(status="pending")
    clock.advance(app.config["PENDING_TTL"] + 1)
    fresh = make_client(status="pending")
    active = make_client()
    assert lifecycle.purge_stale_pending() == 1
    assert db.session.get(Client, stale.client_id) is None
    assert status(fresh.client_id) == "pending" and status(active.client_id) == "active"
    [purged] = events("client.purged")
    assert purged.client_id == stale.client_id and purged.actor == "system"


def _update_metadata(client_id, **changes):
    """The client changes its registration (RFC 7592) between review and approval."""
    from app.registration import service
    client = db.session.get(Client, client_id)
    body = {**service.client_info(client), **changes}
    body.pop("status_description", None)
    body.pop("pending_expires_at", None)
    service.update(client, body)


@pytest.mark.parametrize("changes, named", [
    ({"client_name": "renamed"}, "client_name"),
    ({"jwks": public_jwks(new_key("k9"))}, "jwks"),
    ({"scope": "read"}, "scope"),
])
def test_an_approval_of_a_version_no_longer_current_is_refused_naming_the_change(app, changes, named):
    made = make_client(status="pending", scopes=("read", "write"))
    reviewed = db.session.get(Client, made.client_id).version
    _update_metadata(made.client_id, **changes)
    with pytest.raises(LifecycleError, match=rf"version {reviewed} .*now version {reviewed + 1}.*{named}"):
        lifecycle.approve(made.client_id, **approval_args(version=reviewed))
    assert status(made.client_id) == "pending"
    assert events(client_id=made.client_id, only="event_type") == ["client.registered", "client.updated"]
    lifecycle.approve(made.client_id, **approval_args(version=reviewed + 1))
    assert status(made.client_id) == "active"


def test_an_approval_records_the_version_it_approved(app):
    made = make_client(status="pending")
    _update_metadata(made.client_id, client_name="second look")
    lifecycle.approve(made.client_id, **approval_args(version=2))
    [approved] = events("client.approved")
    assert approved.data["version"] == 2


@pytest.mark.parametrize("change", ["suspend", "expire", "retire"])
def test_leaving_active_sets_the_tokens_not_before(app, change):
    made = make_client(max_token_ttl=300)
    assert db.session.get(Client, made.client_id).tokens_not_before is None
    before = clock.now()
    if change == "suspend":
        lifecycle.suspend(made.client_id, reason="incident", actor="admin:a")
    elif change == "retire":
        lifecycle.retire(made.client_id, actor="admin:a")
    else:
        clock.advance(91 * 24 * 3600)
        lifecycle.expire_due()
    db.session.expire_all()
    assert db.session.get(Client, made.client_id).tokens_not_before >= before
