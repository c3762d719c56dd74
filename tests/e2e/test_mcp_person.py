"""An MCP client acting for a person, with the ecosystem's own code, unpatched, as
docs/mcp.md shows it (the page's server and agent code are what runs here): the ``mcp`` SDK's
``OAuthClientProvider`` discovers Ostiary from a real ``fastmcp`` server's 401 (RFC 9728, then
RFC 8414), registers itself (RFC 7591), and sends the person's browser (headless Chromium) to
``/authorize``. The agent is pending: the person sees the waiting page and asks for access with a
reason; an administrator (made with ``ostiary admin create``) logs in to the console in a browser
context of their own, finds the agent in the pending queue, reads the person's reason on its page,
and proofs and approves it there, choosing every field (the proofing method, the scope, the MCP
server as the audience); the person, back on ``/authorize``, consents; the SDK exchanges the code
with PKCE and calls a tool whose answer is its token's claims (``sub`` is the person). A refresh
rotates; the rotated refresh token, presented again, ends the family.

It runs a second time with the agent known by a client ID metadata document instead of a
registration (the SDK's ``client_metadata_url``): the page's document, served by a small https
server on loopback with a certificate of the test's own CA (the SDK takes only an https URL, and
Ostiary's fetcher reaches loopback only under the development override, trusting that CA by
OSTIARY_FETCH_CA_FILE). The person sees the same waiting page; the administrator approves the URL
in the console, where the client's page shows the document as fetched and its host.
The fastmcp server's own confidential client (the relying service that introspects) is approved
with ``ostiary registration approve``.
"""
from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import re
import ssl
import subprocess
import sys
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import jwt as pyjwt
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from mcp.client.auth import AuthorizationCodeResult
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
from playwright.async_api import async_playwright, expect

from tests.servers import ROOT, free_port, serve_in_background, start_server
from tests.waiting import until

pytestmark = pytest.mark.e2e

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PASSWORD = "a long enough password for alice"
REASON = "I review the quarterly reports with it"
ADMIN = "carol"
ADMIN_PASSWORD = "a long enough password for the administrator"
AGENT_NAME = "Reports assistant"  # the guide's client_name, in its registration and its document


GUIDE = ROOT / "docs" / "mcp.md"


def _certificate(folder, name: str, issuer=None, *, ca: bool):
    """A P-256 certificate (and its key) for 127.0.0.1, signed by ``issuer`` (cert, key) or itself."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(subject)
               .issuer_name(issuer[0].subject if issuer else subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(hours=2))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    cert = builder.sign(issuer[1] if issuer else key, hashes.SHA256())
    (folder / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / f"{name}.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert, key


@pytest.fixture(scope="module")
def test_ca(tmp_path_factory):
    """The test's own certificate authority and a server certificate for 127.0.0.1 it signed."""
    folder = tmp_path_factory.mktemp("ca")
    authority = _certificate(folder, "ca", ca=True)
    _certificate(folder, "server", authority, ca=False)
    return folder


@pytest.fixture(scope="module")
def ostiary(tmp_path_factory, test_ca):
    with start_server(tmp_path_factory.mktemp("ostiary-mcp"), WORKERS=1, RATELIMIT_STORAGE_URI="memory://",
                      FETCH_CA_FILE=str(test_ca / "ca.pem")) as server:
        yield server


def guide_document() -> dict:
    """The guide's example metadata document (its one JSON block with a client_id)."""
    blocks = re.findall(r"```json\n(.*?)```", GUIDE.read_text(), flags=re.DOTALL)
    [document] = [json.loads(block) for block in blocks if '"client_id"' in block]
    return document


@pytest.fixture(scope="module")
def document_host(test_ca):
    """An https server on loopback serving the agent's metadata document at /reports/client.json."""
    served: dict[str, bytes] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = served.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "max-age=300")
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(test_ca / "server.pem", test_ca / "server.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    serve_in_background(server)
    url = f"https://127.0.0.1:{server.server_address[1]}/reports/client.json"
    served["/reports/client.json"] = json.dumps({**guide_document(), "client_id": url}).encode()
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()


def guide_code(name: str) -> str:
    """The guide's Python block that starts with ``# NAME``."""
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.DOTALL)
    [code] = [block for block in blocks if block.startswith(f"# {name}")]
    return code


@pytest.fixture(scope="module")
def administrator(ostiary) -> str:
    """A console administrator, made as an operator does (``ostiary admin create``)."""
    created = ostiary.cli("admin", "create", ADMIN, "--password-stdin", input=ADMIN_PASSWORD + "\n")
    assert created.returncode == 0, created.stderr
    return ADMIN


@pytest.fixture(scope="module")
def mcp_server(ostiary, tmp_path_factory):
    port = free_port()
    folder = tmp_path_factory.mktemp("mcp-server")
    (folder / "server.py").write_text(guide_code("server.py"))
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


class Memory:
    """The SDK's TokenStorage, in memory."""

    def __init__(self):
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client

    async def set_client_info(self, client_info):
        self.client = client_info


class Callback:
    """The native client's loopback redirect URI (RFC 8252 §7.3): takes the one redirect."""

    def __init__(self):
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}/callback"
        self.result: asyncio.Future | None = None

    async def __aenter__(self):
        self.result = asyncio.get_running_loop().create_future()
        self.server = await asyncio.start_server(self._answer, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc):
        self.server.close()
        await self.server.wait_closed()

    async def _answer(self, reader, writer):
        request_line = (await reader.readline()).decode()
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        query = parse_qs(urlsplit(request_line.split(" ")[1]).query)
        if not self.result.done():
            self.result.set_result({name: values[0] for name, values in query.items()})
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 24\r\n\r\n"
                     b"You can close this page.")
        await writer.drain()
        writer.close()

    async def code(self) -> AuthorizationCodeResult:
        got = await asyncio.wait_for(self.result, 60)
        return AuthorizationCodeResult(code=got["code"], state=got.get("state"), iss=got.get("iss"))


@pytest.mark.parametrize("known_by", ["registration", "metadata document"])
def test_an_mcp_client_acts_for_a_person_after_approval_and_consent(ostiary, mcp_server, document_host,
                                                                     administrator, known_by):
    username = "alice" if known_by == "registration" else "bob"
    created = ostiary.cli("user", "create", username, "--password-stdin", input=PASSWORD + "\n")
    assert created.returncode == 0, created.stderr
    document_url = document_host if known_by == "metadata document" else None
    claims, storage, client_id = asyncio.run(_session(ostiary, mcp_server, username, document_url,
                                                      administrator))
    if document_url:
        assert client_id == document_url  # no registration: the URL is the client_id

    [person] = [p for p in json.loads(ostiary.cli("user", "list", "--json").stdout) if p["username"] == username]
    assert claims["sub"] == person["sub"] and claims["client_id"] == client_id
    assert claims["aud"] == mcp_server and claims["iss"] == ostiary.url

    # a refresh rotates; presenting the rotated one again ends the family
    first = storage.tokens.refresh_token
    rotated = requests.post(ostiary.url + "/token", data={"grant_type": "refresh_token", "refresh_token": first,
                                                          "client_id": client_id, "resource": mcp_server}, timeout=10)
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["refresh_token"] != first
    reused = requests.post(ostiary.url + "/token", data={"grant_type": "refresh_token", "refresh_token": first,
                                                         "client_id": client_id}, timeout=10)
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    # a JWT verified offline stays valid to its expiry (PyJWT, against the served JWKS) …
    access = rotated.json()["access_token"]
    key = pyjwt.PyJWKClient(ostiary.url + "/jwks.json").get_signing_key_from_jwt(access)
    assert pyjwt.decode(access, key.key, algorithms=["ES256"], audience=mcp_server, issuer=ostiary.url)["sub"] \
        == person["sub"]
    server = _relying_service(ostiary, mcp_server)
    introspected = requests.post(ostiary.url + "/introspect", data={"token": access},
                                 auth=server, timeout=10).json()
    assert introspected == {"active": False}  # … but introspection knows the family was revoked


async def _session(ostiary, mcp_server, username: str, document_url: str | None, administrator: str):
    storage, seen = Memory(), {}
    async with Callback() as callback, async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                                   args=CHROMIUM_ARGS)
        page = await browser.new_page()
        page.set_default_timeout(15_000)

        async def person_in_browser(url: str) -> None:
            client_id = parse_qs(urlsplit(url).query)["client_id"][0]
            seen["client_id"] = client_id
            await page.goto(url)
            await page.get_by_label("Username").fill(username)
            await page.get_by_label("Password").fill(PASSWORD)
            await page.get_by_role("button", name="Sign in").click()
            await expect(page.get_by_role("heading", name="waiting for your administrators' approval")).to_be_visible()
            await page.get_by_label("Why do you need it?").fill(REASON)
            await page.get_by_role("button", name="Request access").click()
            await expect(page.get_by_text("your reason is with the administrators")).to_be_visible()
            await _approve_in_console(browser, ostiary, administrator, client_id, mcp_server, username,
                                      document_url)
            await page.goto(url)
            await expect(page.get_by_role("heading", name="act for you")).to_be_visible()
            if document_url:
                await expect(page.get_by_text("Document published by 127.0.0.1")).to_be_visible()
            await page.get_by_role("button", name="Allow").click()
            await expect(page.get_by_text("You can close this page.")).to_be_visible()

        agent = {}
        if document_url is None:
            exec(compile(guide_code("agent.py"), str(GUIDE), "exec"), agent)  # noqa: S102 (the guide's own code)
            result = await agent["whoami"](mcp_server, callback.uri, storage, person_in_browser, callback.code)
        else:
            exec(compile(guide_code("agent_cimd.py"), str(GUIDE), "exec"), agent)  # noqa: S102 (the guide's own code)
            result = await agent["whoami"](mcp_server, document_url, callback.uri, storage, person_in_browser,
                                           callback.code)
        await browser.close()
    assert not result.is_error, result
    return result.structured_content or json.loads(result.content[0].text), storage, seen["client_id"]


async def _approve_in_console(browser, ostiary, administrator: str, client_id: str, resource: str,
                              username: str, document_url: str | None) -> None:
    """The administrator, in a browser context of their own (the console's session is not the
    person's): the pending queue shows the agent and that a person asked for it; its page shows
    the person's reason (and, for a metadata document, the document as fetched and its host);
    nothing is chosen in advance, so every field of the approval is filled; then it is active."""
    context = await browser.new_context()
    try:
        page = await context.new_page()
        page.set_default_timeout(15_000)
        await page.goto(ostiary.url + "/console/login")
        await page.get_by_label("Username").fill(administrator)
        await page.get_by_label("Password").fill(ADMIN_PASSWORD)
        await page.get_by_role("button", name="Log in").click()
        await expect(page.get_by_role("heading", name="Pending registrations")).to_be_visible()

        row = page.get_by_role("row").filter(has_text=client_id)
        await expect(row).to_have_count(1)
        await expect(row).to_contain_text("asked for by 1 person")
        # the requested scopes: the document asks for read, the guide's registration for none
        await expect(row.get_by_role("cell").nth(3)).to_have_text("read" if document_url else "—")
        await row.get_by_role("link", name=AGENT_NAME).click()

        await expect(page.get_by_role("heading", name=AGENT_NAME)).to_contain_text("pending")
        await expect(page.get_by_role("region", name="Requests for access")).to_contain_text(
            f"{username}, ")
        await expect(page.get_by_role("region", name="Requests for access")).to_contain_text(REASON)
        if document_url:
            document = page.get_by_role("region", name="Client ID metadata document")
            await expect(document).to_contain_text(f"the URL {document_url}")
            await expect(document).to_contain_text("the document published there, by 127.0.0.1")
            await expect(document).to_contain_text(f'"client_id": "{document_url}"')

        form = page.get_by_role("region", name="Proof and approve")
        await expect(form.get_by_label("Proofing method")).to_have_value("")  # nothing chosen in advance
        await form.get_by_label("Assurance level of this proofing").select_option("1")
        await form.get_by_label("Proofing method").select_option("owner_attestation")
        await form.get_by_label("Evidence reference").fill("REP-42: team-reports vouches for the agent")
        await form.get_by_label("Owner").fill("team-reports")
        await form.get_by_label("Purpose").fill("quarterly reports for people")
        if document_url:  # a requested scope is a checkbox, not checked in advance (not a default)
            await expect(form.get_by_label("read", exact=True)).not_to_be_checked()
            await form.get_by_label("read", exact=True).check()
        else:  # nothing requested: the administrator names what is approved
            await expect(form.get_by_label("Scopes to approve (space-separated)")).to_have_value("")
            await form.get_by_label("Scopes to approve (space-separated)").fill("read")
        await form.get_by_label("Audiences (one URL per line)").fill(resource)
        await expect(form.get_by_label("Relying service for")).to_have_value("")  # it introspects nothing
        await form.get_by_role("button", name="Approve this client").click()

        await expect(page.get_by_text(f"Approved {AGENT_NAME}.")).to_be_visible()
        await expect(page.get_by_role("heading", name=AGENT_NAME)).to_contain_text("active")
    finally:
        await context.close()

    shown = json.loads(ostiary.cli("registration", "show", client_id, "--json").stdout)
    assert shown["status"] == "active"
    approval = shown["approval"]
    assert approval["approved_by"] == f"admin:{administrator}"
    assert approval["scopes"] == ["read"] and approval["audiences"] == [resource] and approval["serves"] == []
    assert (approval["proofing_method"], approval["assurance_level"]) == ("owner_attestation", 1)
    assert approval["evidence"] == "REP-42: team-reports vouches for the agent"
    if document_url:
        assert shown["provenance"] == "document" and shown["registered_from"] == "127.0.0.1"


def _relying_service(ostiary, resource: str) -> tuple[str, str]:
    """A confidential client approved as the relying service of ``resource`` (it may introspect)."""
    body = requests.post(ostiary.url + "/register", json={
        "client_name": f"mcp server {uuid.uuid4().hex[:6]}", "token_endpoint_auth_method": "client_secret_basic",
        "scope": "read"}, timeout=10).json()
    approved = ostiary.cli("registration", "approve", body["client_id"], "--version", "1", "--owner", "team-reports",
                           "--purpose", "introspects for the MCP server", "--scope", "read", "--audience", resource,
                           "--serves", resource, "--proofing-method", "owner_attestation", "--assurance", "1")
    assert approved.returncode == 0, approved.stderr
    return body["client_id"], body["client_secret"]
