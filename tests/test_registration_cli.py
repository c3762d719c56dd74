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
    result = run(runner, "registration", "approve", made.client_id, "--version", "1", "--owner", "team-a", "--purpose", "reports",
                 "--scope", "read", "--audience", "https://api.example.com", "--evidence", "TICKET-9",
                 "--max-token-ttl", "120")
    assert result.exit_code == 0, result.output
    client = db.session.get(Client, made.client_id)
    assert client.status == "active" and client.approval.approved_by.startswith("cli:")
    assert client.approval.max_token_ttl == 120 and client.approval.proofing_method == "owner_attestation"
    shown = json.loads(run(runner, "registration", "show", made.client_id, "--json").output)
    assert shown["approval"]["evidence"] == "TICKET-9"


def test_approve_uses_requested_audiences_and_refuses_without_any(runner):
    from app.registration.service import register
    with_aud = register({"jwks": public_jwks(new_key()), "scope": "read",
                         "audiences": ["https://api.example.com"]}, address=None).client
    result = run(runner, "registration", "approve", with_aud.client_id, "--version", "1", "--owner", "o", "--purpose", "p",
                 "--scope", "read")
    assert result.exit_code == 0, result.output
    without = make_client(status="pending")
    result = run(runner, "registration", "approve", without.client_id, "--version", "1", "--owner", "o", "--purpose", "p",
                 "--scope", "read")
    assert result.exit_code == 1 and "audience" in result.output


@pytest.mark.parametrize("args, status, words", [
    (["registration", "deny", "{id}", "--reason", "unknown vendor"], "denied", "denied"),
    (["client", "suspend", "{id}", "--reason", "leak"], "suspended", "suspended"),
    (["client", "retire", "{id}"], "retired", "retired"),
])
def test_status_commands(runner, args, status, words):
    made = make_client(status="pending" if status == "denied" else "active")
    result = run(runner, *[a.format(id=made.client_id) for a in args])
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
    result = run(runner, "client", "rotate-secret", made.client_id)
    assert result.exit_code == 0 and "client_secret:" in result.output


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
            "--audience", "https://api.example.com"]
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
