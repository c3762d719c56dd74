"""An agent registers itself over HTTP against real gunicorn: RFC 7591, a software statement
signed with a real publisher key (JWKS served over HTTP and fetched by the server), RFC 7592
read / update / delete, approval through the CLI, and every status refusing tokens."""
import http.server
import json
import time
import uuid

import jwt as pyjwt
import pytest
import requests
from joserfc import jwt
from joserfc.jwk import ECKey

from tests.servers import serve_in_background

pytestmark = pytest.mark.e2e

PUBLISHER = f"https://publisher-{uuid.uuid4().hex[:8]}.example"


def key(kid):
    return ECKey.generate_key("P-256", parameters={"kid": kid, "use": "sig", "alg": "ES256"}, private=True)


def jwks(*keys):
    return {"keys": [k.as_dict(private=False) for k in keys]}


@pytest.fixture(scope="module")
def publisher_jwks_server():
    """The publisher's JWKS on loopback (the live server runs with FETCH_ALLOW_HTTP_LOOPBACK)."""
    publisher_key = key("pub-e2e")
    document = json.dumps(jwks(publisher_key)).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(document)))
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, *args):
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    serve_in_background(httpd)
    yield f"http://127.0.0.1:{httpd.server_address[1]}/jwks.json", publisher_key
    httpd.shutdown()
    httpd.server_close()


def cli(server, *args):
    result = server.cli(*args)
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout


def approve(server, client_id, scope="read", version=1, *extra):
    cli(server, "registration", "approve", client_id, "--version", str(version), "--owner", "team-e2e",
        "--purpose", "e2e", "--scope", scope, "--audience", "https://api.example.com", "--evidence", "E2E-1",
        "--proofing-method", "document_check", *extra)


def token_with_secret(server, info):
    return requests.post(server.url + "/token", data={"grant_type": "client_credentials", "scope": "read"},
                         auth=(info["client_id"], info["client_secret"]), timeout=10)


def token_with_key(server, client_id, private_key):
    now = int(time.time())
    assertion = jwt.encode({"alg": "ES256", "kid": private_key.kid},
                           {"iss": client_id, "sub": client_id, "aud": server.url, "iat": now, "exp": now + 60,
                            "jti": uuid.uuid4().hex}, private_key, algorithms=["ES256"])
    return requests.post(server.url + "/token", data={
        "grant_type": "client_credentials", "scope": "read",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion}, timeout=10)


def test_agent_registers_with_a_software_statement_and_manages_itself(live_server, publisher_jwks_server):
    server = live_server
    jwks_uri, publisher_key = publisher_jwks_server
    metadata = requests.get(server.url + "/.well-known/oauth-authorization-server", timeout=10).json()
    register_url = metadata["registration_endpoint"]
    assert register_url == server.url + "/register"

    cli(server, "publisher", "add", PUBLISHER, "--jwks-uri", jwks_uri, "--alg", "ES256", "--assurance", "2")
    agent_key = key("agent-1")
    statement = jwt.encode({"alg": "ES256", "kid": publisher_key.kid},
                           {"iss": PUBLISHER, "iat": int(time.time()), "software_id": "e2e-agent",
                            "client_name": "E2E Agent", "scope": "read"}, publisher_key, algorithms=["ES256"])
    resp = requests.post(register_url, json={"software_statement": statement, "jwks": jwks(agent_key),
                                             "client_name": "overridden by the statement",
                                             "audiences": ["https://api.example.com"]}, timeout=10)
    assert resp.status_code == 201, resp.text
    assert resp.headers["Cache-Control"] == "no-store"
    info = resp.json()
    assert info["status"] == "pending" and info["client_name"] == "E2E Agent"
    assert info["software_id"] == "e2e-agent" and info["token_endpoint_auth_method"] == "private_key_jwt"
    client_id, rat = info["client_id"], info["registration_access_token"]
    manage = info["registration_client_uri"]
    bearer = {"Authorization": f"Bearer {rat}"}

    shown = json.loads(cli(server, "registration", "show", client_id, "--json"))
    assert shown["provenance"] == "publisher" and shown["publisher"] == PUBLISHER

    # RFC 7592 read while pending; a pending client asking for a token is told to wait.
    assert requests.get(manage, headers=bearer, timeout=10).json()["status"] == "pending"
    pending = token_with_key(server, client_id, agent_key)
    assert pending.status_code in (400, 401) and pending.json()["error"] == "unauthorized_client"
    assert "pending approval" in pending.json()["error_description"]

    approve(server, client_id)
    read = requests.get(manage, headers=bearer, timeout=10).json()
    assert read["status"] == "active"
    issued = token_with_key(server, client_id, agent_key)
    assert issued.status_code == 200, issued.text
    claims = pyjwt.decode(issued.json()["access_token"],
                          pyjwt.PyJWKClient(server.url + "/jwks.json", cache_keys=False)
                          .get_signing_key_from_jwt(issued.json()["access_token"]).key,
                          algorithms=["ES256", "RS256"], audience="https://api.example.com", issuer=server.url)
    assert claims["client_id"] == client_id

    # RFC 7592 update: a key the statement did not sign is reviewed again before it gets tokens,
    # and the token issued before the change is dead; the client cannot set its own status.
    new_key = key("agent-2")
    body = {k: v for k, v in read.items() if k not in ("status_description",)}
    body["jwks"] = jwks(new_key)
    updated = requests.put(manage, json=body, headers=bearer, timeout=10)
    assert updated.status_code == 200 and updated.json()["status"] == "pending", updated.text
    assert token_with_key(server, client_id, new_key).json()["error"] == "unauthorized_client"
    approve(server, client_id, version=2)
    assert token_with_key(server, client_id, new_key).status_code == 200
    body = {k: v for k, v in requests.get(manage, headers=bearer, timeout=10).json().items()
            if k not in ("status_description",)}
    body["status"] = "suspended"
    refused = requests.put(manage, json=body, headers=bearer, timeout=10)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_client_metadata"

    # RFC 7592 delete: retired, its token stops working, the registration access token too.
    token = token_with_key(server, client_id, new_key).json()["access_token"]
    introspector = _introspection_client(server)
    seen = requests.post(server.url + "/introspect", data={"token": token}, timeout=10, auth=introspector)
    assert seen.json()["active"] is True
    before_review = issued.json()["access_token"]  # issued before the key change sent it to review
    assert requests.post(server.url + "/introspect", data={"token": before_review}, timeout=10,
                         auth=introspector).json() == {"active": False}
    assert requests.delete(manage, headers=bearer, timeout=10).status_code == 204
    assert requests.get(manage, headers=bearer, timeout=10).status_code == 401
    retired = token_with_key(server, client_id, new_key)
    assert retired.status_code in (400, 401) and retired.json()["error"] == "invalid_client"
    introspected = requests.post(server.url + "/introspect", data={"token": token}, timeout=10,
                                 auth=introspector)
    assert introspected.json()["active"] is False


def _introspection_client(server):
    """A secret client approved as the relying service of the API, to call introspection with."""
    info = requests.post(server.url + "/register", timeout=10, json={
        "client_name": "introspector", "token_endpoint_auth_method": "client_secret_basic",
        "scope": "read"}).json()
    approve(server, info["client_id"], "read", 1, "--serves", "https://api.example.com")
    return info["client_id"], info["client_secret"]


@pytest.fixture(scope="module")
def auto_approving_server(tmp_path_factory):
    from ..conftest import SHARED_SERVER_LIMITS
    from ..servers import start_server
    with start_server(tmp_path_factory.mktemp("auto"), AUTO_APPROVE="true", **SHARED_SERVER_LIMITS) as server:
        yield server


@pytest.mark.parametrize("auto_approve", [True, False])
def test_a_replayed_statement_cannot_become_a_client_with_the_attackers_key(
        request, live_server, publisher_jwks_server, auto_approve):
    """The attacker holds a copy of a vendor's statement (it ships with the software) but not the
    vendor's private key: register with the copy, swap in their own key, ask for a token."""
    server = request.getfixturevalue("auto_approving_server") if auto_approve else live_server
    jwks_uri, publisher_key = publisher_jwks_server
    issuer = f"https://vendor-{uuid.uuid4().hex[:8]}.example"
    cli(server, "publisher", "add", issuer, "--jwks-uri", jwks_uri, "--alg", "ES256", "--assurance", "2")
    vendor_key, attacker_key = key("vendor"), key("attacker")
    copy = jwt.encode({"alg": "ES256", "kid": publisher_key.kid},
                      {"iss": issuer, "aud": server.url, "iat": int(time.time()), "software_id": "vendor-agent",
                       "client_name": "Vendor Agent", "scope": "read", "jwks": jwks(vendor_key)},
                      publisher_key, algorithms=["ES256"])
    replayed = requests.post(server.url + "/register", timeout=10, json={
        "software_statement": copy, "jwks": jwks(attacker_key), "audiences": ["https://api.example.com"]})
    assert replayed.status_code == 201, replayed.text
    info = replayed.json()
    assert info["jwks"] == jwks(vendor_key)  # the signed key wins over the one sent beside it
    assert info["status"] == ("active" if auto_approve else "pending")
    if not auto_approve:
        approve(server, info["client_id"])
    manage, bearer = info["registration_client_uri"], {"Authorization": f"Bearer {info['registration_access_token']}"}
    body = {k: v for k, v in requests.get(manage, headers=bearer, timeout=10).json().items()
            if k != "status_description"}
    swap = requests.put(manage, headers=bearer, timeout=10, json={**body, "jwks": jwks(attacker_key)})
    assert swap.status_code == 400 and swap.json()["error"] == "invalid_client_metadata", swap.text
    assert "signed by the publisher" in swap.json()["error_description"]
    refused = token_with_key(server, info["client_id"], attacker_key)
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    shown = json.loads(cli(server, "registration", "show", info["client_id"], "--json"))
    assert shown["status"] == "active" and "jwks" in shown["signed_fields"] and shown["version"] == 1


def test_each_status_refuses_tokens(live_server):
    server = live_server

    def registered():
        resp = requests.post(server.url + "/register", timeout=10, json={
            "client_name": "status agent", "token_endpoint_auth_method": "client_secret_basic", "scope": "read"})
        assert resp.status_code == 201, resp.text
        return resp.json()

    active = registered()
    approve(server, active["client_id"])
    assert token_with_secret(server, active).status_code == 200

    cli(server, "client", "suspend", active["client_id"], "--reason", "investigating", "--yes")
    suspended = token_with_secret(server, active)
    assert suspended.json()["error"] == "unauthorized_client" and "suspended" in suspended.json()["error_description"]
    cli(server, "client", "reactivate", active["client_id"])
    assert token_with_secret(server, active).status_code == 200

    denied = registered()
    cli(server, "registration", "deny", denied["client_id"], "--reason", "unknown owner", "--yes")
    assert token_with_secret(server, denied).json()["error"] == "invalid_client"

    cli(server, "client", "retire", active["client_id"], "--yes")
    assert token_with_secret(server, active).json()["error"] == "invalid_client"

    unknown = token_with_secret(server, {"client_id": "nobody", "client_secret": "x"})
    assert unknown.status_code == 401 and unknown.json()["error"] == "invalid_client"


@pytest.mark.parametrize("send, status, error", [
    (dict(data="[]", headers={"Content-Type": "application/json"}), 400, "invalid_request"),
    (dict(data="client_name=x", headers={"Content-Type": "application/x-www-form-urlencoded"}), 400,
     "invalid_request"),
    (dict(data=b"{" + b" " * (65 * 1024) + b"}", headers={"Content-Type": "application/json"}), 413,
     "invalid_request"),
    (dict(json={"jwks": {"keys": [key("p").as_dict(private=True)]}}), 400, "invalid_client_metadata"),
    (dict(json={"jwks_uri": "https://169.254.169.254/latest/meta-data/"}), 400, "invalid_client_metadata"),
    (dict(json={"client_secret": "x", "redirect_uris": ["javascript:alert(1)"]}), 400, "invalid_redirect_uri"),
    (dict(json={"software_statement": "a.b.c"}), 400, "invalid_software_statement"),
    (dict(json={"software_statement": jwt.encode({"alg": "ES256"}, {"iss": "https://stranger.example",
                                                                    "iat": int(time.time())},
                                                 key("s"), algorithms=["ES256"])}),
     400, "unapproved_software_statement"),
])
def test_refusals_over_http(live_server, send, status, error):
    resp = requests.post(live_server.url + "/register", timeout=10, **send)
    assert resp.status_code == status, resp.text
    assert resp.json()["error"] == error and resp.json()["error_description"]
