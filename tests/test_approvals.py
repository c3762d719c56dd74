"""An approval that is safe by default (proofing chosen, evidence where it is claimed, sensitive
scopes confirmed) and its later life: the review queue, renewal, edits, the review sweep."""
from datetime import timedelta

import pytest

from app import settings as settings_module
from app.extensions import db
from app.models import Approval, Client
from app.policy import scopes as catalogue
from app.registration import approvals, lifecycle
from app.registration.lifecycle import LifecycleError
from app.support import clock

from .factories import ACTOR, events, make_client


def fresh(client_id) -> Client:
    db.session.expire_all()
    return db.session.get(Client, client_id)


def approve_with(client_id, **override):
    args = {"version": 1, "owner": "team", "purpose": "p", "scopes": ["read"],
            "audiences": ["https://api.example.com"], "max_token_ttl": 300,
            "expires_at": clock.now() + timedelta(days=90), "review_at": clock.now() + timedelta(days=30),
            "assurance_level": 1, "proofing_method": "owner_attestation", "evidence": None, "actor": "admin:a"}
    args.update(override)
    return lifecycle.approve(client_id, **args)


# ---- the catalogue's new fields ---------------------------------------------------------------

def test_the_catalogue_marks_defaults_sensitive_scopes_and_evidence_methods(scopes_file, app):
    cat = catalogue.current()
    assert cat.is_default("read") and not cat.is_default("write") and not cat.is_default("unlisted")
    assert cat.sensitive(["read", "payments:write", "other"]) == ["payments:write"]
    assert cat.description("payments:write") == "moves money" and cat.description("unlisted") == ""
    assert cat.evidence_methods == ("in_person", "document_check", "software_statement")


def test_the_shipped_catalogue_names_the_methods_that_claim_evidence(app):
    assert catalogue.current().evidence_methods == ("in_person", "document_check", "software_statement")


@pytest.mark.parametrize("extra, message", [
    ('[scopes.x]\ndefault = true\nsensitive = true\n', "both a default and sensitive"),
    ('[scopes.x]\nsensitive = "yes"\n', "sensitive must be true or false"),
    ('[scopes]\nx = 1\n', "must be a table"),
])
def test_a_malformed_catalogue_is_refused(tmp_path, extra, message):
    path = tmp_path / "bad.toml"
    path.write_text('[levels.1]\nname = "low"\n' + extra)
    with pytest.raises(ValueError, match=message):
        catalogue.load(str(path))


def test_evidence_methods_must_be_proofing_methods(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[levels.1]\nname = "low"\n[catalogue]\nproofing_methods = ["in_person"]\n'
                    'evidence_methods = ["telepathy"]\n')
    with pytest.raises(ValueError, match="telepathy"):
        catalogue.load(str(path))


# ---- evidence, proofing, sensitive scopes -------------------------------------------------------

@pytest.mark.parametrize("method, level, evidence, refused", [
    ("owner_attestation", 1, None, None),
    ("video_call", 1, "", None),
    ("in_person", 1, None, "claims evidence"),
    ("document_check", 1, "  ", "claims evidence"),
    ("owner_attestation", 2, None, "level 2 needs an evidence reference"),
    ("video_call", 3, None, "level 3 needs an evidence reference"),
    ("document_check", 2, "DOC-7", None),
    ("owner_attestation", 2, "TICKET-1", None),
    ("", 1, "x", "a proofing method is required"),
    (None, 1, "x", "a proofing method is required"),
    ("telepathy", 1, "x", "proofing method must be one of"),
])
def test_approve_needs_a_chosen_method_and_evidence_where_it_is_claimed(scopes_file, app, method, level,
                                                                       evidence, refused):
    made = make_client(status="pending")
    if refused is None:
        approval = approve_with(made.client_id, proofing_method=method, assurance_level=level, evidence=evidence)
        assert approval.evidence == (evidence.strip() or None if evidence else None)
        assert fresh(made.client_id).status == "active"
        return
    with pytest.raises(LifecycleError, match=refused):
        approve_with(made.client_id, proofing_method=method, assurance_level=level, evidence=evidence)
    db.session.rollback()
    assert fresh(made.client_id).status == "pending" and events("client.approved") == []


@pytest.mark.parametrize("settings", [{"EVIDENCE_REQUIRED_FROM_LEVEL": 3}])
def test_the_evidence_threshold_is_a_setting(scopes_file, app):
    made = make_client(status="pending")
    approve_with(made.client_id, assurance_level=2)  # below the threshold, a method without evidence
    other = make_client(status="pending")
    with pytest.raises(LifecycleError, match="from level 3 on"):
        approve_with(other.client_id, assurance_level=3)


@pytest.mark.parametrize("settings", [{"EVIDENCE_REQUIRED_FROM_LEVEL": 0}])
def test_a_threshold_of_0_leaves_evidence_to_the_methods(scopes_file, app):
    made = make_client(status="pending")
    approve_with(made.client_id, assurance_level=3)
    other = make_client(status="pending")
    with pytest.raises(LifecycleError, match="claims evidence"):
        approve_with(other.client_id, assurance_level=3, proofing_method="in_person")


def test_a_sensitive_scope_needs_the_approvers_confirmation(scopes_file, app):
    made = make_client(status="pending", scopes=("read", "payments:write"))
    args = {"scopes": ["read", "payments:write"], "assurance_level": 2, "evidence": "DOC-1",
            "proofing_method": "document_check"}
    with pytest.raises(LifecycleError, match="payments:write are sensitive: confirm"):
        approve_with(made.client_id, **args)
    db.session.rollback()
    assert fresh(made.client_id).status == "pending"
    approval = approve_with(made.client_id, **args, sensitive_confirmed=True)
    assert approval.scopes == ["read", "payments:write"]


# ---- the review queue --------------------------------------------------------------------------

def test_the_review_queue_holds_what_is_due_or_soon_due_the_newest_first(app):
    make_client(client_name="overdue")                  # review in 30 days (the factory)
    clock.advance(10 * 86400)
    make_client(client_name="soon")                     # review in 30 days from here
    clock.advance(25 * 86400)                           # overdue: 5 days ago; soon: in 5 days
    later = make_client(client_name="later")            # review in 30 days: outside the window
    make_client(status="pending")
    gone = make_client(client_name="gone")
    lifecycle.retire(gone.client_id, actor=ACTOR)
    clock.advance(20 * 86400)                           # gone's review would be 10 days out
    due = approvals.reviews_due()
    assert [c.client_name for c in due] == ["later", "soon", "overdue"]
    clock.advance(-20 * 86400)
    assert [c.client_name for c in approvals.reviews_due()] == ["soon", "overdue"]
    assert later.client_id not in [c.client_id for c in approvals.reviews_due()]


@pytest.mark.parametrize("settings", [{"REVIEW_WINDOW_DAYS": 0}])
def test_the_review_window_is_a_setting(app):
    made = make_client()
    clock.advance(29 * 86400)
    assert approvals.reviews_due() == []
    clock.advance(86400 + 1)
    assert [c.client_id for c in approvals.reviews_due()] == [made.client_id]


# ---- renewal ------------------------------------------------------------------------------------

def test_renew_records_the_proofing_again_and_the_next_review(app):
    made = make_client()
    old = fresh(made.client_id).approval
    clock.advance(31 * 86400)
    review = clock.now() + timedelta(days=30)
    new = approvals.renew(made.client_id, proofing_method="video_call", evidence="CALL-3", assurance_level=1,
                          review_at=review, actor="admin:bob")
    client = fresh(made.client_id)
    assert client.approval_id == new.id != old.id and client.status == "active"
    assert (new.change, new.supersedes_id, new.proofed_by, new.approved_by) == ("renewed", old.id, "admin:bob",
                                                                               "admin:bob")
    assert (new.proofing_method, new.evidence, new.review_at) == ("video_call", "CALL-3", review)
    assert (new.scopes, new.audiences, new.expires_at, new.owner) == (old.scopes, old.audiences, old.expires_at,
                                                                      old.owner)
    assert abs(new.approved_at - clock.now()) < timedelta(seconds=5)
    [event] = events("client.renewed")
    assert event.actor == "admin:bob" and event.data["supersedes"] == old.id
    assert event.data["before"]["proofing_method"] == "in_person"
    assert event.data["after"]["proofing_method"] == "video_call"
    assert event.data["after"]["review_at"] == review.isoformat()
    assert db.session.get(Approval, old.id) is not None  # the record of the first proofing stays
    assert approvals.reviews_due() == []


@pytest.mark.parametrize("change, message", [
    ({"proofing_method": ""}, "a proofing method is required"),
    ({"proofing_method": "in_person", "evidence": None}, "claims evidence"),
    ({"assurance_level": 2, "evidence": None}, "level 2 needs an evidence reference"),
    ({"assurance_level": 9}, "assurance level must be one of"),
    ({"review_at": "past"}, "review date must be in the future"),
    ({"review_at": "after expiry"}, "not after the expiry date"),
])
def test_renewal_refusals_change_nothing(app, change, message):
    made = make_client()
    before = fresh(made.client_id).approval_id
    args = {"proofing_method": "video_call", "evidence": "CALL-1", "assurance_level": 1,
            "review_at": clock.now() + timedelta(days=10), "actor": "admin:a"}
    args.update(change)
    if args["review_at"] == "past":
        args["review_at"] = clock.now() - timedelta(days=1)
    elif args["review_at"] == "after expiry":
        args["review_at"] = clock.now() + timedelta(days=200)
    with pytest.raises(LifecycleError, match=message):
        approvals.renew(made.client_id, **args)
    db.session.rollback()
    assert fresh(made.client_id).approval_id == before and events("client.renewed") == []


@pytest.mark.parametrize("status, message", [("pending", "only a active or suspended client"),
                                              ("retired", "only a active or suspended client"),
                                              ("expired", "only a active or suspended client")])
def test_only_an_approved_client_can_be_renewed(app, status, message):
    made = make_client(status=status)
    with pytest.raises(LifecycleError, match=message):
        approvals.renew(made.client_id, proofing_method="video_call", evidence="x", assurance_level=1,
                        review_at=clock.now() + timedelta(days=1), actor="admin:a")


# ---- the review sweep --------------------------------------------------------------------------

def test_the_sweep_suspends_a_client_unrenewed_past_its_grace_period(app):
    made = make_client()
    renewed = make_client()
    clock.advance((30 + 13) * 86400)  # review 30 days out, grace 14: not yet
    assert approvals.suspend_overdue_reviews() == 0 and fresh(made.client_id).status == "active"
    approvals.renew(renewed.client_id, proofing_method="video_call", evidence="CALL-1", assurance_level=1,
                    review_at=clock.now() + timedelta(days=30), actor="admin:a")
    clock.advance(2 * 86400)
    assert approvals.suspend_overdue_reviews() == 1
    client = fresh(made.client_id)
    assert client.status == "suspended" and client.status_reason.startswith("review overdue: due on")
    assert "14-day grace period" in client.status_reason and client.tokens_not_before is not None
    [event] = events("client.suspended", client_id=made.client_id)
    assert event.actor == "system" and event.data["cause"] == "review_overdue"
    assert fresh(renewed.client_id).status == "active"
    assert approvals.suspend_overdue_reviews() == 0  # once
    with pytest.raises(LifecycleError, match="renew the approval first"):
        lifecycle.reactivate(made.client_id, actor="admin:a")
    db.session.rollback()
    approvals.renew(made.client_id, proofing_method="video_call", evidence="CALL-2", assurance_level=1,
                    review_at=clock.now() + timedelta(days=30), actor="admin:a")
    assert fresh(made.client_id).status == "suspended"  # renewal changes no status
    lifecycle.reactivate(made.client_id, actor="admin:a")
    assert fresh(made.client_id).status == "active"


@pytest.mark.parametrize("settings", [{"REVIEW_GRACE_DAYS": 0}])
def test_the_grace_period_is_a_setting(app):
    made = make_client()
    clock.advance(30 * 86400 + 1)
    assert approvals.suspend_overdue_reviews() == 1 and fresh(made.client_id).status == "suspended"


def test_the_expiry_sweep_keeps_a_suspension_and_its_reason(app):
    suspended, active = make_client(status="suspended"), make_client()
    clock.advance(91 * 86400)
    assert lifecycle.expire_due() == 2
    kept, expired = fresh(suspended.client_id), fresh(active.client_id)
    assert (kept.status, kept.status_reason) == ("suspended", "test suspension")
    assert kept.approval_expired_at is not None and expired.approval_expired_at is not None
    assert expired.status == "expired" and expired.status_reason.startswith("approval expired on")
    retired = make_client(status="retired")
    assert lifecycle.expire_due() == 0 and fresh(retired.client_id).status_reason == "test retirement"
    assert sorted(e.data["status_kept"] or "" for e in events("client.expired")) == ["", "suspended"]


# ---- edits --------------------------------------------------------------------------------------

def test_narrowing_takes_effect_at_once(app, new_agent):
    made = make_client(auth_method="client_secret_basic", scopes=("read", "write"),
                       audiences=("https://api.example.com", "https://b.example.com"))
    agent = new_agent(made)
    assert agent.token(scope="write").status_code == 200
    old = fresh(made.client_id).approval
    new = approvals.edit(made.client_id, scopes=["read"], audiences=["https://api.example.com"],
                         max_token_ttl=60, actor="admin:bob")
    assert (new.change, new.supersedes_id, new.scopes, new.max_token_ttl) == ("narrowed", old.id, ["read"], 60)
    assert (new.proofed_by, new.proofing_method, new.approved_by) == (old.proofed_by, old.proofing_method,
                                                                      "admin:bob")
    client = fresh(made.client_id)
    assert client.status == "active" and client.tokens_not_before is not None
    refused = agent.token(scope="write")
    assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_scope"
    assert agent.token(scope="read").status_code == 200
    [event] = events("client.approval_narrowed")
    assert event.data["before"]["scopes"] == ["read", "write"] and event.data["after"]["scopes"] == ["read"]
    assert event.data["before"]["max_token_ttl"] == 300 and event.data["after"]["max_token_ttl"] == 60
    assert event.data["widened"] == []


def test_widening_is_a_new_approval_with_its_proofing(scopes_file, app):
    made = make_client(status="pending", scopes=("read", "write", "payments:write"))
    approve_with(made.client_id, scopes=["read"])
    with pytest.raises(LifecycleError, match=r"widening \(scopes, max_token_ttl\) is a new approval"):
        approvals.edit(made.client_id, scopes=["read", "write"], max_token_ttl=600, actor="admin:a")
    db.session.rollback()
    with pytest.raises(LifecycleError, match="claims evidence"):
        approvals.edit(made.client_id, scopes=["read", "write"], proofing_method="in_person",
                       assurance_level=1, actor="admin:a")
    db.session.rollback()
    with pytest.raises(LifecycleError, match="payments:write are sensitive"):
        approvals.edit(made.client_id, scopes=["read", "payments:write"], proofing_method="document_check",
                       evidence="DOC-2", assurance_level=2, actor="admin:a")
    db.session.rollback()
    with pytest.raises(LifecycleError, match="need assurance level 2"):
        approvals.edit(made.client_id, scopes=["read", "payments:write"], proofing_method="document_check",
                       evidence="DOC-2", assurance_level=1, sensitive_confirmed=True, actor="admin:a")
    db.session.rollback()
    assert fresh(made.client_id).approval.scopes == ["read"] and events("client.approval_widened") == []
    new = approvals.edit(made.client_id, scopes=["read", "payments:write"], proofing_method="document_check",
                         evidence="DOC-2", assurance_level=2, sensitive_confirmed=True, actor="admin:bob")
    assert (new.change, new.proofed_by, new.evidence, new.assurance_level) == ("widened", "admin:bob", "DOC-2", 2)
    assert fresh(made.client_id).tokens_not_before is None  # widening ends no token
    [event] = events("client.approval_widened")
    assert event.data["widened"] == ["scopes"]
    assert event.data["before"]["scopes"] == ["read"] and event.data["after"]["evidence"] == "DOC-2"


@pytest.mark.parametrize("change, message", [
    ({}, "nothing was changed"),
    ({"scopes": ["read", "admin"]}, "scopes the client did not request: admin"),
    ({"scopes": []}, "at least one scope"),
    ({"audiences": ["not a uri"]}, "is not an absolute URI"),
    ({"max_token_ttl": 0}, "max token lifetime"),
    ({"expires_at": "past"}, "must be in the future"),
])
def test_edit_refusals_change_nothing(app, change, message):
    made = make_client(scopes=("read",))
    before = fresh(made.client_id).approval_id
    if change.get("expires_at") == "past":
        change["expires_at"] = clock.now() - timedelta(days=1)
    with pytest.raises(LifecycleError, match=message):
        approvals.edit(made.client_id, actor="admin:a", proofing_method="video_call", evidence="x",
                       assurance_level=1, **change)
    db.session.rollback()
    assert fresh(made.client_id).approval_id == before
    assert events("client.approval_narrowed") == events("client.approval_widened") == []


def test_an_earlier_expiry_is_narrowing_and_pulls_the_review_in(app):
    made = make_client()
    expires = clock.now() + timedelta(days=10)
    new = approvals.edit(made.client_id, expires_at=expires, actor="admin:a")
    assert new.change == "narrowed" and new.expires_at == expires and new.review_at == expires


# ---- settings -----------------------------------------------------------------------------------

@pytest.mark.parametrize("environ, message", [
    ({"OSTIARY_REVIEW_DAYS": "100"}, "REVIEW_DAYS must be at least 1 and at most"),
    ({"OSTIARY_REVIEW_DAYS": "0"}, "REVIEW_DAYS must be at least 1"),
    ({"OSTIARY_APPROVAL_DAYS": "2000"}, "three years"),
    ({"OSTIARY_SECRET_ROTATION_GRACE": "-1"}, "SECRET_ROTATION_GRACE must be a whole number"),
    ({"OSTIARY_REVIEW_GRACE_DAYS": "soon"}, "is not a valid int"),
    ({"OSTIARY_EVIDENCE_REQUIRED_FROM_LEVEL": "-2"}, "EVIDENCE_REQUIRED_FROM_LEVEL must be a whole number"),
])
def test_approval_settings_are_checked(environ, message):
    with pytest.raises(settings_module.SettingsError, match=message):
        settings_module.load(environ=environ)


def test_approval_settings_defaults():
    values = settings_module.load(environ={})
    assert (values["APPROVAL_DAYS"], values["REVIEW_DAYS"], values["REVIEW_WINDOW_DAYS"],
            values["REVIEW_GRACE_DAYS"], values["EVIDENCE_REQUIRED_FROM_LEVEL"],
            values["SECRET_ROTATION_GRACE"]) == (90, 30, 14, 14, 2, 86400)
