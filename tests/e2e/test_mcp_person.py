"""An MCP client acting for a person, with the ecosystem's own code, unpatched, as
docs/mcp.md shows it (the page's server and agent code are what runs here): the ``mcp`` SDK's
``OAuthClientProvider`` discovers Ostiary from a real ``fastmcp`` server's 401 (RFC 9728, then
RFC 8414), registers itself (RFC 7591), and sends the person's browser (headless Chromium) to
``/authorize``. The agent is pending: the person sees the waiting page and asks for access with a
reason; an administrator approves it; the person signs in and consents; the SDK exchanges the
code with PKCE and calls a tool whose answer is its token's claims (``sub`` is the person). A
refresh rotates; the rotated refresh token, presented again, ends the family.
"""
from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import uuid
from urllib.parse import parse_qs, urlsplit

import jwt as pyjwt
import pytest
import requests
from mcp.client.auth import AuthorizationCodeResult
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
from playwright.async_api import async_playwright, expect

from tests.servers import ROOT, free_port, start_server
from tests.waiting import until

pytestmark = pytest.mark.e2e

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PASSWORD = "a long enough password for alice"
REASON = "I review the quarterly reports with it"


@pytest.fixture(scope="module")
def ostiary(tmp_path_factory):
    with start_server(tmp_path_factory.mktemp("ostiary-mcp"), WORKERS=1, RATELIMIT_STORAGE_URI="memory://") as server:
        yield server


GUIDE = ROOT / "docs" / "mcp.md"


def guide_code(name: str) -> str:
    """The guide's Python block that starts with ``# NAME``."""
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.S)
    [code] = [block for block in blocks if block.startswith(f"# {name}")]
    return code


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


def test_an_mcp_client_acts_for_a_person_after_approval_and_consent(ostiary, mcp_server):
    created = ostiary.cli("user", "create", "alice", "--password-stdin", input=PASSWORD + "\n")
    assert created.returncode == 0, created.stderr
    claims, storage, client_id = asyncio.run(_session(ostiary, mcp_server))

    person = json.loads(ostiary.cli("user", "list", "--json").stdout)[0]
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


async def _session(ostiary, mcp_server):
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
            await page.get_by_label("Username").fill("alice")
            await page.get_by_label("Password").fill(PASSWORD)
            await page.get_by_role("button", name="Sign in").click()
            await expect(page.get_by_role("heading", name="waiting for your administrators' approval")).to_be_visible()
            await page.get_by_label("Why do you need it?").fill(REASON)
            await page.get_by_role("button", name="Request access").click()
            await expect(page.get_by_text("your reason is with the administrators")).to_be_visible()
            _approve(ostiary, client_id, mcp_server)
            await page.goto(url)
            await expect(page.get_by_role("heading", name="act for you")).to_be_visible()
            await page.get_by_role("button", name="Allow").click()
            await expect(page.get_by_text("You can close this page.")).to_be_visible()

        agent = {}
        exec(compile(guide_code("agent.py"), str(GUIDE), "exec"), agent)
        result = await agent["whoami"](mcp_server, callback.uri, storage, person_in_browser, callback.code)
        await browser.close()
    assert not result.is_error, result
    return result.structured_content or json.loads(result.content[0].text), storage, seen["client_id"]


def _approve(ostiary, client_id: str, resource: str) -> None:
    """The administrator: the person's reason is there, with the registration."""
    shown = json.loads(ostiary.cli("registration", "show", client_id, "--json").stdout)
    assert shown["status"] == "pending"
    assert [r["reason"] for r in shown["access_requests"]] == [REASON]
    approved = ostiary.cli("registration", "approve", client_id, "--version", str(shown["version"]),
                           "--owner", "team-reports", "--purpose", "quarterly reports for people",
                           "--scope", "read", "--audience", resource, "--proofing-method", "owner_attestation",
                           "--assurance", "1")
    assert approved.returncode == 0, approved.stderr


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
