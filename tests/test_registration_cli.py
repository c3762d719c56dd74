"""The registration, client, publisher and iat CLI groups call the same services."""
import json

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Client, InitialAccessToken

from .factories import PUBLISHER, events, make_client, new_key, public_jwks


def run(runner, *args):
    return runner.invoke(args=list(args))


def test_list_show_approve(runner, app):
    made = make_client(status="pending", scopes=("read", "write"), client_name="evil\u202eagent")
    listed = json.loads(run(runner, "registration", "list", "--status", "pending", "--json").output)
    assert [c["client_id"] for c in listed] == [made.client_id]
    text = run(runner, "registration", "show", made.client_id).output
    assert "\\u202e" in text and "\u202e" not in text and "REVIEW:" in text
    result = run(runner, "registration", "approve", made.client_id, "--version", "1", "--owner", "team-a", "--purpose", "reports",
                 "--scope", "read", "--audience", "https://api.example.com", "--assurance", "1",
                 "--proofing-method", "in_person", "--evidence", "TICKET-9", "--expires", "2099-01-31",
                 "--max-token-ttl", "120")
    assert result.exit_code == 1 and "three years" in result.output
    args = ["registration", "approve", made.client_id, "--version", "1", "--owner", "team-a", "--purpose", "reports",
            "--scope", "read", "--audience", "https://api.example.com", "--evidence", "TICKET-9",
            "--max-token-ttl", "120"]
    result = run(runner, *args)  # no silent default proofing method
    assert result.exit_code == 2 and "--proofing-method" in result.output
    result = run(runner, *args, "--proofing-method", "video_call")
    assert result.exit_code == 0, result.output
    client = db.session.get(Client, made.client_id)
    assert client.status == "active" and client.approval.approved_by.startswith("cli:")
    assert client.approval.max_token_ttl == 120 and client.approval.proofing_method == "video_call"
    shown = json.loads(run(runner, "registration", "show", made.client_id, "--json").output)
    assert shown["approval"]["evidence"] == "TICKET-9"


def test_approve_uses_requested_audiences_and_refuses_without_any(runner):
    from app.registration.service import register
    with_aud = register({"jwks": public_jwks(new_key()), "scope": "read",
                         "audiences": ["https://api.example.com"]}, address=None).client
    result = run(runner, "registration", "approve", with_aud.client_id, "--version", "1", "--owner", "o", "--purpose", "p",
                 "--scope", "read", "--proofing-method", "owner_attestation")
    assert result.exit_code == 0, result.output
    without = make_client(status="pending")
    result = run(runner, "registration", "approve", without.client_id, "--version", "1", "--owner", "o", "--purpose", "p",
                 "--scope", "read", "--proofing-method", "owner_attestation")
    assert result.exit_code == 1 and "audience" in result.output


@pytest.mark.parametrize("args, status, words", [
    (["registration", "deny", "{id}", "--reason", "unknown vendor"], "denied", "denied"),
    (["client", "suspend", "{id}", "--reason", "leak"], "suspended", "suspended"),
    (["client", "retire", "{id}"], "retired", "retired"),
])
def test_status_commands(runner, args, status, words):
    made = make_client(status="pending" if status == "denied" else "active")
    result = run(runner, *[a.format(id=made.client_id) for a in args], "--yes")
    assert result.exit_code == 0 and words in result.output, result.output
    db.session.expire_all()
    assert db.session.get(Client, made.client_id).status == status


def test_reactivate_and_refusals_exit_1(runner):
    made = make_client(status="suspended")
    assert run(runner, "client", "reactivate", made.client_id).exit_code == 0
    again = run(runner, "client", "reactivate", made.client_id)
    assert again.exit_code == 1 and "only a suspended client" in again.output
    assert run(runner, "client", "suspend", "nope").exit_code == 1


def test_rotate_secret_shows_it_once(runner):
    made = make_client(auth_method="client_secret_post")
    result = run(runner, "client", "rotate-secret", made.client_id, "--yes")
    assert result.exit_code == 0 and "client_secret:" in result.output
    assert "previous secret valid until: 20" in result.output


def test_publisher_commands(runner, tmp_path):
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps(public_jwks(new_key())))
    result = run(runner, "publisher", "add", PUBLISHER, "--jwks", str(jwks_file), "--assurance", "2")
    assert result.exit_code == 0 and "ES256" in result.output, result.output
    listed = json.loads(run(runner, "publisher", "list", "--json").output)
    assert listed[0]["issuer"] == PUBLISHER and listed[0]["assurance_level"] == 2
    private = tmp_path / "private.json"
    private.write_text(json.dumps({"keys": [new_key().as_dict(private=True)]}))
    refused = run(runner, "publisher", "add", "https://other.example", "--jwks", str(private))
    assert refused.exit_code == 1 and "private" in refused.output
    assert run(runner, "publisher", "remove", PUBLISHER).exit_code == 0
    assert json.loads(run(runner, "publisher", "list", "--json").output) == []


def test_iat_commands(runner):
    result = run(runner, "iat", "create", "--uses", "3", "--expires-in", "2h", "--note", "ci")
    assert result.exit_code == 0, result.output
    token = result.output.split("(shown only now): ")[1].split()[0]
    row = db.session.execute(select(InitialAccessToken)).scalar_one()
    assert row.max_uses == 3 and token not in row.token_hash
    assert json.loads(run(runner, "iat", "list", "--json").output)[0]["note"] == "ci"
    assert run(runner, "iat", "revoke", str(row.id)).exit_code == 0
    assert json.loads(run(runner, "iat", "list", "--json").output)[0]["expired"] is True
    assert run(runner, "iat", "create", "--expires-in", "soon").exit_code == 1


def test_sweep(runner, app):
    from app.support import clock
    make_client(status="pending")
    clock.advance(app.config["PENDING_TTL"] + 1)
    result = run(runner, "registration", "sweep")
    assert result.exit_code == 0 and "purged 1" in result.output
    assert len(events("client.purged")) == 1


def test_approve_needs_the_reviewed_version_and_refuses_a_stale_one(runner):
    from app.registration import service
    made = make_client(status="pending")
    args = ["registration", "approve", made.client_id, "--owner", "o", "--purpose", "p", "--scope", "read",
            "--audience", "https://api.example.com", "--proofing-method", "owner_attestation"]
    missing = run(runner, *args)
    assert missing.exit_code == 2 and "--version" in missing.output
    client = db.session.get(Client, made.client_id)
    body = {**service.client_info(client), "client_name": "renamed meanwhile"}
    for name in ("status_description", "pending_expires_at"):
        body.pop(name, None)
    service.update(client, body)
    stale = run(runner, *args, "--version", "1")
    assert stale.exit_code == 1 and "changed after version 1" in stale.output and "client_name" in stale.output
    assert json.loads(run(runner, "registration", "show", made.client_id, "--json").output)["version"] == 2
    assert run(runner, *args, "--version", "2").exit_code == 0


# ---- issue 22: approval safe by default, and the life after it -----------------------------------

def approve_args(client_id, *extra):
    return ["registration", "approve", client_id, "--version", "1", "--owner", "o", "--purpose", "p",
            "--scope", "read", "--audience", "https://api.example.com", *extra]


@pytest.mark.parametrize("extra, message", [
    (["--proofing-method", "in_person"], "claims evidence"),
    (["--proofing-method", "owner_attestation", "--assurance", "2"], "level 2 needs an evidence reference"),
    (["--proofing-method", "telepathy", "--evidence", "x"], "proofing method must be one of"),
])
def test_approve_refuses_proofing_without_its_evidence(runner, extra, message):
    made = make_client(status="pending")
    result = run(runner, *approve_args(made.client_id, *extra))
    assert result.exit_code == 1 and message in result.output
    db.session.expire_all()
    assert db.session.get(Client, made.client_id).status == "pending"


@pytest.mark.parametrize("settings", [{"APPROVAL_DAYS": 40, "REVIEW_DAYS": 10}])
def test_approve_proposes_the_settings_dates(runner):
    from app.support import clock
    made = make_client(status="pending")
    assert run(runner, *approve_args(made.client_id, "--proofing-method", "owner_attestation")).exit_code == 0
    approval = db.session.get(Client, made.client_id).approval
    assert abs((approval.expires_at - clock.now()).total_seconds() - 40 * 86400) < 60
    assert abs((approval.review_at - clock.now()).total_seconds() - 10 * 86400) < 60


def test_confirm_sensitive_is_passed_to_the_service(runner, app, tmp_path):
    path = tmp_path / "scopes.toml"
    path.write_text('[levels.1]\nname = "low"\n[catalogue]\nproofing_methods = ["owner_attestation"]\n'
                    '[scopes.read]\nsensitive = true\n')
    app.config["SCOPES_FILE"] = str(path)
    made = make_client(status="pending")
    refused = run(runner, *approve_args(made.client_id, "--proofing-method", "owner_attestation"))
    assert refused.exit_code == 1 and "sensitive" in refused.output
    done = run(runner, *approve_args(made.client_id, "--proofing-method", "owner_attestation", "--confirm-sensitive"))
    assert done.exit_code == 0, done.output


@pytest.mark.parametrize("args, status", [
    (["registration", "deny", "{id}", "--reason", "unknown vendor"], "pending"),
    (["client", "suspend", "{id}", "--reason", "leak"], "active"),
    (["client", "retire", "{id}"], "active"),
    (["client", "rotate-secret", "{id}"], "active"),
])
@pytest.mark.parametrize("answer", [None, "n\n", "\n"])
def test_without_yes_the_cli_asks_and_a_no_changes_nothing(runner, args, status, answer):
    made = make_client(status=status, auth_method="client_secret_basic")
    result = runner.invoke(args=[a.format(id=made.client_id) for a in args], input=answer)
    assert result.exit_code == 1 and "Continue?" in result.output and "Aborted" in result.output
    db.session.expire_all()
    client = db.session.get(Client, made.client_id)
    assert client.status == status and client.previous_secret_hash is None
    assert [e for e in events() if e.event_type in ("client.denied", "client.suspended", "client.retired",
                                                   "client.secret_rotated")] == []


def test_the_question_names_what_will_happen_and_yes_goes_on(runner):
    made = make_client()
    result = runner.invoke(args=["client", "retire", made.client_id], input="y\n")
    assert "every token it holds is revoked" in result.output
    assert result.exit_code == 0 and "retired" in result.output


def test_reviews_renew_and_the_review_sweep(runner, app):
    from app.support import clock
    due, fine = make_client(client_name="due agent"), make_client(client_name="fine agent")
    clock.advance(20 * 86400)
    fine_renewed = run(runner, "client", "renew", fine.client_id, "--proofing-method", "video_call",
                       "--assurance", "1", "--evidence", "CALL-1")
    assert fine_renewed.exit_code == 0, fine_renewed.output
    listed = json.loads(run(runner, "client", "reviews", "--json").output)
    assert [item["client_id"] for item in listed] == [due.client_id] and listed[0]["overdue"] is False
    clock.advance(25 * 86400)  # review 15 days ago: past the 14-day grace
    assert "OVERDUE" in run(runner, "client", "reviews").output
    result = run(runner, "registration", "sweep")
    assert result.exit_code == 0 and "suspended 1 client(s) overdue for review" in result.output
    shown = json.loads(run(runner, "registration", "show", due.client_id, "--json").output)
    assert shown["status"] == "suspended" and shown["status_reason"].startswith("review overdue")
    refused = run(runner, "client", "renew", due.client_id, "--proofing-method", "in_person", "--assurance", "1")
    assert refused.exit_code == 1 and "claims evidence" in refused.output
    missing = run(runner, "client", "renew", due.client_id, "--assurance", "1")
    assert missing.exit_code == 2 and "--proofing-method" in missing.output
    renewed = run(runner, "client", "renew", due.client_id, "--proofing-method", "in_person", "--assurance", "1",
                  "--evidence", "MEET-4")
    assert renewed.exit_code == 0 and "next review" in renewed.output
    shown = json.loads(run(runner, "registration", "show", due.client_id, "--json").output)
    assert shown["approval"]["change"] == "renewed" and shown["approval"]["evidence"] == "MEET-4"
    assert run(runner, "client", "reactivate", due.client_id).exit_code == 0


def test_show_says_a_suspended_client_also_expired(runner):
    from app.support import clock
    made = make_client(status="suspended")
    clock.advance(91 * 86400)
    assert "expired 1 client(s)" in run(runner, "registration", "sweep").output
    text = run(runner, "registration", "show", made.client_id).output
    assert "status:" in text and "suspended" in text and "test suspension" in text
    assert "EXPIRED: the approval also ran out" in text and "stays suspended" in text


def test_edit_narrows_at_once_and_widening_needs_proofing(runner):
    made = make_client(scopes=("read", "write"))
    narrowed = run(runner, "client", "edit", made.client_id, "--scope", "read")
    assert narrowed.exit_code == 0 and "narrowed the approval" in narrowed.output
    refused = run(runner, "client", "edit", made.client_id, "--scope", "read write")
    assert refused.exit_code == 1 and "is a new approval" in refused.output
    widened = run(runner, "client", "edit", made.client_id, "--scope", "read write", "--proofing-method",
                  "document_check", "--evidence", "DOC-9", "--assurance", "1")
    assert widened.exit_code == 0 and "widened the approval" in widened.output
    assert len(events("client.approval_narrowed")) == len(events("client.approval_widened")) == 1
