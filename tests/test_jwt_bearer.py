"""Workload identity federation: a workload's own JWT as the RFC 7523 §2.1 grant, mapped to an
approved client by a policy ``[[workload]]`` rule, its ``jti`` accepted once, its ``aud`` this
issuer alone (draft-ietf-oauth-rfc7523bis); and every way it is refused."""
import base64
import json
import secrets

import jwt as pyjwt
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey

from app.http.serving import Server
from app.models import AssertionJti, IssuedToken
from app.oauth.grants.jwt_bearer import jti_namespace
from app.oauth.metadata import server_metadata
from app.policy.rules import SHIPPED
from app.registration.errors import InvalidClientMetadataError
from app.registration.service import register
from app.support import clock
from app.trust import issuers

from . import asgi_client
from .factories import count, events, make_client, public_jwks
from .token_actions import ISSUER, TOKEN_EXCHANGE, test_client_agent

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
SPIFFE = "https://spire.example.org"
REPORTER = "spiffe://example.org/ns/agents/sa/reporter"
API = "https://api.example.com"

RULE = """
[[workload]]
name = "{name}"
clients = [{clients}]
issuers = ["https://spire.example.org"]
subjects = ["{subjects}"]
"""


@pytest.fixture
def settings(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text(SHIPPED.read_text())
    return {"POLICY_FILE": str(path)}


def bind(app, *client_ids, name="reporter-pods", subjects="spiffe://example.org/ns/agents/*"):
    """Add a [[workload]] rule binding the reporter's identity to ``client_ids``."""
    with open(app.config["POLICY_FILE"], "a") as out:
        out.write(RULE.format(name=name, subjects=subjects,
                              clients=", ".join(json.dumps(c) for c in client_ids)))


@pytest.fixture
def issuer_key():
    return ECKey.generate_key("P-256", parameters={"kid": "spire-1"}, private=True)


@pytest.fixture
def trusted(app, issuer_key):
    return issuers.add(issuers.WORKLOAD_ISSUERS, SPIFFE, audience="ostiary", jwks=public_jwks(issuer_key),
                       subject_pattern="spiffe://example.org/ns/agents/*", actor="admin:test")


def workload_jwt(key, *, iss=SPIFFE, sub=REPORTER, aud=ISSUER, lifetime=300, jti="fresh", alg="ES256",
                 header=None) -> str:
    now = int(clock.timestamp())
    claims = {"iss": iss, "sub": sub, "aud": aud, "iat": now, "exp": now + lifetime,
              "jti": secrets.token_urlsafe(12) if jti == "fresh" else jti}
    return jwt.encode({"alg": alg, "kid": key.kid, **(header or {})},
                      {k: v for k, v in claims.items() if v is not None}, key, algorithms=[alg])


def workload_client(status="active", **options):
    """A client with no credential of its own: registered with none, for the jwt-bearer grant."""
    return make_client(auth_method="none", status=status, grant_types=[JWT_BEARER], **options)


def grant(client, assertion, **data):
    return client.post("/token", data={"grant_type": JWT_BEARER, "assertion": assertion, **data})


def refused(response, error, words):
    body = response.get_json()
    assert response.status_code in (400, 401), body
    assert body["error"] == error and words in body["error_description"], body
    return body


# -- issued ------------------------------------------------------------------------------------


def test_a_workload_jwt_alone_gets_a_token_for_the_client_its_rule_names(app, client, trusted, issuer_key):
    made = workload_client()
    bind(app, made.client_id)
    assertion = workload_jwt(issuer_key)
    response = grant(client, assertion, resource=API)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["token_type"] == "Bearer" and "refresh_token" not in body
    claims = pyjwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["sub"] == REPORTER and claims["client_id"] == made.client_id
    assert claims["aud"] == API and claims["iss"] == ISSUER and claims["scope"] == "read"
    [issued] = events("token.issued")
    assert issued.data["grant_type"] == JWT_BEARER and issued.data["auth_method"] == "none"
    assert issued.data["workload"] == {"iss": SPIFFE, "sub": REPORTER, "jti": pyjwt.decode(
        assertion, options={"verify_signature": False})["jti"], "rule": "reporter-pods"}
    assert count(AssertionJti, client_id=jti_namespace(SPIFFE)) == 1


def test_a_workload_may_name_its_client(app, client, trusted, issuer_key):
    """With ``client_id`` in the form (RFC 6749 §3.2.1), among the clients the rules name."""
    made = workload_client()
    bind(app, made.client_id)
    response = grant(client, workload_jwt(issuer_key), client_id=made.client_id)
    assert response.status_code == 200, response.get_json()
    assert pyjwt.decode(response.get_json()["access_token"],
                        options={"verify_signature": False})["client_id"] == made.client_id


@pytest.mark.parametrize("pattern", ["*", "?*", "[a-f0-9]*"])
def test_a_rule_with_a_pattern_binds_no_named_client(app, client, trusted, issuer_key, pattern):
    """A public client authenticates with nothing but the workload's JWT: a ``clients`` pattern
    (written for token exchange, whose caller proves a credential of its own) would let every
    matching workload act as every public client, so it binds none of them here."""
    made = workload_client()
    bind(app, pattern)
    refused(grant(client, workload_jwt(issuer_key), client_id=made.client_id), "invalid_grant",
            f"no policy workload rule names client {made.client_id}")
    assert not events("token.issued")


def test_the_resource_is_compared_normalised_and_granted_as_approved(app, client, trusted, issuer_key):
    """RFC 3986 §6.2.2.1 and §6.2.3: scheme and host case, the default port, the empty path."""
    made = workload_client(audiences=("https://mcp.example.com/",))
    bind(app, made.client_id)
    response = grant(client, workload_jwt(issuer_key), resource="HTTPS://MCP.Example.com:443")
    assert response.status_code == 200, response.get_json()
    claims = pyjwt.decode(response.get_json()["access_token"], options={"verify_signature": False})
    assert claims["aud"] == "https://mcp.example.com/"


def test_the_grant_is_advertised(app):
    assert JWT_BEARER in server_metadata()["grant_types_supported"]


# -- registration ---------------------------------------------------------------------------


def test_registration_takes_the_grant_with_none_only(app):
    made = workload_client(status="pending")
    assert made.client_secret is None
    with pytest.raises(InvalidClientMetadataError, match="token_endpoint_auth_method none"):
        register({"client_name": "w", "token_endpoint_auth_method": "client_secret_basic",
                  "grant_types": [JWT_BEARER]}, address="192.0.2.1")
    with pytest.raises(InvalidClientMetadataError, match="client_credentials and token exchange need an authenticated"):
        register({"client_name": "w", "token_endpoint_auth_method": "none",
                  "grant_types": [JWT_BEARER, "client_credentials"]}, address="192.0.2.1")
    with pytest.raises(InvalidClientMetadataError, match="need an authenticated"):
        register({"client_name": "w", "token_endpoint_auth_method": "none",
                  "grant_types": ["client_credentials"]}, address="192.0.2.1")


# -- the assertion refused ------------------------------------------------------------------


def _unsigned(claims: dict, header: dict) -> str:
    """A JWT with no signature (``alg: none``), which joserfc would never make."""
    def part(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()
    return f"{part(header)}.{part(claims)}."


@pytest.mark.parametrize("make, words", [
    (lambda key: workload_jwt(key, iss="https://untrusted.example"), "trusted workload issuer"),
    (lambda key: workload_jwt(key, lifetime=-100), "it has expired"),
    (lambda key: workload_jwt(key, aud="ostiary"), f"its aud must be {ISSUER}"),
    (lambda key: workload_jwt(key, aud=ISSUER + "/token"), f"its aud must be {ISSUER}"),
    (lambda key: workload_jwt(key, aud=[ISSUER, "https://other.example"]), "alone"),
    (lambda key: workload_jwt(key, jti=None), "needs a jti"),
    (lambda key: workload_jwt(key, lifetime=25 * 3600), "expires more than 24 hours from now"),
    (lambda key: workload_jwt(key, lifetime=10 ** 12), "expires more than 24 hours from now"),
    (lambda key: workload_jwt(key, sub="spiffe://example.org/ns/admin/sa/root"), "may vouch for"),
    (lambda key: workload_jwt(ECKey.generate_key("P-256", parameters={"kid": "spire-1"}, private=True)),
     "signature does not verify"),
    (lambda key: _unsigned({"iss": SPIFFE, "sub": REPORTER, "aud": ISSUER, "jti": "x",
                            "exp": int(clock.timestamp()) + 60}, {"alg": "none"}), "trusted for ES256"),
    (lambda key: jwt.encode({"alg": "HS256", "kid": "spire-1"},
                            {"iss": SPIFFE, "sub": REPORTER, "aud": ISSUER, "jti": "x",
                             "exp": int(clock.timestamp()) + 60}, OctKey.import_key(secrets.token_bytes(32)),
                            algorithms=["HS256"]), "trusted for ES256"),
    (lambda key: "not a jwt", "trusted workload issuer"),
], ids=["untrusted", "expired", "configured-aud", "token-endpoint-aud", "two-auds", "no-jti", "a-day-and-more",
        "far-future", "subject",
        "wrong-key", "alg-none", "hmac", "garbage"])
def test_assertions_that_are_not_accepted(app, client, trusted, issuer_key, make, words):
    made = workload_client()
    bind(app, made.client_id)
    body = refused(grant(client, make(issuer_key)), "invalid_grant", words)
    assert body["error_description"].startswith(("the assertion is not accepted", "the assertion needs",
                                                  "the assertion expires"))
    assert count(IssuedToken) == 0
    [refusal] = events("token.refused")
    assert refusal.data["error"] == "invalid_grant" and refusal.data["grant_type"] == JWT_BEARER


def test_a_replayed_assertion_is_refused(app, client, trusted, issuer_key):
    made = workload_client()
    bind(app, made.client_id)
    assertion = workload_jwt(issuer_key)
    assert grant(client, assertion).status_code == 200
    refused(grant(client, assertion), "invalid_grant", "already used")
    refused(grant(client, assertion, client_id=made.client_id), "invalid_grant", "already used")
    assert count(IssuedToken) == 1


def test_a_refused_assertion_is_spent_with_its_refusal(app, client, trusted, issuer_key):
    """Accepted, then refused (a resource outside the approval): the jti goes with the refusal."""
    made = workload_client()
    bind(app, made.client_id)
    assertion = workload_jwt(issuer_key)
    body = refused(grant(client, assertion, resource="https://elsewhere.example"), "invalid_target",
                   "is not in the client's approval")
    assert f"which holds {API}" in body["error_description"]
    refused(grant(client, assertion, resource=API), "invalid_grant", "already used")


def test_an_assertion_refused_before_its_client_was_known_is_spent_too(app, client, trusted, issuer_key):
    """No rule mapped it (no client yet): the refusal spends the jti all the same, and the copy
    that comes once a rule exists is the grant's replay, not a client's."""
    made = workload_client()
    assertion = workload_jwt(issuer_key)
    refused(grant(client, assertion), "invalid_grant", "no policy workload rule maps")
    bind(app, made.client_id)
    refused(grant(client, assertion), "invalid_grant", "already used")
    assert count(IssuedToken) == 0


def test_copies_sent_at_once_get_one_token(app, trusted, issuer_key):
    """Eight copies on one event loop, joined into one group commit: the primary key lets one in."""
    made = workload_client()
    bind(app, made.client_id)
    form = {"grant_type": JWT_BEARER, "assertion": workload_jwt(issuer_key), "resource": API}
    answers = asgi_client.at_once(Server(app, threads=2), [asgi_client.form_post("/token", form, {})] * 8)
    codes = sorted(a.status_code for a in answers)
    assert codes == [200] + [400] * 7, [a.get_json() for a in answers]
    assert all("already used" in a.get_json()["error_description"] for a in answers if a.status_code == 400)
    assert count(IssuedToken) == 1


def test_this_servers_own_token_is_no_assertion(app, client, trusted, issuer_key, new_agent):
    agent = new_agent()
    access = agent.token().get_json()["access_token"]
    refused(grant(client, access), "invalid_grant", "issued by this server")


# -- the client refused ------------------------------------------------------------------------


def test_a_workload_no_rule_maps(app, client, trusted, issuer_key):
    workload_client()
    refused(grant(client, workload_jwt(issuer_key)), "invalid_grant", "no policy workload rule maps")


def test_a_rule_with_patterns_only_maps_no_client(app, client, trusted, issuer_key):
    workload_client()
    bind(app, "*")
    refused(grant(client, workload_jwt(issuer_key)), "invalid_grant", "without wildcards")


def test_rules_that_map_a_workload_to_several_clients(app, client, trusted, issuer_key):
    first, second = workload_client(), workload_client()
    bind(app, first.client_id, second.client_id)
    body = refused(grant(client, workload_jwt(issuer_key)), "invalid_grant", "several clients")
    assert "name yours with client_id" in body["error_description"]
    assert first.client_id not in body["error_description"]  # nothing of others' clients
    assert grant(client, workload_jwt(issuer_key), client_id=second.client_id).status_code == 200


@pytest.mark.parametrize("status, error, words", [
    ("pending", "unauthorized_client", "pending approval"),
    ("suspended", "unauthorized_client", "suspended"),
    ("retired", "invalid_client", "retired"),
])
def test_a_rule_that_maps_to_a_client_that_may_not_get_tokens(app, client, trusted, issuer_key, status, error,
                                                               words):
    made = workload_client(status=status)
    bind(app, made.client_id)
    refused(grant(client, workload_jwt(issuer_key)), error, words)
    [refusal] = events("token.refused")
    assert refusal.client_id == made.client_id


def test_a_rule_that_maps_to_a_client_not_registered(app, client, trusted, issuer_key):
    bind(app, "no-such-client")
    body = refused(grant(client, workload_jwt(issuer_key)), "invalid_grant", "is not registered here")
    assert "no-such-client" not in body["error_description"]


def test_a_rule_that_maps_to_a_client_with_credentials_of_its_own(app, client, trusted, issuer_key):
    """A stolen workload JWT gets nothing from a client that has a secret: it needs the secret."""
    made = make_client(auth_method="client_secret_basic")
    bind(app, made.client_id)
    body = refused(grant(client, workload_jwt(issuer_key)), "invalid_grant",
                   "did not register token_endpoint_auth_method none")
    assert "client_secret_basic" not in body["error_description"] and made.client_id not in body["error_description"]


def test_a_client_without_the_grant_type(app, client, trusted, issuer_key):
    made = make_client(auth_method="none", grant_types=["authorization_code"],
                       redirect_uris=["http://127.0.0.1/cb"], response_types=["code"])
    bind(app, made.client_id)
    refused(grant(client, workload_jwt(issuer_key)), "unauthorized_client", "did not register for grant_type")
    refused(grant(client, workload_jwt(issuer_key), client_id=made.client_id), "unauthorized_client",
            "did not register for grant_type")


def test_a_named_client_that_no_rule_binds(app, client, trusted, issuer_key):
    made, other = workload_client(), workload_client()
    bind(app, other.client_id)
    refused(grant(client, workload_jwt(issuer_key), client_id=made.client_id), "invalid_grant",
            f"no policy workload rule names client {made.client_id}")


def test_an_unknown_named_client(app, client, trusted, issuer_key):
    bind(app, "*")
    refused(grant(client, workload_jwt(issuer_key), client_id="nobody"), "invalid_client",
            "client authentication failed")


def test_a_confidential_client_is_told_it_did_not_register_the_grant(app, client, trusted, issuer_key):
    made = make_client(auth_method="client_secret_basic")
    bind(app, made.client_id)
    agent = test_client_agent(client, made)
    response = agent.post("/token", {"grant_type": JWT_BEARER, "assertion": workload_jwt(issuer_key)})
    refused(response, "unauthorized_client", "did not register for grant_type")


def test_a_resource_outside_the_approval(app, client, trusted, issuer_key):
    made = workload_client(audiences=(API, "https://mcp.example.com/mcp"))
    bind(app, made.client_id)
    body = refused(grant(client, workload_jwt(issuer_key), resource="https://mcp.example.com/other"),
                   "invalid_target", "is not in the client's approval")
    assert f"which holds {API} https://mcp.example.com/mcp" in body["error_description"]


@pytest.mark.parametrize("data, words", [
    ({}, "assertion is required"),
    ({"assertion": ["a", "b"]}, "assertion must be given once"),
    ({"authorization_details": "[]"}, "granted by token exchange"),
])
def test_malformed_requests(app, client, trusted, issuer_key, data, words):
    form = {"grant_type": JWT_BEARER, **data}
    if "assertion" not in data:
        form["assertion"] = workload_jwt(issuer_key) if data else ""
    refused(client.post("/token", data=form), "invalid_request" if "authorization_details" not in data
            else "invalid_authorization_details", words)


def test_exchange_of_a_workload_jwt_still_takes_the_issuers_configured_audience(app, trusted, issuer_key,
                                                                                new_agent):
    """Token exchange keeps its rule: the subject token's aud is the issuer's configured one."""
    from .token_actions import JWT_TYPE, task
    bind(app, "*")
    agent = new_agent(grant_types=["client_credentials", TOKEN_EXCHANGE])
    response = agent.exchange(workload_jwt(issuer_key, aud="ostiary"), JWT_TYPE, authorization_details=task())
    assert response.status_code == 200, response.get_json()


@pytest.mark.parametrize("exp", [1_000_000, 1_000_000.5, 1_000_000.999])
def test_a_jti_is_kept_past_the_last_moment_its_jwt_is_accepted(exp):
    """``jwt_claims.check`` reads the time in whole seconds: a JWT is accepted while
    int(now) - LEEWAY <= exp, so up to floor(exp + LEEWAY) + 1; its jti row must outlive that,
    or a purge in between would let a fractional-exp JWT be replayed."""
    from math import floor

    from app.support.jwt_claims import LEEWAY, kept_until
    assert kept_until(exp).timestamp() > floor(exp + LEEWAY) + 1 - 1e-9
