"""private_key_jwt client assertions (RFC 7523 §3): audience, lifetime, jti replay, keys, algorithms."""
import base64
import hmac
import ipaddress
import json

import pytest
import responses
from joserfc import jwt
from joserfc.jwk import ECKey

from app.extensions import db
from app.models import AssertionJti, IssuedToken
from app.oauth.server import AUTHENTICATION_FAILED
from app.support import clock, fetch

from .factories import count, events, make_client, new_key, public_jwks
from .token_actions import ASSERTION_TYPE, BOTH_GRANTS, ISSUER, assertion, task


def post(client, made, signed):
    return client.post("/token", data={"grant_type": "client_credentials",
                                       "client_assertion_type": ASSERTION_TYPE, "client_assertion": signed})


def told(response, words: str) -> bool:
    """Refused with the reason: the assertion's signature verified with the client's own key,
    so whoever sent it holds that key and learns nothing about other clients."""
    body = response.get_json()
    return (response.status_code == 400 and body["error"] == "invalid_client"
            and words in body["error_description"] and body["error_description"] != AUTHENTICATION_FAILED)


def refused_for(response, words: str) -> bool:
    """The caller is told only that authentication failed; the audit trail says why."""
    generic = {"error": "invalid_client", "error_description": AUTHENTICATION_FAILED}
    if (response.status_code, response.get_json()) != (401, generic):
        return False
    return words in events("token.refused", only="reason")[-1]


@pytest.mark.parametrize("aud", [ISSUER, ISSUER + "/token", [ISSUER]])
def test_issuer_or_token_endpoint_audience(client, aud):
    made = make_client()
    assert post(client, made, assertion(made, aud)).status_code == 200


@pytest.mark.parametrize("aud", [
    "https://other.example", ISSUER + "/introspect", ISSUER + "/", [ISSUER, "https://other.example"], None,
])
def test_any_other_audience_is_invalid_client(client, aud):
    made = make_client()
    response = post(client, made, assertion(made, aud))
    assert told(response, "aud"), response.get_json()


def test_replay_is_refused_and_audited(client):
    made = make_client()
    signed = assertion(made, ISSUER, jti="once")
    assert post(client, made, signed).status_code == 200
    again = post(client, made, signed)
    assert again.get_json()["error"] == "invalid_client" and "already used" in again.get_json()["error_description"]
    assert count(IssuedToken) == 1


def test_jti_of_a_refused_request_stays_used(client):
    """A captured assertion cannot be replayed with other parameters after a refusal."""
    made = make_client()
    signed = assertion(made, ISSUER, jti="captured")
    refused = client.post("/token", data={"grant_type": "client_credentials", "scope": "write",
                                          "client_assertion_type": ASSERTION_TYPE, "client_assertion": signed})
    assert refused.get_json()["error"] == "invalid_scope"
    assert db.session.get(AssertionJti, (made.client_id, "captured")) is not None
    assert post(client, made, signed).get_json()["error"] == "invalid_client"


def answer_with(client, path, form, signed):
    return client.post(path, data={**form, "client_assertion_type": ASSERTION_TYPE, "client_assertion": signed})


def replay_refused(response) -> bool:
    body = response.get_json()
    return body["error"] == "invalid_client" and "already used" in body["error_description"]


@pytest.mark.parametrize("path, refusal_event", [("/introspect", "introspection.refused"),
                                                 ("/task/end", "task.end_refused")])
def test_an_assertion_authenticates_one_request_at_every_endpoint(client, path, refusal_event, new_agent):
    made = make_client(grant_types=BOTH_GRANTS)
    agent = new_agent(made)
    held = agent.token().get_json()["access_token"]
    started = agent.exchange(held, authorization_details=task()).get_json()
    form = {"token": held} if path == "/introspect" else {"task_id": started["task_id"], "outcome": "done"}
    signed = assertion(made, ISSUER)
    assert answer_with(client, path, form, signed).status_code == 200
    again = answer_with(client, path, form, signed)
    assert replay_refused(again), again.get_json()
    assert [(e.client_id, e.data["error"]) for e in events(refusal_event)] == [(made.client_id, "invalid_client")]


def test_a_replayed_assertion_revokes_nothing(client, new_agent):
    made = make_client()
    agent = new_agent(made)
    first, second = (agent.token().get_json()["access_token"] for _ in range(2))
    signed = assertion(made, ISSUER)
    assert answer_with(client, "/revoke", {"token": first}, signed).status_code == 200
    assert replay_refused(answer_with(client, "/revoke", {"token": second}, signed))
    assert count(IssuedToken, IssuedToken.revoked_at.is_not(None)) == 1


def test_an_assertion_spent_at_the_token_endpoint_is_spent_everywhere(client):
    made = make_client()
    signed = assertion(made, ISSUER)
    token = post(client, made, signed).get_json()["access_token"]
    assert replay_refused(answer_with(client, "/introspect", {"token": token}, signed))


def test_same_jti_from_two_clients_is_two_assertions(client):
    one, two = make_client(), make_client()
    assert post(client, one, assertion(one, ISSUER, jti="shared")).status_code == 200
    assert post(client, two, assertion(two, ISSUER, jti="shared")).status_code == 200


@pytest.mark.parametrize("options, words", [
    ({"lifetime": 301}, "lives longer than 300"),
    ({"lifetime": 3600}, "lives longer than 300"),
    ({"lifetime": -120}, "expired"),
    ({"jti": ""}, "jti"),
    ({"iss": "someone-else"}, "iss and sub"),
    ({"exp": None}, "exp"),
])
def test_bad_claims_are_invalid_client(client, options, words):
    made = make_client()
    signed = assertion(made, ISSUER, **options) if "jti" not in options or options["jti"] else None
    if signed is None:  # an explicitly empty jti: build it by hand
        key = made.private_key
        now = int(clock.timestamp())
        signed = jwt.encode({"alg": "ES256", "kid": key.kid}, {"iss": made.client_id, "sub": made.client_id,
                            "aud": ISSUER, "iat": now, "exp": now + 60}, key, algorithms=["ES256"])
    assert told(post(client, made, signed), words)


def test_lifetime_without_iat_counts_from_now(client):
    made = make_client()
    assert post(client, made, assertion(made, ISSUER, lifetime=600, iat=None)).get_json()["error"] == \
        "invalid_client"
    assert post(client, made, assertion(made, ISSUER, lifetime=200, iat=None)).status_code == 200


def test_a_key_the_client_did_not_register_is_refused(client):
    made = make_client()
    stranger = new_key("k1")  # same kid as the registered key, different key
    response = post(client, made, assertion(made, ISSUER, key=stranger))
    assert response.get_json()["error"] == "invalid_client"


def test_jwk_and_jku_headers_are_never_followed(client):
    made = make_client()
    attacker = new_key("attacker")
    signed = assertion(made, ISSUER, key=attacker, header={"jwk": attacker.as_dict(private=False),
                                                          "jku": "https://evil.example/jwks"})
    response = post(client, made, signed)
    assert response.get_json()["error"] == "invalid_client"


def test_an_unknown_kid_is_refused(client):
    made = make_client()
    signed = assertion(made, ISSUER, header={"kid": "no-such-key"})
    assert refused_for(post(client, made, signed), "kid")


@pytest.mark.parametrize("alg", ["HS256", "none"])
def test_symmetric_and_none_algorithms_are_refused(client, alg):
    """HS256 keyed with the client's public key (Authlib CVE-2024-37568), and alg none."""
    made = make_client()
    now = int(clock.timestamp())
    claims = {"iss": made.client_id, "sub": made.client_id, "aud": ISSUER, "iat": now, "exp": now + 60,
              "jti": f"j-{alg}"}
    signing_input = f"{_b64({'alg': alg, 'kid': 'k1'})}.{_b64(claims)}"
    signature = b""
    if alg == "HS256":
        signature = hmac.new(made.private_key.as_pem(private=False), signing_input.encode(), "sha256").digest()
    signed = signing_input + "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()
    assert post(client, made, signed).get_json()["error"] == "invalid_client"


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_registered_signing_alg_is_enforced(client):
    made = make_client(token_endpoint_auth_signing_alg="ES384")
    assert refused_for(post(client, made, assertion(made, ISSUER)), "ES384")


def test_unknown_client_in_assertion(client):
    made = make_client()
    response = post(client, made, assertion(made, ISSUER, sub="nobody", iss="nobody"))
    assert refused_for(response, "no client has the assertion's sub")


def test_garbage_assertion(client):
    made = make_client()
    assert post(client, made, "not.a.jwt").get_json()["error"] == "invalid_client"


def test_second_registered_key_works(client):
    first, second = new_key("k1"), new_key("k2")
    made = make_client(jwks=public_jwks(first, second))
    made.private_key = second
    assert post(client, made, assertion(made, ISSUER)).status_code == 200


def test_ec_key_of_another_curve_is_refused(client):
    made = make_client()
    other = ECKey.generate_key("P-384", parameters={"kid": "k1"}, private=True)
    signed = assertion(made, ISSUER, key=other, header={"alg": "ES384"})
    assert post(client, made, signed).get_json()["error"] == "invalid_client"


@responses.activate
def test_keys_from_the_clients_jwks_uri(client, monkeypatch):
    """jwks_uri is fetched through app.support.fetch (checked address, pinned, cached); network faked."""
    fetch.clear_cache()
    monkeypatch.setattr(fetch, "_resolve", lambda host, port: ipaddress.ip_address("93.184.216.34"))
    key = new_key("remote-1")
    responses.get("https://93.184.216.34:443/jwks.json", json=public_jwks(key))
    made = make_client(jwks_uri="https://agent.example.com/jwks.json")
    made.private_key = key
    assert post(client, made, assertion(made, ISSUER)).status_code == 200
    assert post(client, made, assertion(made, ISSUER)).status_code == 200
    fetch.clear_cache()
    responses.replace(responses.GET, "https://93.184.216.34:443/jwks.json", status=500)
    response = post(client, made, assertion(made, ISSUER))
    assert response.get_json()["error"] == "invalid_client"
    fetch.clear_cache()
