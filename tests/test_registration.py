"""RFC 7591 registration over the test client: what is accepted, and every refusal."""
import json

import pytest
from joserfc.jwk import ECKey, OctKey, RSAKey

from app.extensions import db
from app.models import AuditEvent, Client
from app.support import hashing

from .factories import count, events, new_key, public_jwks

KEY = new_key()
JWKS = public_jwks(KEY)


def body(**fields):
    data = {"client_name": "report agent", "jwks": JWKS, "token_endpoint_auth_method": "private_key_jwt",
            "scope": "read write", "grant_types": ["client_credentials"]}
    data.update(fields)
    return {k: v for k, v in data.items() if v is not None}


def post(client, data, **kwargs):
    return client.post("/register", json=data, **kwargs)


def test_metadata_advertises_the_registration_endpoint(client, app):
    assert client.get("/.well-known/oauth-authorization-server").json["registration_endpoint"] == \
        app.config["ISSUER"] + "/register"


def test_registration_lands_pending_with_a_registration_access_token(client, app):
    resp = post(client, body(unknown_field="ignored"))
    assert resp.status_code == 201, resp.json
    data = resp.json
    assert resp.headers["Cache-Control"] == "no-store"
    assert data["status"] == "pending" and "pending approval" in data["status_description"]
    assert data["registration_client_uri"] == f"{app.config['ISSUER']}/register/{data['client_id']}"
    assert data["token_endpoint_auth_method"] == "private_key_jwt" and "client_secret" not in data
    assert "unknown_field" not in data and isinstance(data["client_id_issued_at"], int)
    stored = db.session.get(Client, data["client_id"])
    assert stored.registration_token_hash == hashing.hash_secret(data["registration_access_token"])
    assert stored.provenance == "self-asserted" and stored.registered_from == "127.0.0.1"
    [event] = events(client_id=data["client_id"])
    assert event.event_type == "client.registered" and event.actor == f"client:{data['client_id']}"


def test_secret_client_gets_a_hashed_expiring_secret(client, app):
    resp = post(client, body(jwks=None, token_endpoint_auth_method="client_secret_basic"))
    assert resp.status_code == 201, resp.json
    data = resp.json
    stored = db.session.get(Client, data["client_id"])
    assert hashing.verify(data["client_secret"], stored.secret_hash)
    assert data["client_secret"] not in json.dumps(stored.client_metadata)
    assert data["client_secret_expires_at"] > data["client_id_issued_at"]


def private_jwk():
    return {"keys": [new_key().as_dict(private=True)]}


def rsa_jwks(bits):
    return {"keys": [RSAKey.generate_key(bits, private=False).as_dict(private=False)]} if bits >= 2048 else {
        "keys": [{"kty": "RSA", "n": "sXch" * 40, "e": "AQAB"}]}


REFUSALS = [
    # (fields, expected error, words in the description)
    ({"jwks": private_jwk()}, "invalid_client_metadata", "private"),
    ({"jwks": {"keys": [OctKey.generate_key(256).as_dict(private=True)]}}, "invalid_client_metadata", "symmetric"),
    ({"jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}, "invalid_client_metadata", "symmetric"),
    ({"jwks": rsa_jwks(1024)}, "invalid_client_metadata", "2048"),
    ({"jwks_uri": "https://keys.example.com/jwks.json"}, "invalid_client_metadata", "both"),
    ({"jwks": None, "jwks_uri": "http://keys.example.com/jwks"}, "invalid_client_metadata", "https"),
    ({"jwks": None, "jwks_uri": "https://127.0.0.1/jwks"}, "invalid_client_metadata", "loopback"),
    ({"jwks": None, "jwks_uri": "https://10.0.0.8/jwks"}, "invalid_client_metadata", "private"),
    ({"jwks": None, "jwks_uri": "https://192.168.1.1/jwks"}, "invalid_client_metadata", "private"),
    ({"jwks": None, "jwks_uri": "https://169.254.169.254/latest/meta-data"}, "invalid_client_metadata",
     "link-local"),
    ({"jwks": None, "jwks_uri": "https://[fe80::1]/jwks"}, "invalid_client_metadata", "link-local"),
    ({"jwks": None, "jwks_uri": "https://[::ffff:10.0.0.1]/jwks"}, "invalid_client_metadata", "private"),
    ({"jwks": None, "jwks_uri": "https://metadata.google.internal/jwks"}, "invalid_client_metadata", "metadata"),
    ({"jwks": None, "jwks_uri": "https://user:pw@keys.example.com/jwks"}, "invalid_client_metadata",
     "credentials"),
    ({"jwks": None}, "invalid_client_metadata", "private_key_jwt needs"),
    ({"token_endpoint_auth_method": "none", "jwks": None}, "invalid_client_metadata", "none"),
    ({"token_endpoint_auth_method": "tls_client_auth"}, "invalid_client_metadata", "not allowed"),
    ({"grant_types": ["implicit"]}, "invalid_client_metadata", "unsupported grant_types"),
    ({"grant_types": ["authorization_code"]}, "invalid_redirect_uri", "needs redirect_uris"),
    ({"response_types": ["code"]}, "invalid_client_metadata", "response_types"),
    ({"scope": ["read"]}, "invalid_client_metadata", "space-separated"),
    ({"scope": 'read "write'}, "invalid_client_metadata", "scope names"),
    ({"client_name": "agent\x00"}, "invalid_client_metadata", "control"),
    ({"client_name": "agent\x1b[31m"}, "invalid_client_metadata", "control"),
    ({"client_name": "agent\u0085"}, "invalid_client_metadata", "control"),
    ({"client_name": "x" * 300}, "invalid_client_metadata", "longer"),
    ({"contacts": "ops@example.com"}, "invalid_client_metadata", "array"),
    ({"logo_uri": "javascript:alert(1)"}, "invalid_client_metadata", "logo_uri"),
    ({"token_endpoint_auth_signing_alg": "HS256"}, "invalid_client_metadata", "signing_alg"),
    ({"redirect_uris": ["javascript:alert(1)"]}, "invalid_redirect_uri", "https"),
    ({"redirect_uris": ["data:text/html,hi"]}, "invalid_redirect_uri", "https"),
    ({"redirect_uris": ["https://app.example.com/cb#frag"]}, "invalid_redirect_uri", "fragment"),
    ({"redirect_uris": ["https://*.example.com/cb"]}, "invalid_redirect_uri", "wildcard"),
    ({"redirect_uris": ["https://app.example.com/*"]}, "invalid_redirect_uri", "wildcard"),
    ({"redirect_uris": ["http://app.example.com/cb"]}, "invalid_redirect_uri", "https"),
    ({"software_statement": "not.a.jwt"}, "invalid_software_statement", "well-formed"),
]


@pytest.mark.parametrize("fields, error, words", REFUSALS)
def test_refusals(client, fields, error, words):
    resp = post(client, body(**fields))
    assert resp.status_code == 400, resp.json
    assert resp.json["error"] == error
    assert words in resp.json["error_description"]
    assert resp.headers["Cache-Control"] == "no-store"
    assert count(Client) == 0
    assert count(AuditEvent, AuditEvent.event_type.like("client.%")) == 0


@pytest.mark.parametrize("send, words", [
    (dict(data="[1, 2]", content_type="application/json"), "JSON object"),
    (dict(data="{not json", content_type="application/json"), "not valid JSON"),
    (dict(data='"a string"', content_type="application/json"), "JSON object"),
    (dict(data="client_name=x", content_type="application/x-www-form-urlencoded"), "Content-Type"),
    (dict(data="{}", content_type="text/plain"), "Content-Type"),
    (dict(data="[" * 5000 + "]" * 5000, content_type="application/json"), "nested"),
    (dict(data=json.dumps({"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": {}}}}}}}}}}),
          content_type="application/json"), "nested deeper"),
    (dict(data=json.dumps({"contacts": ["a@example.com"] * 500}), content_type="application/json"),
     "more than 100"),
    (dict(json={"client_name": "x"}, query_string={"access_token": "t"}), "Authorization header"),
])
def test_malformed_requests_are_invalid_request(client, send, words):
    resp = client.post("/register", **send)
    assert resp.status_code == 400 and resp.json["error"] == "invalid_request", resp.json
    assert words in resp.json["error_description"]
    assert count(Client) == 0


def test_oversized_body_is_413(client, app):
    resp = client.post("/register", data=b"{" + b" " * app.config["MAX_BODY_BYTES"] + b"}",
                       content_type="application/json")
    assert resp.status_code == 413 and resp.json["error"] == "invalid_request"
    assert count(Client) == 0


@pytest.mark.parametrize("name", ["evil\u202eagent", "agent\u200b", "\u2066trusted\u2069"])
def test_bidi_and_invisible_characters_are_flagged_and_shown_escaped(client, name):
    from app.registration.metadata import escape_display
    resp = post(client, body(client_name=name))
    assert resp.status_code == 201
    stored = db.session.get(Client, resp.json["client_id"])
    assert stored.client_name == name and "invisible or bidirectional" in stored.review_flags[0]
    assert "\\u" in escape_display(name) and escape_display(name).isascii()


@pytest.mark.parametrize("settings", [{"REGISTRATION_RATE_LIMIT": "2 per minute"}])
def test_rate_limit(client, settings):
    assert post(client, body()).status_code == 201
    assert post(client, body(jwks=None)).status_code == 400  # refusals count too
    resp = post(client, body())
    assert resp.status_code == 429 and resp.json["error"] == "slow_down"


def test_pending_cap_per_address(client, app):
    app.config["PENDING_CAP_PER_ADDRESS"] = 2
    assert post(client, body()).status_code == 201
    assert post(client, body()).status_code == 201
    resp = post(client, body())
    assert resp.status_code == 429 and resp.json["error"] == "too_many_pending_registrations"
    other = post(client, body(), environ_base={"REMOTE_ADDR": "198.51.100.7"})
    assert other.status_code == 201
    assert count(Client) == 3


def test_a_pending_cap_of_zero_is_no_cap(client, app):
    app.config["PENDING_CAP_PER_ADDRESS"] = 0
    for _ in range(3):
        assert post(client, body()).status_code == 201
    assert count(Client) == 3


def test_the_registration_response_is_what_was_committed(client):
    resp = post(client, body(client_name="committed", token_endpoint_auth_method="client_secret_basic", jwks=None))
    assert resp.status_code == 201
    read = client.get(f"/register/{resp.json['client_id']}",
                      headers={"Authorization": f"Bearer {resp.json['registration_access_token']}"})
    assert read.status_code == 200
    written = {k: v for k, v in resp.json.items() if k not in ("client_secret", "registration_access_token")}
    assert "client_secret_expires_at" in written and read.json == written


def test_stale_pending_registrations_do_not_count_against_the_cap(client, app):
    from app.support import clock
    app.config["PENDING_CAP_PER_ADDRESS"] = 1
    assert post(client, body()).status_code == 201
    clock.advance(app.config["PENDING_TTL"] + 1)
    assert post(client, body()).status_code == 201


def test_ec_and_rsa_public_keys_are_accepted(client):
    jwks = {"keys": [ECKey.generate_key("P-384", private=False).as_dict(private=False),
                     RSAKey.generate_key(2048, private=False).as_dict(private=False)]}
    assert post(client, body(jwks=jwks)).status_code == 201


def test_a_restrictive_scope_catalogue_refuses_unknown_scopes(client, app, tmp_path):
    scopes_file = tmp_path / "scopes.toml"
    scopes_file.write_text('[levels.1]\nname="low"\n[catalogue]\nrestrict=true\n'
                           'proofing_methods=["in_person"]\n[scopes.read]\nassurance=1\n')
    app.config["SCOPES_FILE"] = str(scopes_file)
    resp = post(client, body(scope="read delete-everything"))
    assert resp.status_code == 400 and resp.json["error"] == "invalid_client_metadata"
    assert "delete-everything" in resp.json["error_description"]
    assert post(client, body(scope="read")).status_code == 201


@pytest.mark.parametrize("jwk, words", [
    ({"kty": "EC", "crv": "secp256k1", "x": "a", "y": "b"}, "curve"),
    ({**new_key().as_dict(private=False), "use": "enc"}, "use"),
    ({**new_key().as_dict(private=False), "alg": "HS256"}, "alg"),
    ({"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"}, "not a valid"),
    ("not-an-object", "not an object"),
])
def test_unusable_keys_are_invalid_client_metadata(client, jwk, words):
    resp = post(client, body(jwks={"keys": [jwk]}))
    assert resp.status_code == 400 and resp.json["error"] == "invalid_client_metadata"
    assert words in resp.json["error_description"]


def test_client_ids_are_safe_on_a_command_line(client):
    ids = [post(client, body()).json["client_id"] for _ in range(5)]
    assert all(len(i) == 32 and i.isalnum() for i in ids)
