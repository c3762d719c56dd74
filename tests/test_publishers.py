"""Publishers, software statements, initial access tokens, auto-approval and safe fetching."""
import json
import time

import pytest
import responses
from joserfc.jwk import OctKey, RSAKey

from app.extensions import db
from app.models import Client, InitialAccessToken
from app.registration import iat
from app.support import clock, fetch
from app.trust import issuers

from .factories import (
    PUBLISHER,
    add_publisher,
    at_once,
    count,
    new_key,
    public_jwks,
    software_statement,
    sqlite_write_lock_is_free,
)

CLIENT_KEY = new_key("c1")


def register(client, statement=None, token=None, **fields):
    body = {"client_name": "plain name", "jwks": public_jwks(CLIENT_KEY), "scope": "read",
            "audiences": ["https://api.example.com"], **fields}
    if statement:
        body["software_statement"] = statement
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post("/register", json=body, headers=headers)


def test_statement_claims_override_plain_metadata_and_record_provenance(client, app):
    _, key = add_publisher()
    resp = register(client, software_statement(key), software_id="spoofed")
    assert resp.status_code == 201, resp.json
    data = resp.json
    assert data["client_name"] == "Acme Agent" and data["software_id"] == "acme-agent"
    stored = db.session.get(Client, data["client_id"])
    assert stored.provenance == "publisher" and stored.publisher.issuer == PUBLISHER
    assert stored.software_statement and data["status"] == "pending"


def test_registrations_of_one_software_id_are_linked(client, app):
    from app.registration.service import related
    _, key = add_publisher()
    first = register(client, software_statement(key)).json["client_id"]
    second = register(client, software_statement(key)).json["client_id"]
    self_asserted = register(client, software_id="acme-agent").json["client_id"]
    linked = related(db.session.get(Client, first))
    assert {c.client_id for c in linked} == {second, self_asserted}
    assert {c.provenance for c in linked} == {"publisher", "self-asserted"}


def b64(data: bytes) -> str:
    import base64
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_with_public_key(key):
    """The classic confusion attack: HMAC keyed with the publisher's *public* key (built by hand,
    since joserfc itself refuses to make one)."""
    import hashlib
    import hmac
    import json as _json
    signing_input = (b64(_json.dumps({"alg": "HS256", "kid": key.kid}).encode()) + "." +
                     b64(_json.dumps({"iss": PUBLISHER, "iat": int(time.time()), "software_id": "x"}).encode()))
    mac = hmac.new(key.as_pem(private=False), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def unsigned(_key):
    import json as _json
    return (f"{b64(_json.dumps({'alg': 'none'}).encode())}."
            f"{b64(_json.dumps({'iss': PUBLISHER, 'iat': int(time.time()), 'software_id': 'x'}).encode())}.")


def self_signed_with_embedded_jwk(_key):
    """Signed by the attacker, who names their own key in the jwk header: it must be ignored."""
    attacker = new_key("pub-1")
    return software_statement(attacker, header={"jwk": attacker.as_dict(private=False)})


def with_jku(_key):
    attacker = new_key("pub-1")
    return software_statement(attacker, header={"jku": "https://attacker.example/jwks.json"})


STATEMENT_REFUSALS = [
    (lambda k: software_statement(new_key("other"), issuer="https://unknown.example"),
     "unapproved_software_statement", "not trusted"),
    (lambda k: software_statement(new_key("pub-1")), "invalid_software_statement", "does not verify"),
    (self_signed_with_embedded_jwk, "invalid_software_statement", "does not verify"),
    (with_jku, "invalid_software_statement", "does not verify"),
    (unsigned, "invalid_software_statement", "alg"),
    (hs256_with_public_key, "invalid_software_statement", "alg"),
    (lambda k: software_statement(k, exp=int(time.time()) - 3600), "invalid_software_statement", "expired"),
    (lambda k: software_statement(k, iat=int(time.time()) + 3600), "invalid_software_statement", "future"),
    (lambda k: software_statement(k, iat=None), "invalid_software_statement", "iat"),
    (lambda k: software_statement(k, nbf=int(time.time()) + 3600), "invalid_software_statement", "nbf"),
    (lambda k: software_statement(k, aud="https://someone-else.example"), "invalid_software_statement", "aud"),
    (lambda k: software_statement(k, software_id=None), "invalid_software_statement", "software_id"),
    (lambda k: software_statement(k, iss=None), "invalid_software_statement", "iss"),
    (lambda k: software_statement(k)[:-4] + "AAAA", "invalid_software_statement", "does not verify"),
    (lambda k: 42, "invalid_software_statement", "signed JWT"),
]


@pytest.mark.parametrize("make, error, words", STATEMENT_REFUSALS)
def test_statement_refusals(client, make, error, words):
    _, key = add_publisher()
    resp = register(client, make(key))
    assert resp.status_code == 400 and resp.json["error"] == error, resp.json
    assert words in resp.json["error_description"]
    assert count(Client) == 0


def test_statement_claims_are_validated_like_metadata(client):
    _, key = add_publisher()
    resp = register(client, software_statement(key, token_endpoint_auth_method="none"))
    assert resp.json["error"] == "invalid_client_metadata"


def test_rsa_publisher_and_ps256(client):
    key = RSAKey.generate_key(2048, parameters={"kid": "r1"}, private=True)
    issuers.add(issuers.PUBLISHERS, PUBLISHER, jwks=public_jwks(key), assurance_level=1, actor="admin:a")
    assert register(client, software_statement(key, alg="PS256")).status_code == 201


@pytest.mark.parametrize("settings", [{"REGISTRATION_POLICY": "software_statement"}])
def test_software_statement_policy(client, settings):
    resp = register(client)
    assert resp.status_code == 400 and resp.json["error"] == "invalid_software_statement"
    _, key = add_publisher()
    assert register(client, software_statement(key)).status_code == 201


@pytest.mark.parametrize("settings", [{"REGISTRATION_POLICY": "initial_access_token"}])
def test_initial_access_token_policy(client, settings):
    token, row = iat.create(max_uses=2, ttl=3600, actor="admin:a")
    assert row.token_hash != token and token not in str(row.__dict__)
    missing = register(client)
    assert missing.status_code == 401 and missing.json["error"] == "invalid_token"
    assert "Bearer" in missing.headers["WWW-Authenticate"]
    assert register(client, token="oiat_wrong").status_code == 401
    assert register(client, token=token).status_code == 201
    refused = register(client, token=token, token_endpoint_auth_method="none")  # a refused registration gives its use back
    assert refused.json["error"] == "invalid_client_metadata"
    assert register(client, token=token).status_code == 201
    spent = register(client, token=token)
    assert spent.status_code == 401 and "used up" in spent.json["error_description"]
    fresh, _ = iat.create(ttl=3600, actor="admin:a")
    query = client.post("/register", json={"jwks": public_jwks(CLIENT_KEY)}, query_string={"access_token": fresh})
    assert query.status_code == 400 and query.json["error"] == "invalid_request"


@pytest.mark.parametrize("settings", [{"REGISTRATION_POLICY": "initial_access_token"}])
def test_expired_initial_access_token(client, settings):
    token, _ = iat.create(ttl=60, actor="admin:a")
    clock.advance(61)
    assert register(client, token=token).status_code == 401


def test_initial_access_token_use_limit_holds_under_concurrency(app):
    token, row = iat.create(max_uses=3, ttl=3600, actor="admin:a")

    def take():
        ok = iat.take_use(token)
        db.session.commit()
        return ok

    results = at_once(app, take)
    assert sorted(results) == [False] * 5 + [True] * 3
    db.session.expire_all()
    assert db.session.get(InitialAccessToken, row.id).uses == 3


@pytest.mark.parametrize("settings", [{"AUTO_APPROVE": True}])
def test_auto_approval_names_the_policy(client, app, settings):
    _, key = add_publisher(assurance_level=2)
    resp = register(client, software_statement(key, scope="read", aud=app.config["ISSUER"],
                                               jwks=public_jwks(CLIENT_KEY)))
    assert resp.status_code == 201 and resp.json["status"] == "active"
    approval = db.session.get(Client, resp.json["client_id"]).approval
    assert approval.approved_by == "policy:auto-approve" and approval.proofing_method == "software_statement"
    assert approval.scopes == ["read"] and approval.audiences == ["https://api.example.com"]
    assert approval.assurance_level == 2 and approval.evidence.startswith("software_statement sha256:")


@pytest.mark.parametrize("settings", [{"AUTO_APPROVE": True}])
def test_auto_approval_leaves_pending_what_the_assurance_does_not_cover(client, app, settings, tmp_path):
    scopes_file = tmp_path / "scopes.toml"
    scopes_file.write_text('[levels.1]\nname="low"\n[levels.2]\nname="mid"\n[levels.3]\nname="high"\n'
                           '[catalogue]\nproofing_methods=["software_statement"]\n'
                           '[scopes.admin]\nassurance=3\n')
    app.config["SCOPES_FILE"] = str(scopes_file)
    _, key = add_publisher(assurance_level=2)
    assert register(client, software_statement(key, scope="read admin")).json["status"] == "pending"
    assert register(client).json["status"] == "pending"  # self-asserted: never auto-approved


@pytest.mark.parametrize("settings", [{"AUTO_APPROVE": True}])
def test_auto_approval_never_grants_a_sensitive_scope(client, app, settings, tmp_path):
    """A sensitive scope needs a person's confirmation (issue 22): the policy leaves it pending."""
    scopes_file = tmp_path / "scopes.toml"
    scopes_file.write_text('[levels.1]\nname="low"\n[levels.2]\nname="mid"\n'
                           '[catalogue]\nproofing_methods=["software_statement"]\n'
                           '[scopes.read]\n[scopes.payouts]\nsensitive=true\n')
    app.config["SCOPES_FILE"] = str(scopes_file)
    _, key = add_publisher(assurance_level=2)
    assert register(client, software_statement(key, scope="read payouts", aud=app.config["ISSUER"],
                                               jwks=public_jwks(CLIENT_KEY))).json["status"] == "pending"
    assert register(client, software_statement(key, scope="read", aud=app.config["ISSUER"],
                                               jwks=public_jwks(CLIENT_KEY))).json["status"] == "active"


@pytest.mark.parametrize("settings", [{"AUTO_APPROVE": False}])
def test_auto_approval_is_off_by_default(client, settings, app):
    from app.settings import DEFAULTS
    assert DEFAULTS["AUTO_APPROVE"] is False
    _, key = add_publisher()
    assert register(client, software_statement(key)).json["status"] == "pending"


def test_pending_cap_per_publisher(client, app):
    app.config["PENDING_CAP_PER_PUBLISHER"] = 1
    _, key = add_publisher()
    assert register(client, software_statement(key)).status_code == 201
    resp = client.post("/register", json={"software_statement": software_statement(key),
                                          "jwks": public_jwks(CLIENT_KEY)},
                       environ_base={"REMOTE_ADDR": "198.51.100.9"})
    assert resp.status_code == 429 and resp.json["error"] == "too_many_pending_registrations"
    assert register(client).status_code == 201  # self-asserted registrations are not this publisher's


@pytest.mark.parametrize("kwargs, message", [
    ({"jwks": {"keys": [new_key().as_dict(private=True)]}}, "private"),
    ({"jwks": {"keys": [OctKey.generate_key(256).as_dict(private=True)]}}, "symmetric"),
    ({"jwks_uri": "http://keys.example.com/jwks"}, "https"),
    ({"jwks_uri": "https://10.1.2.3/jwks", "algorithms": ["ES256"]}, "private"),
    ({"jwks_uri": "https://keys.example.com/jwks"}, "algorithms"),
    ({"jwks": public_jwks(new_key()), "algorithms": ["HS256"]}, "not allowed"),
    ({"jwks": public_jwks(new_key()), "algorithms": ["none"]}, "not allowed"),
    ({"jwks": public_jwks(new_key()), "assurance_level": 7}, "assurance"),
    ({}, "exactly one"),
])
def test_publisher_add_refusals(app, kwargs, message):
    with pytest.raises(issuers.TrustError, match=message):
        issuers.add(issuers.PUBLISHERS, PUBLISHER, actor="admin:a", **kwargs)


def test_publisher_remove_keeps_provenance(client, app):
    _, key = add_publisher()
    register(client, software_statement(key))
    with pytest.raises(issuers.TrustError, match="retire them first"):
        issuers.remove(issuers.PUBLISHERS, PUBLISHER, actor="admin:a")
    add_publisher(issuer="https://unused.example")
    issuers.remove(issuers.PUBLISHERS, "https://unused.example", actor="admin:a")
    assert issuers.get(issuers.PUBLISHERS, "https://unused.example") is None


# ---- publisher keys fetched from a jwks_uri -----------------------------------------------------

PUBLIC_IP = "93.184.216.34"


@pytest.fixture
def resolve_to(monkeypatch):
    fetch.clear_cache()

    def set_address(address):
        monkeypatch.setattr(fetch, "_resolve", lambda host, port: __import__("ipaddress").ip_address(address))
    set_address(PUBLIC_IP)
    yield set_address
    fetch.clear_cache()


@responses.activate
def test_statement_verified_with_keys_from_the_publishers_jwks_uri(client, resolve_to):
    key = new_key("uri-1")
    responses.get(f"https://{PUBLIC_IP}:443/jwks.json", json=public_jwks(key))
    issuers.add(issuers.PUBLISHERS, PUBLISHER, jwks_uri="https://keys.publisher.example/jwks.json", algorithms=["ES256"],
                   assurance_level=1, actor="admin:a")
    assert register(client, software_statement(key)).status_code == 201
    assert register(client, software_statement(key)).status_code == 201
    assert len(responses.calls) == 1  # cached
    assert responses.calls[0].request.headers["Host"] == "keys.publisher.example"


@responses.activate
@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("policy", ["open", "initial_access_token"])
def test_no_write_lock_is_held_while_the_publishers_keys_are_fetched(client, app, resolve_to, backend, policy):
    """On SQLite every transaction holds the write lock (BEGIN IMMEDIATE): the reads before the
    fetch (the publisher, the initial access token) must have ended, or every writer, token
    issuance included, would wait for the publisher's server."""
    key, free = new_key("uri-1"), []

    def keys_while_trying_the_lock(_request):
        free.append(sqlite_write_lock_is_free(db.engine.url.database))
        return 200, {"Content-Type": "application/json"}, json.dumps(public_jwks(key))

    responses.add_callback(responses.GET, f"https://{PUBLIC_IP}:443/jwks.json", callback=keys_while_trying_the_lock)
    issuers.add(issuers.PUBLISHERS, PUBLISHER, jwks_uri="https://keys.publisher.example/jwks.json", algorithms=["ES256"],
                   assurance_level=1, actor="admin:a")
    app.config["REGISTRATION_POLICY"] = policy
    token = iat.create(ttl=60, actor="admin:a")[0] if policy == "initial_access_token" else None
    db.session.remove()  # the test's own transaction (SQLite: its write lock) ends first
    assert register(client, software_statement(key), token=token).status_code == 201
    assert free == [True]


@responses.activate
@pytest.mark.parametrize("address", ["10.0.0.5", "127.0.0.1", "169.254.169.254", "::1", "fd00:ec2::254"])
def test_fetch_refuses_hosts_that_resolve_to_internal_addresses(app, resolve_to, address):
    resolve_to(address)
    with pytest.raises(fetch.FetchError, match="address"):
        fetch.fetch_json("https://rebind.example.com/jwks.json")
    assert len(responses.calls) == 0


@responses.activate
@pytest.mark.parametrize("reply, message", [
    (dict(status=302, headers={"Location": "http://169.254.169.254/"}), "redirects are not followed"),
    (dict(status=500), "HTTP 500"),
    (dict(body=b"x" * (64 * 1024 + 1)), "larger than"),
    (dict(body=b"not json"), "did not return JSON"),
    (dict(json=[1, 2]), "JSON object"),
])
def test_fetch_refusals(app, resolve_to, reply, message):
    responses.get(f"https://{PUBLIC_IP}:443/jwks.json", **reply)
    with pytest.raises(fetch.FetchError, match=message):
        fetch.fetch_json("https://keys.example.com/jwks.json")


@responses.activate
def test_fetch_times_out(app, resolve_to):
    import requests
    responses.get(f"https://{PUBLIC_IP}:443/jwks.json", body=requests.exceptions.ConnectTimeout())
    with pytest.raises(fetch.FetchError, match="ConnectTimeout"):
        fetch.fetch_json("https://keys.example.com/jwks.json")


def test_loopback_allowed_only_when_configured(app):
    with pytest.raises(fetch.FetchError, match="loopback"):
        fetch.check_url("http://127.0.0.1:8000/jwks.json", allow_loopback=False)
    assert fetch.check_url("http://localhost:8000/jwks.json", allow_loopback=True)
    with pytest.raises(fetch.FetchError, match="https"):
        fetch.check_url("http://keys.example.com/jwks.json", allow_loopback=True)
