"""The agent's logo on the consent page, in real headless Chromium against a real gunicorn server:
the browser loads it from Ostiary's origin only (never from the image server the client
registered), the page breaks no rule of its Content-Security-Policy, and an agent whose logo is
refused shows its initial in its place."""
from __future__ import annotations

import base64
import hashlib
import secrets
import uuid
from urllib.parse import urlencode, urlsplit

import pytest
import requests
from playwright.sync_api import expect, sync_playwright

from tests.servers import ROOT
from tests.test_consent_logo import ImageServer

pytestmark = pytest.mark.e2e

SHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PASSWORD = "e2e logo person password"
REDIRECT = "http://127.0.0.1:9/callback"  # never reached: the test stops at the consent page


@pytest.fixture(scope="module")
def images():
    server = ImageServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def person(live_server):
    username = f"logo-{uuid.uuid4().hex[:8]}"
    created = live_server.cli("user", "create", username, "--password-stdin", input=PASSWORD + "\n")
    assert created.returncode == 0, created.stderr
    return username


def approved_agent(server, name: str, logo_uri: str) -> str:
    body = requests.post(server.url + "/register", json={
        "client_name": name, "token_endpoint_auth_method": "none", "scope": "read",
        "grant_types": ["authorization_code"], "response_types": ["code"], "redirect_uris": [REDIRECT],
        "logo_uri": logo_uri}, timeout=10)
    assert body.status_code == 201, body.text
    client_id = body.json()["client_id"]
    approved = server.cli("registration", "approve", client_id, "--version", "1", "--owner", "team-e2e",
                          "--purpose", "e2e logos", "--scope", "read", "--audience", "https://api.example.com",
                          "--proofing-method", "owner_attestation", "--assurance", "1")
    assert approved.returncode == 0, approved.stderr
    return client_id


def authorize_url(server, client_id: str) -> str:
    challenge = base64.urlsafe_b64encode(hashlib.sha256(secrets.token_bytes(32)).digest()).rstrip(b"=").decode()
    return server.url + "/authorize?" + urlencode({
        "response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT, "scope": "read",
        "state": "s", "code_challenge": challenge, "code_challenge_method": "S256"})


def test_the_consent_page_shows_the_logo_from_its_own_origin_or_the_initial(live_server, images, person):
    good = approved_agent(live_server, "Lighthouse Agent", images.base + "/logo.png")
    refused = approved_agent(live_server, "Shady Agent", images.base + "/svg-said-png")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 900, "height": 600})
        page.set_default_timeout(10_000)
        reported, asked = [], []
        page.on("console", lambda message: reported.append(message.text) if message.type == "error" else None)
        page.on("request", lambda request: asked.append(request.url))

        page.goto(authorize_url(live_server, good))
        page.get_by_label("Username").fill(person)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="act for you")).to_be_visible()
        logo = page.locator(".agent-mark img")
        expect(logo).to_have_attribute("src", f"/authorize/logo/{good}")
        page.wait_for_function("document.querySelector('.agent-mark img').complete")
        assert logo.evaluate("img => img.naturalWidth") == 2  # the 2×2 PNG the image server holds, decoded
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "consent-logo.png"))

        page.goto(authorize_url(live_server, refused))
        expect(page.get_by_role("heading", name="act for you")).to_be_visible()
        page.wait_for_function("document.querySelector('.agent-mark img').complete")
        mark = page.locator(".agent-mark img")
        assert mark.evaluate("img => img.naturalWidth") == 0  # refused: a 404
        assert mark.evaluate("img => getComputedStyle(img, '::after').content") == '"S"'
        page.screenshot(path=str(SHOTS / "consent-logo-refused.png"))
        browser.close()

    own = urlsplit(live_server.url).netloc
    assert {urlsplit(url).netloc for url in asked} == {own}  # the image server was never asked by the browser
    assert images.hits["/logo.png"] == 1 and images.hits["/svg-said-png"] == 1  # Ostiary asked
    assert [text for text in reported if "Content Security Policy" in text] == []
