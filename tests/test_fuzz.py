"""Malformed input never yields a 500: Hypothesis throws bodies, headers, JWTs and metadata at
registration (RFC 7591), token (RFC 6749, 7523, 8693), introspection (RFC 7662) and revocation
(RFC 7009), and every answer must be a success or an error object with a code the endpoint's
RFCs define and a description."""
import base64
import ipaddress
import json
import sys
from urllib.parse import urlencode

import pytest
import responses
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from joserfc import jws, jwt
from joserfc.jwk import ECKey

from app.support import fetch

from .console_helpers import csrf_token
from .factories import PUBLISHER, add_publisher, make_client, new_key
from .token_actions import assertion

# The error codes each endpoint's RFCs define: a malformed request gets one of its endpoint's.
# Never one of the server's own, which no malformed request should bring about:
# too_many_pending_registrations and slow_down (429; the limits are lifted here, and tested
# elsewhere), temporarily_unavailable (503), server_error (500: a failure), not_found (404).
RFC6749 = frozenset({  # RFC 6749 §5.2: every endpoint where a client authenticates
    "invalid_request", "invalid_client", "invalid_grant", "unauthorized_client", "unsupported_grant_type",
    "invalid_scope"})
ERRORS = {
    "token": RFC6749 | {"invalid_target",  # RFC 8693 §2.2.2, RFC 8707 §2
                        "invalid_authorization_details"},  # RFC 9396 §5
    # RFC 7662 §2.3: a caller that authenticates as a client gets RFC 6749 §5.2's errors (none
    # here presents a bearer token); RFC 7662 §2.1 takes token_type_hint from RFC 7009, and with
    # it unsupported_token_type (RFC 7009 §2.2.1) for a hint of a kind the server does not issue.
    "introspection": RFC6749 | {"unsupported_token_type"},
    "revocation": RFC6749 | {"unsupported_token_type"},  # RFC 7009 §2.2.1
    "task_end": RFC6749,  # Ostiary's own endpoint, which authenticates clients as the others do
    "registration": frozenset({
        "invalid_redirect_uri", "invalid_client_metadata", "invalid_software_statement",
        "unapproved_software_statement",  # RFC 7591 §3.2.2
        "invalid_token",  # RFC 6750 §3.1: the initial (RFC 7591 §3) or registration (RFC 7592 §2) access token
        "invalid_request"}),  # RFC 6749 §5.2: a body that is not a JSON object, a method not allowed
}
ENDPOINT_OF = {"/token": "token", "/introspect": "introspection", "/revoke": "revocation",
               "/task/end": "task_end", "/register": "registration"}
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


def check(endpoint: str, response):
    """A success, or an error object (RFC 6749 §5.2) with one of ``endpoint``'s codes and a
    description."""
    text = response.get_data(as_text=True)[:500]
    assert 200 <= response.status_code < 300 or 400 <= response.status_code < 500, (response.status_code, text)
    if response.status_code >= 400:
        body = response.get_json(silent=True)
        assert isinstance(body, dict) and body.get("error") in ERRORS[endpoint], (response.status_code, text)
        description = body.get("error_description")
        assert isinstance(description, str) and description.strip(), (response.status_code, text)


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
    check(endpoint, client.post("/" + endpoints[endpoint], data=form, headers=headers_for(auth, basic, None)))


@pytest.mark.parametrize("endpoint", ["token", "introspection", "revocation", "registration"])
@fuzz
@given(body=st.binary(max_size=300), content_type=CONTENT_TYPES, auth=AUTH,
       method=st.sampled_from(["POST", "POST", "GET", "PUT", "DELETE"]))
def test_endpoints_answer_rfc_errors_to_raw_bytes(client, endpoints, basic, endpoint, body, content_type,
                                                  auth, method):
    response = client.open("/" + endpoints[endpoint], method=method, data=body,
                           headers=headers_for(auth, basic, content_type))
    check(endpoint, response)


@fuzz
@given(metadata=st.one_of(st.dictionaries(st.sampled_from(METADATA_KEYS), JSON_VALUES, max_size=8),
                          st.dictionaries(st.sampled_from(METADATA_KEYS), jwts(), max_size=3),
                          JSON_VALUES))
def test_registration_answers_rfc_errors_to_malformed_metadata(client, endpoints, metadata):
    response = client.post("/" + endpoints["registration"], json=metadata)
    check("registration", response)
    if response.status_code == 201:
        assert response.get_json()["client_id"]


@fuzz
@given(assertion=jwts(), extra=FORMS)
def test_token_endpoint_answers_rfc_errors_to_malformed_client_assertions(client, endpoints, assertion, extra):
    form = {**extra, "grant_type": "client_credentials", "client_assertion": assertion,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}
    check("token", client.post("/" + endpoints["token"], data=form))



# ---- untrusted JSON (app.support.untrusted_json): nested, too large, malformed; never a 500 -------------

DEEP = 2 * sys.getrecursionlimit()  # deep enough for a recursive parser's RecursionError
NESTED = {"arrays": "[" * DEEP + "]" * DEEP, "objects": '{"":' * DEEP + "1" + "}" * DEEP,
          "mixed": '[{"":' * (DEEP // 2) + "1" + "}]" * (DEEP // 2)}
MALFORMED = {"open": "{", "nan": '{"a": NaN}', "inf": '{"a": [1e999]}', "minus_inf": '{"a": -Infinity}',
             "unterminated": '{"a": "\\ud800', "unclosed": "[" * 31, "bom": "\ufeff{}",
             "long_int": '{"a": ' + "1" * 5000 + "}", "bad_escape": '{"a": "\\x"}'}
IN_JWTS = {**NESTED, "nan": MALFORMED["nan"], "unterminated": MALFORMED["unterminated"]}
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
TOKEN_TYPES = ["urn:ietf:params:oauth:token-type:access_token", "urn:ietf:params:oauth:token-type:jwt"]
TASK = '[{"type": "agent_task", "intent": "summarize-reports", "actions": ["read"]}]'


def texts(cases: dict):
    return pytest.mark.parametrize("text", list(cases.values()), ids=list(cases))


def refused(response, endpoint: str, statuses=(400, 401)):
    """An RFC 6749 §5.2 error object: one of ``endpoint``'s codes, and a description without
    quotes or backslashes."""
    body = response.get_json(silent=True)
    assert response.status_code in statuses and isinstance(body, dict), \
        (response.status_code, response.get_data(as_text=True)[:300])
    assert body.get("error") in ERRORS[endpoint], body
    description = body.get("error_description")
    assert isinstance(description, str) and description and not set(description) & set('"\\'), body
    return body


def b64(text: str | bytes) -> str:
    return base64.urlsafe_b64encode(text.encode() if isinstance(text, str) else text).rstrip(b"=").decode()


def jwts_of(text: str, key=None, claims: dict | None = None) -> list[str]:
    """JWTs that carry ``text``: as the payload, inside a payload of ``claims``, as the header,
    as an unencoded payload (RFC 7797), and, with ``key``, signed."""
    inside = json.dumps({**(claims or {}), "x": None}).replace("null", text)
    header = b64(json.dumps({"alg": "ES256"}))
    made = [f"{header}.{b64(text)}.c2ln", f"{header}.{b64(inside)}.c2ln", f"{b64(text)}.{b64('{}')}.c2ln"]
    if "." not in text:
        made.append(f"{b64(json.dumps({'alg': 'ES256', 'b64': False, 'crit': ['b64']}))}.{text}.c2ln")
    if key is not None:
        made += [jws.serialize_compact({"alg": "ES256", "kid": key.kid}, payload.encode(), key)
                 for payload in (text, inside)]
    return made


def too_large(app) -> str:
    return json.dumps({"client_name": "x" * app.config["MAX_BODY_BYTES"]})


def registration(how: str, made) -> tuple[str, str, dict]:
    """(method, path, headers) of a registration (RFC 7591 §3.1), or of an update of ``made``
    with its registration access token (RFC 7592 §2.2)."""
    if how == "register":
        return "POST", "/register", {}
    return "PUT", f"/register/{made.client_id}", {"Authorization": f"Bearer {made.registration_access_token}"}


REGISTRATIONS = pytest.mark.parametrize("how", ["register", "update"])


@REGISTRATIONS
@texts({**NESTED, **MALFORMED})
def test_registration_refuses_bodies_of_untrusted_json(client, how, text):
    method, path, headers = registration(how, make_client("client_secret_basic"))
    response = client.open(path, method=method, data=text, content_type="application/json", headers=headers)
    assert refused(response, "registration", (400,))["error"] == "invalid_request"


@REGISTRATIONS
def test_registration_refuses_bodies_over_the_limit(client, app, how):
    method, path, headers = registration(how, make_client("client_secret_basic"))
    response = client.open(path, method=method, data=too_large(app), content_type="application/json",
                           headers=headers)
    assert refused(response, "registration", (413,))["error"] == "invalid_request"


@REGISTRATIONS
@texts(IN_JWTS)
def test_registration_refuses_software_statements_of_untrusted_json(client, how, text):
    _, key = add_publisher()
    made = make_client("client_secret_basic")
    method, path, headers = registration(how, made)
    for statement in jwts_of(text, key, {"iss": PUBLISHER, "software_id": "acme-agent"}):
        metadata = {"client_name": "x", "software_statement": statement}
        if how == "update":
            metadata["client_id"] = made.client_id
        response = client.open(path, method=method, json=metadata, headers=headers)
        assert refused(response, "registration", (400,))["error"] == "invalid_software_statement"


@pytest.mark.parametrize("path", ["/token", "/introspect", "/revoke", "/task/end"])
@texts(IN_JWTS)
def test_machine_endpoints_refuse_client_assertions_of_untrusted_json(client, path, text):
    made = make_client("private_key_jwt")
    for assertion in jwts_of(text, made.private_key, {"iss": made.client_id, "sub": made.client_id}):
        form = {"grant_type": "client_credentials", "token": "x", "task_id": "x",
                "client_assertion": assertion, "client_assertion_type": ASSERTION_TYPE}
        assert refused(client.post(path, data=form), ENDPOINT_OF[path])["error"] == "invalid_client"


@pytest.fixture
def exchanger(client):
    """The Basic header of a client that may exchange tokens, and a token it holds."""
    made = make_client("client_secret_basic", grant_types=["client_credentials", EXCHANGE])
    raw = f"{made.client_id}:{made.client_secret}".encode()
    headers = {"Authorization": "Basic " + base64.b64encode(raw).decode()}
    held = client.post("/token", data={"grant_type": "client_credentials"}, headers=headers)
    assert held.status_code == 200, held.get_json()
    return headers, held.get_json()["access_token"]


@pytest.mark.parametrize("token_type", TOKEN_TYPES, ids=["access_token", "jwt"])
@pytest.mark.parametrize("role", ["subject", "actor"])
@texts(IN_JWTS)
def test_presented_tokens_of_untrusted_json_are_refused_by_token_exchange(client, exchanger, role, token_type,
                                                                          text):
    """As the subject or the actor token: invalid_grant (RFC 8693 §2.2.2)."""
    headers, held = exchanger
    for token in jwts_of(text, claims={"iss": "https://issuer.example"}):
        if role == "subject":
            form = {"subject_token": token, "subject_token_type": token_type}
        else:
            form = {"subject_token": held, "subject_token_type": TOKEN_TYPES[0],
                    "actor_token": token, "actor_token_type": token_type}
        response = client.post("/token", headers=headers, data={
            "grant_type": EXCHANGE, "authorization_details": TASK, **form})
        assert refused(response, "token")["error"] == "invalid_grant"


@texts(IN_JWTS)
def test_presented_tokens_of_untrusted_json_are_unknown_to_introspection_and_revocation(client, exchanger, text):
    """Introspection answers inactive (RFC 7662 §2.2) and revocation does nothing (RFC 7009 §2.2)."""
    headers, _ = exchanger
    for token in jwts_of(text, claims={"iss": "https://issuer.example"}):
        introspected = client.post("/introspect", data={"token": token}, headers=headers)
        assert introspected.status_code == 200 and introspected.get_json() == {"active": False}
        revoked = client.post("/revoke", data={"token": token}, headers=headers)
        assert revoked.status_code == 200, revoked.get_data(as_text=True)[:300]


@texts({**NESTED, **MALFORMED})
def test_token_exchange_refuses_authorization_details_of_untrusted_json(client, app, exchanger, text):
    headers, held = exchanger
    form = {"grant_type": EXCHANGE, "subject_token": held, "subject_token_type": TOKEN_TYPES[0]}
    response = client.post("/token", data={**form, "authorization_details": text}, headers=headers)
    assert refused(response, "token")["error"] == "invalid_authorization_details"
    huge = client.post("/token", data={**form, "authorization_details": too_large(app)}, headers=headers)
    assert refused(huge, "token", (413,))["error"] == "invalid_request"


@pytest.mark.parametrize("path", ["/token", "/introspect", "/revoke", "/task/end", "/register", "/console/login"])
@texts(NESTED)
def test_every_endpoint_refuses_nested_json_bodies(client, app, basic, path, text):
    """A nested JSON body, where a form is expected too (Flask-WTF reads a console form from a
    JSON body): an RFC error, or at the console its own HTML error page. Form fields are flat,
    whatever their names say: a form is answered as any other form, with a success or one of the
    endpoint's RFC errors (at the console, its login page again)."""
    headers = {"Authorization": basic, "X-CSRFToken": csrf_token(client.get("/console/login").get_data(as_text=True))}
    response = client.post(path, data=text, content_type="application/json", headers=headers)
    if path.startswith("/console"):
        assert response.status_code == 400, response.get_data(as_text=True)[:300]
    else:
        refused(response, ENDPOINT_OF[path])
    form = {"grant_type": "client_credentials", "a" + "[a]" * DEEP: text, "token": text, "username": text}
    response = client.post(path, data=form, headers=headers)
    if path.startswith("/console"):  # the login page again (no password was sent), or too large
        oversized = len(urlencode(form)) > app.config["MAX_BODY_BYTES"]
        assert response.status_code == (413 if oversized else 200), response.get_data(as_text=True)[:300]
    else:
        check(ENDPOINT_OF[path], response)


@pytest.fixture
def resolve_to_public(monkeypatch):
    fetch.clear_cache()
    monkeypatch.setattr(fetch, "_resolve", lambda host, port: ipaddress.ip_address("93.184.216.34"))
    yield
    fetch.clear_cache()


@texts(IN_JWTS)
def test_a_jwks_uri_that_answers_untrusted_json_is_refused(client, resolve_to_public, text):
    made = make_client("private_key_jwt", jwks_uri="https://keys.example.com/jwks.json")
    made.private_key = new_key()  # any key: the registered ones cannot be read
    form = {"grant_type": "client_credentials", "client_assertion": assertion(made, "http://localhost"),
            "client_assertion_type": ASSERTION_TYPE}
    with responses.RequestsMock() as mock:
        mock.get("https://93.184.216.34:443/jwks.json", body=text, content_type="application/json")
        body = refused(client.post("/token", data=form), "token")
    assert body["error"] == "invalid_client"
