"""Machine agents reach an MCP server through Ostiary with the ecosystem's own code, unpatched, as
docs/machine-agents.md shows it (the page's server and agent code are what runs here): the
``mcp`` SDK's ``ClientCredentialsOAuthProvider`` (client_secret_basic and client_secret_post)
and ``PrivateKeyJWTOAuthProvider`` (the SDK's own signer, and one that sets ``kid``), the same
through ``fastmcp.Client``'s wrappers, and workload identity federation (the platform's JWT as
an RFC 7523 jwt-bearer grant, no secret of the agent's own). Each discovers Ostiary from a real
``fastmcp`` server's 401 (RFC 9728, then RFC 8414), gets a token and calls a tool whose answer is
its token's claims. The refusals (a pending client, a suspended one, one approved for another
resource, the right secret sent another way, a token for another audience, a workload no rule
maps) each reach the agent with their description.
"""
from __future__ import annotations

import asyncio
import json
import re
import secrets
import shutil
import subprocess
import sys
import time
import uuid

import jwt as pyjwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec
from fastmcp.client.auth import BearerAuth
from jwt.algorithms import ECAlgorithm
from mcp.shared.auth import OAuthToken

from tests.servers import ROOT, free_port, start_server
from tests.waiting import until

pytestmark = pytest.mark.e2e

GUIDE = ROOT / "docs" / "machine-agents.md"
PLATFORM = "https://kubernetes.example.internal"
WORKLOAD = "system:serviceaccount:reports:nightly"
OTHER_RESOURCE = "https://other.example.com/mcp"


def guide_blocks() -> list[tuple[str, str]]:
    """The guide's Python blocks, each as (the name its first line gives, code), in order."""
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.DOTALL)
    return [(block.split("\n", 1)[0].removeprefix("# ").split(":")[0], block) for block in blocks]


@pytest.fixture(scope="module")
def ostiary(tmp_path_factory):
    instance = tmp_path_factory.mktemp("ostiary-mcp-machine")
    policy = instance / "policy.toml"
    shutil.copy(ROOT / "config" / "policy.toml", policy)  # the administrator adds [[workload]] rules
    with start_server(instance, WORKERS=1, RATELIMIT_STORAGE_URI="memory://", POLICY_FILE=str(policy)) as server:
        server.policy = policy
        yield server


@pytest.fixture(scope="module")
def mcp_server(ostiary, tmp_path_factory):
    port = free_port()
    folder = tmp_path_factory.mktemp("mcp-machine-server")
    [code] = [code for name, code in guide_blocks() if name == "server.py"]
    (folder / "server.py").write_text(code)
    with (folder / "server.log").open("wb") as out:
        proc = subprocess.Popen([sys.executable, str(folder / "server.py"), ostiary.url, str(port)], cwd=folder,
                                stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        until(lambda: _answers(url), "the MCP server to listen", timeout=30)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 401
    except requests.ConnectionError:
        return False


@pytest.fixture(scope="module")
def guide():
    """The agent's code: every Python block of the guide but the server's, in one namespace."""
    namespace: dict = {}
    for name, code in guide_blocks():
        if name != "server.py":
            exec(compile(code, f"{GUIDE}:{name}", "exec"), namespace)  # noqa: S102 (the guide's own code)
    return namespace


def approve(ostiary, client_id: str, resource: str) -> None:
    """The administrator's step, as the guide shows it."""
    approved = ostiary.cli("registration", "approve", client_id, "--version", "1", "--owner", "team-reports",
                           "--purpose", "nightly report job", "--scope", "read", "--audience", resource,
                           "--proofing-method", "owner_attestation", "--assurance", "1")
    assert approved.returncode == 0, approved.stderr


def registered(ostiary, guide, kind: str, resource: str | None, **metadata) -> dict:
    """A client of the guide's ``kind`` (WITH_SECRET, WITH_KEY, AS_WORKLOAD), approved for
    ``resource`` unless it is None (left pending)."""
    body = guide["register"](ostiary.url, f"nightly job {uuid.uuid4().hex[:6]}", guide[kind], **metadata)
    if resource is not None:
        approve(ostiary, body["client_id"], resource)
    return body


def claims_of(result) -> dict:
    """The whoami tool's answer: the claims of the token the call was made with."""
    assert not result.is_error, result
    return result.structured_content or json.loads(result.content[0].text)


def assert_machine_token(claims: dict, ostiary, mcp_server, client_id: str, sub: str | None = None) -> None:
    assert claims["iss"] == ostiary.url and claims["aud"] == mcp_server
    assert claims["client_id"] == client_id and claims["sub"] == (sub or client_id)
    assert claims["scope"] == "read"


def surfaced(coroutine) -> str:
    """What the agent is told when ``coroutine`` fails: the text of the exception raised and of
    every exception inside it (the SDK's task groups wrap them)."""
    try:
        asyncio.run(coroutine)
    except BaseException as exc:  # noqa: BLE001 (an ExceptionGroup is a BaseException too)
        return _texts(exc)
    pytest.fail("the call was not refused")


def _texts(exc: BaseException) -> str:
    texts, seen, todo = [], set(), [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        texts.append(f"{type(current).__name__}: {current}")
        todo.extend(getattr(current, "exceptions", ()))
        todo.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return "\n".join(texts)


# -- client credentials with the SDK's providers ----------------------------------------------

@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_the_sdk_with_a_client_secret(ostiary, mcp_server, guide, method):
    client = registered(ostiary, guide, "WITH_SECRET", mcp_server, token_endpoint_auth_method=method)
    auth = guide["secret_auth"](mcp_server, ostiary.url, client["client_id"], client["client_secret"], method)
    claims = claims_of(asyncio.run(guide["whoami"](mcp_server, auth)))
    assert_machine_token(claims, ostiary, mcp_server, client["client_id"])


def test_the_sdk_with_its_own_key_signer(ostiary, mcp_server, guide):
    pem, jwk = guide["new_key"]("k1")
    client = registered(ostiary, guide, "WITH_KEY", mcp_server, jwks={"keys": [jwk]})
    auth = guide["key_auth"](mcp_server, ostiary.url, client["client_id"], pem)
    claims = claims_of(asyncio.run(guide["whoami"](mcp_server, auth)))
    assert_machine_token(claims, ostiary, mcp_server, client["client_id"])


def test_the_sdk_with_a_signer_that_names_its_key(ostiary, mcp_server, guide):
    """Two keys registered (a rotation under way): the assertion's kid picks the second."""
    _, first = guide["new_key"]("k1")
    pem, second = guide["new_key"]("k2")
    client = registered(ostiary, guide, "WITH_KEY", mcp_server, jwks={"keys": [first, second]})
    auth = guide["key_id_auth"](mcp_server, ostiary.url, client["client_id"], pem, "k2")
    claims = claims_of(asyncio.run(guide["whoami"](mcp_server, auth)))
    assert_machine_token(claims, ostiary, mcp_server, client["client_id"])
    # without the kid, Ostiary cannot tell which of the two keys signed, and says so
    told = surfaced(guide["whoami"](mcp_server, guide["key_auth"](mcp_server, ostiary.url, client["client_id"],
                                                                  pem)))
    assert "invalid_client" in told and "client authentication failed" in told


# -- fastmcp.Client's own wrappers ----------------------------------------------------------

def test_fastmcp_client_with_a_secret_and_with_a_key(ostiary, mcp_server, guide):
    client = registered(ostiary, guide, "WITH_SECRET", mcp_server)
    auth = guide["fastmcp_secret_auth"](ostiary.url, client["client_id"], client["client_secret"])
    claims = claims_of(asyncio.run(guide["whoami_fastmcp"](mcp_server, auth)))
    assert_machine_token(claims, ostiary, mcp_server, client["client_id"])

    pem, jwk = guide["new_key"]("k1")
    keyed = registered(ostiary, guide, "WITH_KEY", mcp_server, jwks={"keys": [jwk]})
    auth = guide["fastmcp_key_auth"](ostiary.url, keyed["client_id"], pem)
    claims = claims_of(asyncio.run(guide["whoami_fastmcp"](mcp_server, auth)))
    assert_machine_token(claims, ostiary, mcp_server, keyed["client_id"])


# -- workload identity federation -----------------------------------------------------------

@pytest.fixture(scope="module")
def platform(ostiary, tmp_path_factory):
    """The workload platform: its signing key, its issuer trusted by the administrator (the
    guide's command, with the key set as a file), and ``platform_jwt(audience)`` minting a fresh
    service account token each call, as the kubelet would."""
    key = ec.generate_private_key(ec.SECP256R1())
    jwks = {"keys": [ECAlgorithm.to_jwk(key.public_key(), as_dict=True) | {"kid": "sa-1", "alg": "ES256"}]}
    path = tmp_path_factory.mktemp("platform") / "jwks.json"
    path.write_text(json.dumps(jwks))
    added = ostiary.cli("workload-issuer", "add", PLATFORM, "--audience", ostiary.url, "--jwks-file", str(path),
                        "--subject-pattern", "system:serviceaccount:reports:*")
    assert added.returncode == 0, added.stderr

    def platform_jwt(audience: str, *, sub: str = WORKLOAD, lifetime: int = 600, **claims) -> str:
        now = int(time.time())
        return pyjwt.encode({"iss": PLATFORM, "sub": sub, "aud": audience, "iat": now, "exp": now + lifetime,
                             "jti": secrets.token_urlsafe(16), **claims}, key, algorithm="ES256",
                            headers={"kid": "sa-1"})

    return platform_jwt


def bind(ostiary, client_id: str, subject: str = WORKLOAD) -> None:
    """The administrator's [[workload]] rule, as the guide shows it (read again on its change)."""
    with ostiary.policy.open("a") as out:
        out.write(f'\n[[workload]]\nname = "job-{uuid.uuid4().hex[:8]}"\nclients = ["{client_id}"]\n'
                  f'issuers = ["{PLATFORM}"]\nsubjects = ["{subject}"]\n')


def test_workload_identity_with_no_secret_of_its_own(ostiary, mcp_server, guide, platform):
    client = registered(ostiary, guide, "AS_WORKLOAD", mcp_server)
    assert "client_secret" not in client and client["token_endpoint_auth_method"] == "none"
    bind(ostiary, client["client_id"])
    claims = claims_of(asyncio.run(guide["whoami"](mcp_server, guide["WorkloadIdentity"](ostiary.url, platform))))
    assert_machine_token(claims, ostiary, mcp_server, client["client_id"], sub=WORKLOAD)
    # the same auth through fastmcp.Client
    claims = claims_of(asyncio.run(guide["whoami_fastmcp"](mcp_server,
                                                           guide["WorkloadIdentity"](ostiary.url, platform))))
    assert_machine_token(claims, ostiary, mcp_server, client["client_id"], sub=WORKLOAD)


def test_workload_refusals_reach_the_agent(ostiary, mcp_server, guide, platform):
    unmapped = "system:serviceaccount:reports:unmapped"
    told = surfaced(guide["whoami"](mcp_server, guide["WorkloadIdentity"](
        ostiary.url, lambda audience: platform(audience, sub=unmapped))))
    assert "invalid_grant" in told and f"no policy workload rule maps {unmapped}" in told

    told = surfaced(guide["whoami"](mcp_server, guide["WorkloadIdentity"](
        ostiary.url, lambda audience: platform("ostiary"))))  # the issuer's name, not its identifier
    assert "invalid_grant" in told and f"its aud must be {ostiary.url}" in told

    same = platform(ostiary.url, sub="system:serviceaccount:reports:replayed")
    client = registered(ostiary, guide, "AS_WORKLOAD", mcp_server)
    bind(ostiary, client["client_id"], "system:serviceaccount:reports:replayed")
    claims_of(asyncio.run(guide["whoami"](mcp_server, guide["WorkloadIdentity"](ostiary.url, lambda _: same))))
    told = surfaced(guide["whoami"](mcp_server, guide["WorkloadIdentity"](ostiary.url, lambda _: same)))
    assert "invalid_grant" in told and "already used" in told

    pending = registered(ostiary, guide, "AS_WORKLOAD", None)
    bind(ostiary, pending["client_id"], "system:serviceaccount:reports:waiting")
    told = surfaced(guide["whoami"](mcp_server, guide["WorkloadIdentity"](
        ostiary.url, lambda audience: platform(audience, sub="system:serviceaccount:reports:waiting"))))
    assert "unauthorized_client" in told and "pending approval" in told


# -- refusals, through the SDK --------------------------------------------------------------

def test_a_pending_client_is_told_so(ostiary, mcp_server, guide):
    client = registered(ostiary, guide, "WITH_SECRET", None)
    told = surfaced(guide["whoami"](mcp_server, guide["secret_auth"](mcp_server, ostiary.url, client["client_id"],
                                                                     client["client_secret"])))
    assert "OAuthTokenError" in told and "unauthorized_client" in told
    assert "the client is pending approval; an administrator must approve it" in told


def test_a_suspended_client_is_told_so(ostiary, mcp_server, guide):
    client = registered(ostiary, guide, "WITH_SECRET", mcp_server)
    suspended = ostiary.cli("client", "suspend", client["client_id"], "--yes")
    assert suspended.returncode == 0, suspended.stderr
    told = surfaced(guide["whoami"](mcp_server, guide["secret_auth"](mcp_server, ostiary.url, client["client_id"],
                                                                     client["client_secret"])))
    assert "unauthorized_client" in told and "the client is suspended" in told


def test_a_client_approved_for_another_resource_is_told_what_it_holds(ostiary, mcp_server, guide):
    pem, jwk = guide["new_key"]("k1")
    client = registered(ostiary, guide, "WITH_KEY", OTHER_RESOURCE, jwks={"keys": [jwk]})
    told = surfaced(guide["whoami"](mcp_server, guide["key_auth"](mcp_server, ostiary.url, client["client_id"], pem)))
    assert "invalid_target" in told
    assert f"resource {mcp_server} is not in the client's approval, which holds {OTHER_RESOURCE}" in told


def test_the_right_secret_sent_another_way_is_told_the_registered_method(ostiary, mcp_server, guide):
    client = registered(ostiary, guide, "WITH_SECRET", mcp_server, token_endpoint_auth_method="client_secret_post")
    told = surfaced(guide["whoami"](mcp_server, guide["secret_auth"](
        mcp_server, ostiary.url, client["client_id"], client["client_secret"], "client_secret_basic")))
    assert "invalid_client" in told
    assert ("sent with client_secret_basic, but the client registered token_endpoint_auth_method "
            "client_secret_post") in told
    wrong = surfaced(guide["whoami"](mcp_server, guide["secret_auth"](
        mcp_server, ostiary.url, client["client_id"], "not-the-secret", "client_secret_basic")))
    assert "invalid_client" in wrong and "client_secret_post" not in wrong  # a stranger learns nothing


def test_a_token_for_another_audience_is_refused_by_the_mcp_server(ostiary, mcp_server, guide):
    """Ostiary issued it, to an approved client, for another resource: the server's verifier,
    configured with its own resource URL only, refuses it, and the agent is told."""
    client = registered(ostiary, guide, "WITH_SECRET", OTHER_RESOURCE)
    token = requests.post(ostiary.url + "/token", data={"grant_type": "client_credentials",
                                                        "resource": OTHER_RESOURCE},
                          auth=(client["client_id"], client["client_secret"]), timeout=10).json()["access_token"]
    assert pyjwt.decode(token, options={"verify_signature": False})["aud"] == OTHER_RESOURCE
    answer = requests.post(mcp_server, json={}, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert answer.status_code == 401 and 'error="invalid_token"' in answer.headers["WWW-Authenticate"]

    # a bare bearer token: the SDK's session (under fastmcp.Client too) says only that the server
    # refused the request (HTTP 401 becomes "Server returned an error response")
    told = surfaced(guide["whoami_fastmcp"](mcp_server, BearerAuth(token)))
    assert "MCPError: Server returned an error response" in told

    # the SDK's provider, holding that token, is refused, discovers Ostiary and asks for one for
    # this server, which the approval does not hold: it is told so
    auth = guide["secret_auth"](mcp_server, ostiary.url, client["client_id"], client["client_secret"])
    asyncio.run(auth.context.storage.set_tokens(OAuthToken(access_token=token, token_type="Bearer",
                                                           expires_in=300)))
    told = surfaced(guide["whoami"](mcp_server, auth))
    assert "invalid_target" in told and f"which holds {OTHER_RESOURCE}" in told
