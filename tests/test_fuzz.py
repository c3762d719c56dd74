"""Malformed input never yields a 500: Hypothesis throws bodies, headers, JWTs and metadata at
registration (RFC 7591), token (RFC 6749, 7523, 8693), introspection (RFC 7662) and revocation
(RFC 7009), and every answer must be a success or an RFC error object."""
import base64
import json

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from joserfc import jwt
from joserfc.jwk import ECKey

from .factories import make_client

# Every code an endpoint here may answer with (RFC 6749 §5.2, 6750 §3.1, 7591 §3.2.2, 7009 §2.2.1,
# 8693 §2.2.2, 8707 §2, 9396 §5, and 429's slow_down); server_error is not among them.
RFC_ERRORS = {
    "invalid_request", "invalid_client", "invalid_grant", "unauthorized_client", "unsupported_grant_type",
    "invalid_scope", "invalid_target", "invalid_authorization_details", "invalid_token",
    "insufficient_scope", "invalid_client_metadata", "invalid_redirect_uri", "invalid_software_statement",
    "unapproved_software_statement", "unsupported_token_type", "access_denied", "slow_down", "not_found",
}
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=300)
FIELDS = ["grant_type", "scope", "client_id", "client_secret", "client_assertion", "client_assertion_type",
          "token", "token_type_hint", "subject_token", "subject_token_type", "actor_token",
          "actor_token_type", "requested_token_type", "audience", "resource", "authorization_details"]
VALUES = st.one_of(
    TEXT, st.sampled_from([
        "client_credentials", "urn:ietf:params:oauth:grant-type:token-exchange", "authorization_code",
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "urn:ietf:params:oauth:token-type:access_token", "urn:ietf:params:oauth:token-type:jwt",
        "read", "read write admin", "https://api.example.com", "access_token", "refresh_token",
        '[{"type":"task","intent":"x"}]', "[]", "{}", "null", "a.b.c", "..", ""]))
METADATA_KEYS = ["client_name", "grant_types", "response_types", "redirect_uris", "token_endpoint_auth_method",
                 "token_endpoint_auth_signing_alg", "jwks", "jwks_uri", "scope", "software_statement",
                 "software_id", "software_version", "contacts", "client_uri", "logo_uri", "tos_uri",
                 "policy_uri", "audience", "resource", "owner", "purpose"]
JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False), TEXT,
              st.sampled_from(["client_credentials", "private_key_jwt", "client_secret_basic", "none",
                               "https://example.com/jwks", "http://127.0.0.1:1/x", "ES256", "a.b.c"])),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=12)

fuzz = hsettings(max_examples=40, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture
def settings():
    # The fuzzer registers many clients from one address; the limits are tested elsewhere.
    return {"REGISTRATION_RATE_LIMIT": "100000 per minute", "PENDING_CAP_PER_ADDRESS": 100000}


@pytest.fixture
def endpoints(client):
    meta = client.get("/.well-known/oauth-authorization-server").get_json()
    return {name: meta[f"{name}_endpoint"].split("://", 1)[1].split("/", 1)[1]
            for name in ("token", "registration", "introspection", "revocation")}


@pytest.fixture
def basic(app):
    made = make_client("client_secret_basic")
    raw = f"{made.client_id}:{made.client_secret}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def check(response):
    assert response.status_code < 500, response.get_data(as_text=True)[:500]
    if response.status_code >= 400 and response.status_code != 404:
        body = response.get_json(silent=True)
        assert isinstance(body, dict) and body.get("error") in RFC_ERRORS, response.get_data(as_text=True)


@st.composite
def jwts(draw):
    """Well-formed or broken compact JWTs: random segments, alg none, wrong keys, odd claims."""
    kind = draw(st.sampled_from(["segments", "none", "signed"]))
    if kind == "segments":
        parts = draw(st.lists(st.text(st.sampled_from("abcXYZ019-_=.+/"), max_size=30), min_size=1, max_size=5))
        return ".".join(parts)
    claims = draw(st.dictionaries(st.sampled_from(["iss", "sub", "aud", "exp", "iat", "nbf", "jti",
                                                   "client_id", "scope", "act", "may_act"]),
                                  JSON_VALUES, max_size=8))
    if kind == "none":
        header = base64.urlsafe_b64encode(json.dumps({"alg": "none"}).encode()).rstrip(b"=").decode()
        payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        return f"{header}.{payload}."
    try:
        return jwt.encode({"alg": "ES256", "kid": draw(HEADER_TEXT)}, claims, ECKey.generate_key("P-256"))
    except (TypeError, ValueError):  # claims joserfc cannot serialise
        return "x.y.z"


FORMS = st.dictionaries(st.sampled_from(FIELDS), st.one_of(VALUES, jwts()), max_size=6)
AUTH = st.one_of(st.none(), st.just("GOOD"), HEADER_TEXT.map(lambda t: "Basic " + t),
                 st.binary(max_size=300).map(lambda b: "Basic " + base64.b64encode(b).decode()),
                 HEADER_TEXT.map(lambda t: "Bearer " + t), HEADER_TEXT)
CONTENT_TYPES = st.sampled_from(["application/x-www-form-urlencoded", "application/json", "text/plain",
                                 "multipart/form-data", "application/x-www-form-urlencoded; charset=latin-1",
                                 ""])


def headers_for(auth, basic, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    if auth is not None:
        headers["Authorization"] = basic if auth == "GOOD" else auth
    return headers


@pytest.mark.parametrize("endpoint", ["token", "introspection", "revocation"])
@fuzz
@given(form=FORMS, auth=AUTH)
def test_form_endpoints_answer_rfc_errors_to_malformed_forms(client, endpoints, basic, endpoint, form, auth):
    check(client.post("/" + endpoints[endpoint], data=form, headers=headers_for(auth, basic, None)))


@pytest.mark.parametrize("endpoint", ["token", "introspection", "revocation", "registration"])
@fuzz
@given(body=st.binary(max_size=300), content_type=CONTENT_TYPES, auth=AUTH,
       method=st.sampled_from(["POST", "POST", "GET", "PUT", "DELETE"]))
def test_endpoints_answer_rfc_errors_to_raw_bytes(client, endpoints, basic, endpoint, body, content_type,
                                                  auth, method):
    response = client.open("/" + endpoints[endpoint], method=method, data=body,
                           headers=headers_for(auth, basic, content_type))
    check(response)


@fuzz
@given(metadata=st.one_of(st.dictionaries(st.sampled_from(METADATA_KEYS), JSON_VALUES, max_size=8),
                          st.dictionaries(st.sampled_from(METADATA_KEYS), jwts(), max_size=3),
                          JSON_VALUES))
def test_registration_answers_rfc_errors_to_malformed_metadata(client, endpoints, metadata):
    response = client.post("/" + endpoints["registration"], json=metadata)
    check(response)
    if response.status_code == 201:
        assert response.get_json()["client_id"]


@fuzz
@given(assertion=jwts(), extra=FORMS)
def test_token_endpoint_answers_rfc_errors_to_malformed_client_assertions(client, endpoints, assertion, extra):
    form = {**extra, "grant_type": "client_credentials", "client_assertion": assertion,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}
    check(client.post("/" + endpoints["token"], data=form))
