"""What a publisher signed stays signed: software statements are bearer artefacts that anyone
holding a copy can replay (RFC 7591 §2.3), so their values are pinned on the client, an
update can change them only with a new statement, and auto-approval asks more of them."""
import json

import pytest

from app.extensions import db
from app.models import Client

from .console_helpers import Console
from .factories import (
    PUBLISHER,
    Made,
    add_publisher,
    approve,
    at_once,
    count,
    events,
    new_key,
    public_jwks,
    software_statement,
)

VENDOR_KEY = new_key("vendor-agent")   # the key the vendor's statement pins
ATTACKER_KEY = new_key("attacker")


def auth(token):
    return {"Authorization": f"Bearer {token}"}


def register(client, statement, **fields):
    body = {"scope": "read", "audiences": ["https://api.example.com"], "software_statement": statement,
            **fields}
    response = client.post("/register", json=body, environ_base={"REMOTE_ADDR": "203.0.113.7"})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def update(client, info, **changes):
    """RFC 7592 PUT of the client's current metadata with ``changes`` (None: leave the field out)."""
    current = client.get(f"/register/{info['client_id']}", headers=auth(info["registration_access_token"]))
    body = {k: v for k, v in current.get_json().items() if k not in ("status_description", "pending_expires_at")}
    body.update(changes)
    body = {k: v for k, v in body.items() if v is not None}
    return client.put(f"/register/{info['client_id']}", json=body, headers=auth(info["registration_access_token"]))


def vendor_statement(app, key, **claims):
    """A statement as a vendor ships it with its software: for this server, pinning its key."""
    return software_statement(key, aud=app.config["ISSUER"], jwks=public_jwks(VENDOR_KEY), **claims)


def stored(client_id) -> Client:
    db.session.expire_all()
    return db.session.get(Client, client_id)


@pytest.mark.parametrize("changes, field", [
    ({"client_name": "Totally Acme"}, "client_name"),
    ({"software_version": "9.9"}, "software_version"),
    ({"jwks": public_jwks(ATTACKER_KEY)}, "jwks"),
    ({"jwks": None, "jwks_uri": "https://attacker.example/jwks.json"}, "jwks_uri"),
])
@pytest.mark.parametrize("status", ["pending", "active"])
def test_an_unsigned_update_cannot_replace_what_the_publisher_signed(client, app, changes, field, status):
    _, key = add_publisher()
    info = register(client, vendor_statement(app, key))
    if status == "active":
        approve(info["client_id"])
    before = stored(info["client_id"]).client_metadata
    response = update(client, info, **changes)
    body = response.get_json()
    assert response.status_code == 400 and body["error"] == "invalid_client_metadata", body
    assert field in body["error_description"] and "new statement" in body["error_description"]
    after = stored(info["client_id"])
    assert after.client_metadata == before and after.status == status and after.version == 1


def test_signed_values_left_out_of_an_update_stay(client, app):
    _, key = add_publisher()
    info = register(client, vendor_statement(app, key))
    approve(info["client_id"])
    response = update(client, info, client_name=None, jwks=None, software_version=None,
                      contacts=["ops@acme.example"])
    assert response.status_code == 200 and response.get_json()["status"] == "active", response.get_json()
    after = stored(info["client_id"])
    assert after.client_metadata["client_name"] == "Acme Agent" and after.jwks == public_jwks(VENDOR_KEY)
    assert after.version == 2 and after.client_metadata["contacts"] == ["ops@acme.example"]


def test_a_new_statement_of_the_same_publisher_changes_signed_keys_and_stays_active(client, app):
    _, key = add_publisher()
    info = register(client, vendor_statement(app, key))
    approve(info["client_id"])
    rotated = new_key("vendor-rotated")
    newer = software_statement(key, aud=app.config["ISSUER"], jwks=public_jwks(rotated), software_version="2.0")
    response = update(client, info, software_statement=newer, jwks=None)
    assert response.status_code == 200 and response.get_json()["status"] == "active", response.get_json()
    after = stored(info["client_id"])
    assert after.jwks == public_jwks(rotated) and after.software_statement == newer and after.version == 2
    assert "jwks" in after.signed_fields and "software_version" in after.signed_fields


def test_a_statement_of_another_publisher_cannot_change_them(client, app):
    _, key = add_publisher()
    _, other_key = add_publisher(issuer="https://other-publisher.example", key=new_key("other-1"))
    info = register(client, vendor_statement(app, key))
    foreign = software_statement(other_key, issuer="https://other-publisher.example",
                                 jwks=public_jwks(ATTACKER_KEY))
    response = update(client, info, software_statement=foreign, jwks=None)
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_software_statement"
    assert stored(info["client_id"]).jwks == public_jwks(VENDOR_KEY)


@pytest.mark.parametrize("change", ["jwks", "redirect_uris"])
def test_an_unsigned_key_or_redirect_change_sends_an_active_client_back_to_review(client, app, change, new_agent):
    """The statement signed no keys: the client chose them, so changing them needs a new review,
    and the tokens it had stop being valid at once."""
    _, key = add_publisher()
    info = register(client, software_statement(key), jwks=public_jwks(VENDOR_KEY))
    approve(info["client_id"])
    agent = new_agent(Made(info["client_id"], None, VENDOR_KEY, None, info["registration_access_token"]))
    token = agent.token().get_json()["access_token"]
    changes = ({"jwks": public_jwks(ATTACKER_KEY)} if change == "jwks"
               else {"redirect_uris": ["https://attacker.example/cb"]})
    response = update(client, info, **changes)
    assert response.status_code == 200 and response.get_json()["status"] == "pending", response.get_json()
    assert agent.token().get_json()["error"] in ("unauthorized_client", "invalid_client")
    assert stored(info["client_id"]).tokens_not_before is not None
    approve(info["client_id"])
    service = new_agent(auth_method="client_secret_basic", serves=("https://api.example.com",))
    assert service.introspect(token).get_json() == {"active": False}


def test_registration_and_audit_say_which_values_are_signed(client, app):
    _, key = add_publisher()
    info = register(client, vendor_statement(app, key), client_name="plain name")
    client_row = stored(info["client_id"])
    assert client_row.signed_fields == ["client_name", "jwks", "software_id", "software_version"]
    [event] = events("client.registered")
    assert event.data["signed_fields"] == client_row.signed_fields
    assert event.data["statement_sha256"] == client_row.statement_digest
    admin = Console(client).create_admin()
    admin.login()
    page = client.get(f"/console/clients/{info['client_id']}").get_data(as_text=True)
    for name in client_row.signed_fields:
        assert f'<dt>{name} <span class="ok">signed</span></dt>' in page
    assert '<dt>audiences <span class="ok">signed</span>' not in page and "<dt>audiences</dt>" in page


# -- replay and swap, end to end -------------------------------------------------------------

@pytest.mark.parametrize("settings", [{"AUTO_APPROVE": True}, {"AUTO_APPROVE": False}])
def test_a_replayed_statement_cannot_be_turned_into_an_active_client_with_the_attackers_key(
        client, app, settings, new_agent):
    """The attacker holds a copy of the vendor's statement (it ships with the software), not the
    vendor's private key. Registering with the copy gives at most a client pinned to the vendor's
    key; swapping in the attacker's key is refused; no token is ever issued for the attacker's key."""
    _, key = add_publisher(assurance_level=2)
    copy = vendor_statement(app, key)
    vendor = register(client, copy)
    replayed = register(client, copy, jwks=public_jwks(ATTACKER_KEY))  # its own jwks loses to the signed one
    expected = "active" if settings["AUTO_APPROVE"] else "pending"
    assert vendor["status"] == replayed["status"] == expected
    if not settings["AUTO_APPROVE"]:
        approve(replayed["client_id"])
    assert stored(replayed["client_id"]).jwks == public_jwks(VENDOR_KEY)
    swap = update(client, replayed, jwks=public_jwks(ATTACKER_KEY))
    assert swap.status_code == 400 and swap.get_json()["error"] == "invalid_client_metadata"
    attacker = new_agent(Made(replayed["client_id"], None, ATTACKER_KEY, None,
                              replayed["registration_access_token"]))
    refused = attacker.token()
    assert refused.status_code == 401 and refused.get_json()["error"] == "invalid_client"
    assert stored(replayed["client_id"]).status == "active"


@pytest.mark.parametrize("settings", [{"AUTO_APPROVE": True}])
def test_a_replayed_statement_that_pins_no_key_is_not_auto_approved(client, app, settings):
    """Without signed keys, a copy would be an active client with the copier's own secret."""
    _, key = add_publisher(assurance_level=2)
    copy = software_statement(key, aud=app.config["ISSUER"])
    info = register(client, copy, token_endpoint_auth_method="client_secret_basic")
    assert info["status"] == "pending" and "client_secret" in info


@pytest.mark.parametrize("settings", [{"AUTO_APPROVE": True}])
@pytest.mark.parametrize("claims", [{}, {"aud": "https://another-server.example"}])
def test_auto_approval_needs_an_aud_naming_this_server(client, app, settings, claims):
    _, key = add_publisher(assurance_level=2)
    statement = software_statement(key, jwks=public_jwks(VENDOR_KEY), **claims)
    response = client.post("/register", json={"software_statement": statement, "scope": "read",
                                              "audiences": ["https://api.example.com"]})
    if claims:  # an aud naming another server is refused outright
        assert response.status_code == 400 and response.get_json()["error"] == "invalid_software_statement"
    else:
        assert response.status_code == 201 and response.get_json()["status"] == "pending"


# -- once-only statements --------------------------------------------------------------------

def once_only_publisher():
    from app.trust import issuers
    key = new_key("pub-once")
    issuers.add(issuers.PUBLISHERS, PUBLISHER, jwks=public_jwks(key), assurance_level=2, require_jti=True, actor="admin:t")
    return key


@pytest.mark.parametrize("settings", [{"AUTO_APPROVE": True}])
def test_a_once_only_statement_is_accepted_once(client, app, settings):
    key = once_only_publisher()
    statement = software_statement(key, aud=app.config["ISSUER"], jti="install-0001")
    first = register(client, statement, token_endpoint_auth_method="client_secret_basic")
    assert first["status"] == "active"  # once-only: auto-approval needs no signed key
    again = client.post("/register", json={"software_statement": statement, "scope": "read",
                                           "token_endpoint_auth_method": "client_secret_basic"})
    body = again.get_json()
    assert again.status_code == 400 and body["error"] == "invalid_software_statement"
    assert "already used" in body["error_description"]
    other = software_statement(key, aud=app.config["ISSUER"], jti="install-0002")
    assert register(client, other, token_endpoint_auth_method="client_secret_basic")["status"] == "active"
    assert count(Client) == 2


def test_sending_its_own_once_only_statement_again_in_an_update_is_no_replay(client, app):
    key = once_only_publisher()
    statement = software_statement(key, jti="install-0001", jwks=public_jwks(VENDOR_KEY))
    info = register(client, statement)
    again = update(client, info, software_statement=statement, jwks=None, contacts=["ops@acme.example"])
    assert again.status_code == 200, again.get_json()
    newer = software_statement(key, jti="install-0001", jwks=public_jwks(VENDOR_KEY), software_version="2")
    replayed_jti = update(client, info, software_statement=newer, jwks=None)
    assert replayed_jti.status_code == 400 and "already used" in replayed_jti.get_json()["error_description"]
    assert stored(info["client_id"]).version == 2


@pytest.mark.parametrize("jti", [None, "", 42, "x" * 256])
def test_a_once_only_publisher_needs_a_usable_jti(client, app, jti):
    key = once_only_publisher()
    statement = software_statement(key, **({} if jti is None else {"jti": jti}))
    response = client.post("/register", json={"software_statement": statement})
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_software_statement"
    assert count(Client) == 0


def test_the_pending_queue_shows_one_statement_presented_twice(client, app, runner):
    _, key = add_publisher()
    copy = vendor_statement(app, key)
    first, second = register(client, copy), register(client, copy)
    register(client, vendor_statement(app, key, software_version="1.1"))  # another statement
    admin = Console(client).create_admin()
    admin.login()
    page = client.get("/console/pending").get_data(as_text=True)
    assert page.count("same statement as 1 other registration") == 2
    shown = runner.invoke(args=["registration", "show", first["client_id"], "--json"]).output
    assert [c["client_id"] for c in json.loads(shown)["same_statement"]] == [second["client_id"]]


def test_eight_concurrent_copies_of_a_once_only_statement_make_one_client(app):
    """The jti is spent in each registration's transaction: the primary key lets one through."""
    from app.registration.errors import InvalidSoftwareStatementError
    from app.registration.service import register as register_service
    key = once_only_publisher()
    statement = software_statement(key, jti="install-0001")

    def attempt():
        try:
            register_service({"software_statement": statement, "jwks": public_jwks(VENDOR_KEY)}, address=None)
            return "registered"
        except InvalidSoftwareStatementError:
            return "refused"

    outcomes = at_once(app, attempt)
    assert sorted(outcomes) == ["refused"] * 7 + ["registered"]
    assert count(Client) == 1
