"""RFC 7592 read / update / delete with the registration access token."""
import pytest

from app.extensions import db
from app.models import Client
from app.registration import lifecycle

from .factories import ACTOR, approve, events, make_client, new_key, public_jwks


def auth(token):
    return {"Authorization": f"Bearer {token}"}


def registered(client, **fields):
    body = {"client_name": "agent", "jwks": public_jwks(new_key()), "scope": "read",
            "audiences": ["https://api.example.com"], **fields}
    resp = client.post("/register", json=body)
    assert resp.status_code == 201, resp.json
    return resp.json


def current(client, info):
    return client.get(f"/register/{info['client_id']}", headers=auth(info["registration_access_token"])).json


def put_body(info, **changes):
    body = {k: v for k, v in info.items() if k not in ("registration_access_token", "status_description",
                                                       "pending_expires_at")}
    body.update(changes)
    return body


def test_read_while_pending_and_after_approval(client):
    info = registered(client)
    resp = client.get(f"/register/{info['client_id']}", headers=auth(info["registration_access_token"]))
    assert resp.status_code == 200 and resp.json["status"] == "pending"
    assert resp.headers["Cache-Control"] == "no-store" and "registration_access_token" not in resp.json
    approve(info["client_id"])
    assert client.get(f"/register/{info['client_id']}",
                      headers=auth(info["registration_access_token"])).json["status"] == "active"


@pytest.mark.parametrize("method", ["GET", "DELETE"])
@pytest.mark.parametrize("how", ["missing", "wrong", "other client", "basic scheme", "query string"])
def test_wrong_or_missing_token_is_401(client, how, method):
    info, other = registered(client), registered(client)
    url = f"/register/{info['client_id']}"
    kwargs = {"missing": {}, "wrong": {"headers": auth("nope")},
              "other client": {"headers": auth(other["registration_access_token"])},
              "basic scheme": {"headers": {"Authorization": f"Basic {info['registration_access_token']}"}},
              "query string": {"query_string": {"access_token": info["registration_access_token"]}}}[how]
    resp = client.open(url, method=method, **kwargs)
    if how == "query string":
        assert resp.status_code == 400 and resp.json["error"] == "invalid_request"
    else:
        assert resp.status_code == 401 and resp.json["error"] == "invalid_token"
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert db.session.get(Client, info["client_id"]).status == "pending"


def test_unknown_client_is_indistinguishable_from_a_wrong_token(client):
    resp = client.get("/register/no-such-client", headers=auth("x"))
    assert resp.status_code == 401 and resp.json["error"] == "invalid_token"


def test_update_replaces_metadata(client):
    info = registered(client)
    new_jwks = public_jwks(new_key("k2"))
    resp = client.put(f"/register/{info['client_id']}", json=put_body(info, client_name="renamed", jwks=new_jwks),
                      headers=auth(info["registration_access_token"]))
    assert resp.status_code == 200, resp.json
    assert resp.json["client_name"] == "renamed" and resp.json["jwks"] == new_jwks
    stored = db.session.get(Client, info["client_id"])
    assert stored.jwks == new_jwks and stored.client_name == "renamed"
    [event] = events("client.updated")
    assert "client_name" in event.data["changed"] and event.actor == f"client:{info['client_id']}"


@pytest.mark.parametrize("changes, error", [
    ({"status": "active"}, "invalid_client_metadata"),
    ({"client_id": "someone-else"}, "invalid_client_metadata"),
    ({"software_id": "other-software"}, "invalid_client_metadata"),
    ({"client_id_issued_at": 1}, "invalid_client_metadata"),
    ({"registration_access_token": "x"}, "invalid_request"),
    ({"client_secret": "chosen-by-me"}, "invalid_client_metadata"),
    ({"token_endpoint_auth_method": "client_secret_basic"}, "invalid_client_metadata"),
    ({"jwks": {"keys": [new_key().as_dict(private=True)]}}, "invalid_client_metadata"),
    ({"jwks_uri": "https://169.254.169.254/keys"}, "invalid_client_metadata"),
    ({"redirect_uris": ["javascript:alert(1)"]}, "invalid_redirect_uri"),
    ({"client_name": "bad\x07name"}, "invalid_client_metadata"),
])
def test_update_refusals(client, changes, error):
    info = registered(client, software_id="my-software")
    body = put_body(info, **changes)
    if "jwks_uri" in changes:
        body.pop("jwks")
    resp = client.put(f"/register/{info['client_id']}", json=body, headers=auth(info["registration_access_token"]))
    assert resp.status_code == 400 and resp.json["error"] == error, resp.json
    stored = db.session.get(Client, info["client_id"])
    assert stored.status == "pending" and stored.client_metadata["client_name"] == "agent"


def test_update_needs_the_client_id_in_the_body(client):
    info = registered(client)
    body = put_body(info)
    body.pop("client_id")
    resp = client.put(f"/register/{info['client_id']}", json=body, headers=auth(info["registration_access_token"]))
    assert resp.status_code == 400 and resp.json["error"] == "invalid_client_metadata"


@pytest.mark.parametrize("changes", [{"scope": "read admin"}, {"audiences": ["https://other.example.com"]},
                                     {"grant_types": ["client_credentials",
                                                      "urn:ietf:params:oauth:grant-type:token-exchange"]}])
def test_widening_an_active_client_sends_it_back_to_pending(client, changes):
    info = registered(client)
    approve(info["client_id"])
    resp = client.put(f"/register/{info['client_id']}", json=put_body(current(client, info), **changes),
                      headers=auth(info["registration_access_token"]))
    assert resp.status_code == 200 and resp.json["status"] == "pending"
    [event] = events("client.updated")
    assert event.data["back_to_pending"]


def test_narrowing_keeps_an_active_client_active(client):
    info = registered(client, scope="read write", client_name="agent")
    approve(info["client_id"], scopes=("read",))
    resp = client.put(f"/register/{info['client_id']}",
                      json=put_body(current(client, info), scope="read", client_name="agent v2"),
                      headers=auth(info["registration_access_token"]))
    assert resp.status_code == 200 and resp.json["status"] == "active"


@pytest.mark.parametrize("changes", [
    {"jwks": "rotated"}, {"jwks": None, "jwks_uri": "https://keys.example.com/agent.json"},
])
def test_changing_its_keys_sends_an_active_client_back_to_review(client, changes):
    """Whoever holds the registration access token must not swap in a key nobody reviewed."""
    info = registered(client)
    approve(info["client_id"])
    if changes.get("jwks") == "rotated":
        changes = {"jwks": public_jwks(new_key("rotated"))}
    body = {k: v for k, v in put_body(current(client, info), **changes).items() if v is not None}
    resp = client.put(f"/register/{info['client_id']}", json=body, headers=auth(info["registration_access_token"]))
    assert resp.status_code == 200 and resp.json["status"] == "pending"
    stored = db.session.get(Client, info["client_id"])
    assert stored.tokens_not_before is not None and "changed" in stored.status_reason
    [event] = events("client.updated")
    assert "jwks" in event.data["back_to_pending"] and event.data["version"] == 2


@pytest.mark.parametrize("status", ["suspended", "denied", "expired"])
def test_a_suspended_denied_or_expired_client_cannot_update_itself(client, status):
    made = make_client(status=status)
    info = client.get(f"/register/{made.client_id}", headers=auth(made.registration_access_token)).json
    assert info["status"] == status
    resp = client.put(f"/register/{made.client_id}", json=put_body(info, status="active"),
                      headers=auth(made.registration_access_token))
    assert resp.status_code == 403 and resp.json["error"] == "access_denied"
    assert db.session.get(Client, made.client_id).status == status


def test_delete_retires_and_the_token_stops_working(client):
    made = make_client()
    resp = client.delete(f"/register/{made.client_id}", headers=auth(made.registration_access_token))
    assert resp.status_code == 204 and resp.headers["Cache-Control"] == "no-store"
    assert db.session.get(Client, made.client_id).status == "retired"
    again = client.get(f"/register/{made.client_id}", headers=auth(made.registration_access_token))
    assert again.status_code == 401
    with pytest.raises(lifecycle.LifecycleError):
        lifecycle.reactivate(made.client_id, actor=ACTOR)


def test_a_suspended_client_can_delete_itself_but_not_reactivate(client):
    made = make_client(status="suspended")
    put = client.put(f"/register/{made.client_id}", json={"client_id": made.client_id},
                     headers=auth(made.registration_access_token))
    assert put.status_code == 403
    assert client.delete(f"/register/{made.client_id}", headers=auth(made.registration_access_token)).status_code == 204


def test_update_with_a_statement_must_keep_publisher_and_software_id(client):
    from .factories import add_publisher, software_statement
    _, pub_key = add_publisher()
    resp = client.post("/register", json={"software_statement": software_statement(pub_key),
                                          "jwks": public_jwks(new_key())})
    info = resp.json
    url, headers = f"/register/{info['client_id']}", auth(info["registration_access_token"])
    newer = put_body(info, software_statement=software_statement(pub_key, software_version="2.0"))
    updated = client.put(url, json=newer, headers=headers)
    assert updated.status_code == 200 and updated.json["software_version"] == "2.0", updated.json
    other = put_body(updated.json, software_statement=software_statement(pub_key, software_id="other"))
    refused = client.put(url, json=other, headers=headers)
    assert refused.status_code == 400 and refused.json["error"] == "invalid_software_statement"
