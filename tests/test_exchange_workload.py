"""Workload-identity JWTs (SPIFFE JWT-SVID, Kubernetes, CI OIDC) as RFC 8693 subject tokens."""
import ipaddress
import json

import pytest
import responses
from joserfc import jwt
from joserfc.jwk import ECKey

from app.extensions import db
from app.policy.rules import SHIPPED
from app.support import clock, fetch
from app.trust import issuers

from .factories import events, public_jwks, sqlite_write_lock_is_free
from .token_actions import BOTH_GRANTS, JWT_TYPE, task

SPIFFE = "https://spire.example.org"
AUDIENCE = "ostiary"


BINDING = """
[[workload]]
name = "reporter-pods"
clients = ["{clients}"]
issuers = ["https://spire.example.org"]
subjects = ["spiffe://example.org/ns/agents/*"]
"""


@pytest.fixture
def settings(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text(SHIPPED.read_text() + BINDING.format(clients="*"))
    return {"POLICY_FILE": str(path)}


@pytest.fixture
def issuer_key():
    return ECKey.generate_key("P-256", parameters={"kid": "spire-1"}, private=True)


def workload_jwt(key, *, iss=SPIFFE, sub="spiffe://example.org/ns/agents/sa/reporter", aud=AUDIENCE,
                 lifetime=300, alg="ES256"):
    now = int(clock.timestamp())
    return jwt.encode({"alg": alg, "kid": key.kid}, {"iss": iss, "sub": sub, "aud": aud, "iat": now,
                                                     "exp": now + lifetime}, key, algorithms=[alg])


@pytest.fixture
def trusted(app, issuer_key):
    return issuers.add(issuers.WORKLOAD_ISSUERS, SPIFFE, audience=AUDIENCE, jwks=public_jwks(issuer_key),
                               subject_pattern="spiffe://example.org/ns/agents/*", actor="admin:test")


@pytest.fixture
def agent(new_agent):
    """An agent whose client may exchange tokens (RFC 8693), as a workload's agent would."""
    return new_agent(grant_types=BOTH_GRANTS)


def test_a_trusted_workload_token_is_exchanged(agent, trusted, issuer_key):
    response = agent.exchange(workload_jwt(issuer_key), JWT_TYPE, authorization_details=task())
    assert response.status_code == 200, response.get_json()
    import jwt as pyjwt
    claims = pyjwt.decode(response.get_json()["access_token"], options={"verify_signature": False})
    assert claims["sub"] == "spiffe://example.org/ns/agents/sa/reporter"
    [exchanged] = events("token.exchanged")
    assert exchanged.data["subject"]["iss"] == SPIFFE
    assert exchanged.data["subject"]["workload_rule"] == "reporter-pods"


@pytest.mark.parametrize("options, words", [
    ({"iss": "https://untrusted.example"}, "trusted workload issuer"),
    ({"aud": "someone-else"}, "does not verify"),
    ({"lifetime": -100}, "does not verify"),
    ({"sub": "spiffe://example.org/ns/admin/sa/root"}, "may vouch for"),
])
def test_untrusted_or_invalid_workload_tokens(agent, trusted, issuer_key, options, words):
    response = agent.exchange(workload_jwt(issuer_key, **options), JWT_TYPE, authorization_details=task())
    body = response.get_json()
    assert body["error"] == "invalid_grant" and words in body["error_description"], body


def test_only_a_client_the_policy_binds_may_present_a_workload_identity(agent, app, trusted, issuer_key):
    """A stolen workload JWT is no use without the credentials of a client bound to it."""
    path = app.config["POLICY_FILE"]
    with open(path, "w") as out:
        out.write(SHIPPED.read_text() + BINDING.format(clients="some-other-client"))
    response = agent.exchange(workload_jwt(issuer_key), JWT_TYPE, authorization_details=task())
    body = response.get_json()
    assert body["error"] == "invalid_grant" and "no policy workload rule" in body["error_description"]


def test_a_key_the_issuer_does_not_publish(agent, trusted):
    impostor = ECKey.generate_key("P-256", parameters={"kid": "spire-1"}, private=True)
    response = agent.exchange(workload_jwt(impostor), JWT_TYPE, authorization_details=task())
    assert response.get_json()["error"] == "invalid_grant"


def test_workload_token_needs_the_jwt_token_type(agent, trusted, issuer_key):
    response = agent.exchange(workload_jwt(issuer_key), authorization_details=task())
    assert response.get_json()["error"] == "invalid_grant"


def test_an_algorithm_the_issuer_is_not_trusted_for(agent, app):
    key = ECKey.generate_key("P-384", parameters={"kid": "p384"}, private=True)
    issuers.add(issuers.WORKLOAD_ISSUERS, SPIFFE, audience=AUDIENCE, jwks=public_jwks(key), algorithms=["ES256"],
                        actor="admin:test")
    response = agent.exchange(workload_jwt(key, alg="ES384"), JWT_TYPE, authorization_details=task())
    assert response.get_json()["error"] == "invalid_grant"


@responses.activate
def test_issuer_keys_from_jwks_uri(new_agent, app, issuer_key, monkeypatch):
    """Fetched through app.support.fetch (the checked address, pinned); the network is faked."""
    fetch.clear_cache()
    monkeypatch.setattr(fetch, "_resolve", lambda host, port: ipaddress.ip_address("93.184.216.34"))
    responses.get("https://93.184.216.34:443/jwks", json=public_jwks(issuer_key))
    issuers.add(issuers.WORKLOAD_ISSUERS, SPIFFE, audience=AUDIENCE, jwks_uri="https://spire.example.org/jwks",
                        actor="admin:test")
    for _ in range(2):  # two clients, one fetch of the issuer's keys
        response = new_agent(grant_types=BOTH_GRANTS).exchange(workload_jwt(issuer_key), JWT_TYPE,
                                                               authorization_details=task())
        assert response.status_code == 200, response.get_json()
    assert len(responses.calls) == 1  # cached
    fetch.clear_cache()


@responses.activate
@pytest.mark.parametrize("backend", ["sqlite"])
def test_no_write_lock_is_held_while_the_issuers_keys_are_fetched(agent, app, issuer_key, monkeypatch, backend):
    """The issuer, the key set and the client are read in autocommit: on SQLite nothing holds the
    write lock while the issuer's jwks_uri is fetched (every writer would wait for the fetch)."""
    fetch.clear_cache()
    monkeypatch.setattr(fetch, "_resolve", lambda host, port: ipaddress.ip_address("93.184.216.34"))
    free = []

    def keys_while_trying_the_lock(_request):
        free.append(sqlite_write_lock_is_free(db.engine.url.database))
        return 200, {"Content-Type": "application/json"}, json.dumps(public_jwks(issuer_key))

    responses.add_callback(responses.GET, "https://93.184.216.34:443/jwks", callback=keys_while_trying_the_lock)
    issuers.add(issuers.WORKLOAD_ISSUERS, SPIFFE, audience=AUDIENCE, jwks_uri="https://spire.example.org/jwks",
                        actor="admin:test")
    db.session.remove()  # the test's own transaction (SQLite: its write lock) ends first
    response = agent.exchange(workload_jwt(issuer_key), JWT_TYPE, authorization_details=task())
    assert response.status_code == 200, response.get_json()
    assert free == [True]
    fetch.clear_cache()


@pytest.mark.parametrize("kwargs, words", [
    ({"jwks": None, "jwks_uri": None}, "exactly one"),
    ({"jwks_uri": "http://10.0.0.1/jwks", "jwks": None}, "https"),
    ({"algorithms": ["HS256"]}, "asymmetric"),
    ({"audience": ""}, "required"),
])
def test_add_issuer_refusals(app, issuer_key, kwargs, words):
    options = {"issuer": SPIFFE, "audience": AUDIENCE, "jwks": public_jwks(issuer_key), **kwargs}
    with pytest.raises(issuers.TrustError, match=words):
        issuers.add(issuers.WORKLOAD_ISSUERS, actor="admin:test", **options)


def test_add_twice_and_remove(app, trusted):
    with pytest.raises(issuers.TrustError, match="already"):
        issuers.add(issuers.WORKLOAD_ISSUERS, SPIFFE, audience=AUDIENCE, jwks=trusted.jwks, actor="admin:test")
    issuers.remove(issuers.WORKLOAD_ISSUERS, SPIFFE, actor="admin:test")
    assert issuers.listed(issuers.WORKLOAD_ISSUERS) == []
    with pytest.raises(issuers.TrustError, match="no workload issuer"):
        issuers.remove(issuers.WORKLOAD_ISSUERS, SPIFFE, actor="admin:test")
    kinds = events(only="event_type")
    assert kinds[-2:] == ["workload_issuer.added", "workload_issuer.removed"]


def test_a_workload_exchange_grants_the_audience_as_the_approval_spells_it(agent, trusted, issuer_key):
    """The requested audience is compared normalised, and the token carries the approval's
    spelling: never the caller's, with its port, case or anything the parser would drop."""
    import jwt as pyjwt
    response = agent.exchange(workload_jwt(issuer_key), JWT_TYPE, authorization_details=task(),
                              audience="HTTPS://API.EXAMPLE.COM:443")
    assert response.status_code == 200, response.get_json()
    claims = pyjwt.decode(response.get_json()["access_token"], options={"verify_signature": False})
    assert claims["aud"] == "https://api.example.com"


@pytest.mark.parametrize("spelling", ["https://api.exa\tmple.com", " https://api.example.com",
                                      "https://api.example.com/#frag", "https://api.example.com?",
                                      "https://api.example.com\n"])
def test_a_spelling_the_parser_would_rewrite_is_not_the_approved_audience(agent, trusted, issuer_key, spelling):
    response = agent.exchange(workload_jwt(issuer_key), JWT_TYPE, authorization_details=task(), audience=spelling)
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_target"
    assert not events("token.exchanged")
