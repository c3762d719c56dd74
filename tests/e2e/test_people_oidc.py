"""People sign in through a real OpenID provider, in real headless Chromium: panva's
``oidc-provider`` from npm (``tests/peers/oidc/``, installed at test time), with its development
interactions (any account id signs in), in front of a real gunicorn Ostiary. The provider's
people: one who may sign in, one from another domain, one whose address is not verified, one in
no allowed group. Every call Ostiary makes to the provider (discovery, JWKS, token, userinfo)
goes through the safe fetcher, admitted on loopback by ``FETCH_ALLOW_HTTP_LOOPBACK``."""
from __future__ import annotations

import contextlib
import json
import re
import secrets
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests
from joserfc.jwk import RSAKey
from playwright.sync_api import expect, sync_playwright

from tests.servers import ROOT, free_port, start_server
from tests.waiting import until

pytestmark = pytest.mark.e2e

PROVIDER = ROOT / "tests" / "peers" / "oidc"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOTS = ROOT / "test-artifacts" / "screenshots"
PEOPLE = {
    "alice": {"email": "alice@example.com", "email_verified": True, "name": "Alice Example",
              "groups": ["staff", "agent-users"]},
    "mallory": {"email": "mallory@elsewhere.example", "email_verified": True, "name": "Mallory",
                "groups": ["agent-users"]},
    "una": {"email": "una@example.com", "email_verified": False, "name": "Una Verified", "groups": ["agent-users"]},
    "olga": {"email": "olga@example.com", "email_verified": True, "name": "Olga Outside", "groups": ["staff"]},
    "rhea": {"email": "rhea@example.com", "email_verified": True, "name": "Rhea Reporter",
             "groups": ["agent-users", "reporters"]},
}
# The policy's [[people]] rule: of the people who may sign in, only reporters authorize agents.
PEOPLE_RULES = """
[[people]]
name = "reporters"
clients = ["*"]
groups = ["reporters"]
"""
CALLBACK = "http://127.0.0.1/callback"


def ensure_installed() -> None:
    if (PROVIDER / "node_modules" / "oidc-provider").is_dir():
        return
    assert shutil.which("npm"), "npm (node 20) is needed to install the tests' OpenID provider"
    subprocess.run(["npm", "install", "--no-package-lock", "--no-audit", "--no-fund", "--loglevel=error"], cwd=PROVIDER,
                   check=True, timeout=300)


@contextlib.contextmanager
def provider(workdir: Path, redirect_uri: str):
    """A running oidc-provider on loopback; yields (issuer, client_id, client_secret)."""
    ensure_installed()
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    key = RSAKey.generate_key(2048, private=True)
    client_secret = secrets.token_urlsafe(32)
    config = {
        "issuer": issuer, "port": port, "cookie_key": secrets.token_urlsafe(32), "people": PEOPLE,
        "signing_jwk": {**key.as_dict(private=True), "alg": "RS256", "use": "sig", "kid": key.thumbprint()},
        "client": {"client_id": "ostiary", "client_secret": client_secret, "redirect_uris": [redirect_uri],
                   "grant_types": ["authorization_code"], "response_types": ["code"],
                   "token_endpoint_auth_method": "client_secret_basic"},
    }
    (workdir / "provider.json").write_text(json.dumps(config))
    log = workdir / "provider.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(["node", "server.mjs", str(workdir / "provider.json")], cwd=PROVIDER,
                                stdout=out, stderr=subprocess.STDOUT, env={"PATH": "/usr/bin:/bin"})
    try:
        until(lambda: _answers(issuer + "/.well-known/openid-configuration", proc, log),
              "the OpenID provider to listen", timeout=30)
        yield issuer, "ostiary", client_secret
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _answers(url: str, proc: subprocess.Popen, log: Path) -> bool:
    if proc.poll() is not None:
        raise RuntimeError(f"the OpenID provider exited with {proc.returncode}:\n{log.read_text()}")
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Ostiary with sign-on through the provider: people at example.com in the agent-users group."""
    folder = tmp_path_factory.mktemp("people-oidc")
    port = free_port()
    policy = folder / "policy.toml"
    policy.write_text((ROOT / "config" / "policy.toml").read_text() + PEOPLE_RULES)
    with provider(folder, f"http://127.0.0.1:{port}/signin/oidc/callback") as (issuer, client_id, secret), \
            start_server(folder, port=port, WORKERS=1, RATELIMIT_STORAGE_URI="memory://", LOGIN_RATE_LIMIT="1000 per minute",
                         PEOPLE_OIDC_ISSUER=issuer, PEOPLE_OIDC_CLIENT_ID=client_id,
                         PEOPLE_OIDC_CLIENT_SECRET=secret, PEOPLE_OIDC_NAME="Example Org",
                         PEOPLE_OIDC_SCOPES="openid,email,profile,groups",
                         PEOPLE_OIDC_ALLOWED_DOMAINS="example.com",
                         PEOPLE_OIDC_ALLOWED_GROUPS="agent-users", POLICY_FILE=str(policy)) as ostiary:
        ostiary.provider = issuer
        yield ostiary


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    """A page in a context of its own (no session at the provider from another test)."""
    context = browser.new_context(viewport={"width": 1000, "height": 800})
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.on("dialog", lambda dialog: pytest.fail(f"a dialog opened: {dialog.message}"))
    page.reported = []
    page.on("console", lambda message: page.reported.append(message.text) if message.type == "error" else None)
    yield page
    context.close()


def sign_in_at_the_provider(page, server, account: str, start: str = "/my/") -> None:
    """From an Ostiary page that needs a person, through the provider's login and consent pages."""
    page.goto(server.url + start)
    expect(page).to_have_url(re.compile(r"/signin\?next="))
    page.get_by_role("link", name="Sign in with Example Org").click()
    expect(page).to_have_url(re.compile("^" + re.escape(server.provider)))
    page.locator("input[name=login]").fill(account)
    page.locator("input[name=password]").fill("any password: the provider's dev login takes it")
    page.locator("button[type=submit]").click()
    page.get_by_role("button", name="Continue").click()  # the provider's consent page


def audit_events(server, event_type: str) -> list[dict]:
    exported = server.cli("audit", "export", "--type", event_type)
    assert exported.returncode == 0, exported.stderr
    return [json.loads(line) for line in exported.stdout.splitlines() if line.strip()]


def test_a_person_signs_in_through_the_provider_and_lands_where_they_were_going(page, server):
    sign_in_at_the_provider(page, server, "alice", start="/my/agents")
    expect(page).to_have_url(server.url + "/my/agents")
    page.goto(server.url + "/my/")
    expect(page.get_by_role("heading", name="Signed in as Alice Example")).to_be_visible()
    expect(page.get_by_text("alice@example.com")).to_be_visible()
    expect(page.get_by_text("agent-users, staff")).to_be_visible()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "people-oidc-signed-in.png"))

    cookies = {cookie["name"]: cookie for cookie in page.context.cookies(server.url)}
    assert cookies["ostiary_person"]["httpOnly"] and cookies["ostiary_person"]["sameSite"] == "Lax"
    listed = server.cli("user", "list", "--json")
    [alice] = [p for p in json.loads(listed.stdout) if p["email"] == "alice@example.com"]
    assert alice["source"] == "oidc" and alice["username"] is None and alice["groups"] == ["agent-users", "staff"]
    [created] = [e for e in audit_events(server, "person.created") if e["data"].get("subject") == "alice"]
    assert created["data"]["issuer"] == server.provider
    assert [e for e in audit_events(server, "person.signed_in") if e["data"]["sub"] == alice["sub"]]

    # The person's session is no console login.
    page.goto(server.url + "/console/pending")
    expect(page).to_have_url(re.compile(r"/console/login"))
    page.goto(server.url + "/my/")
    expect(page.get_by_role("heading", name="Signed in as Alice Example")).to_be_visible()
    assert not [text for text in page.reported if "Content Security Policy" in text], page.reported

    # Signing in again (still signed in at the provider, which answers at once) finds the same
    # person, by issuer and subject, not a second one.
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("link", name="Sign in with Example Org").click()
    expect(page.get_by_role("heading", name="Signed in as Alice Example")).to_be_visible()
    again = [p for p in json.loads(server.cli("user", "list", "--json").stdout) if p["email"] == "alice@example.com"]
    assert [p["sub"] for p in again] == [alice["sub"]]


@pytest.mark.parametrize("account, words", [
    ("mallory", "People with an address at elsewhere.example may not sign in here."),
    ("una", "does not say that your email address una@example.com is verified"),
    ("olga", "You are not in a group of Example Org whose members may sign in here."),
])
def test_the_rules_refuse_on_a_clear_page_and_it_is_audited(page, server, account, words):
    sign_in_at_the_provider(page, server, account)
    expect(page.get_by_role("heading", name="Not signed in")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text(words)
    page.goto(server.url + "/my/")
    expect(page).to_have_url(re.compile(r"/signin\?next=/my/$"))  # nobody is signed in
    refused = [e for e in audit_events(server, "person.sign_in_refused") if e["data"].get("subject") == account]
    assert refused and refused[-1]["decision"] == "deny" and words in refused[-1]["reason"]
    assert not [p for p in json.loads(server.cli("user", "list", "--json").stdout)
                if p["email"] == PEOPLE[account]["email"]]


def test_a_disabled_person_from_the_provider_cannot_sign_in(page, server, browser):
    sign_in_at_the_provider(page, server, "alice")
    expect(page.get_by_role("heading", name="Signed in as Alice Example")).to_be_visible()
    [alice] = [p for p in json.loads(server.cli("user", "list", "--json").stdout) if p["email"] == "alice@example.com"]
    disabled = server.cli("user", "disable", alice["sub"], "--reason", "left the team")
    assert disabled.returncode == 0, disabled.stderr
    try:
        page.goto(server.url + "/my/")
        expect(page).to_have_url(re.compile(r"/signin\?next=/my/$"))  # the session ended with it
        page.get_by_role("link", name="Sign in with Example Org").click()  # the provider answers at once
        expect(page.get_by_role("alert")).to_contain_text("Your account here is disabled")
        assert audit_events(server, "person.sign_in_refused")[-1]["data"]["sub"] == alice["sub"]
    finally:
        assert server.cli("user", "enable", alice["sub"]).returncode == 0


def test_a_callback_that_this_browser_did_not_start_is_refused(server):
    with requests.Session() as browser:
        response = browser.get(server.url + "/signin/oidc/callback", params={"code": "x", "state": "forged"},
                               timeout=10, allow_redirects=False)
        assert response.status_code == 400
        assert "was not started here" in response.text
        mine = browser.get(server.url + "/my/", timeout=10, allow_redirects=False)
        assert mine.status_code == 303 and mine.headers["Location"].startswith("/signin")
    [failed] = [e for e in audit_events(server, "person.sign_in_failed") if "not started here" in e["reason"]]
    assert failed["decision"] == "deny"


@pytest.fixture(scope="module")
def agent(server) -> str:
    """An approved public agent that acts for people: its client_id."""
    registered = requests.post(server.url + "/register", json={
        "client_name": "report helper", "token_endpoint_auth_method": "none", "response_types": ["code"],
        "grant_types": ["authorization_code", "refresh_token"], "redirect_uris": [CALLBACK], "scope": "read"},
        timeout=10)
    assert registered.status_code == 201, registered.text
    client_id = registered.json()["client_id"]
    approved = server.cli("registration", "approve", client_id, "--version", "1", "--owner", "team-reports",
                          "--purpose", "summaries for people", "--scope", "read", "--audience",
                          "https://api.example.com", "--proofing-method", "owner_attestation", "--assurance", "1")
    assert approved.returncode == 0, approved.stderr
    return client_id


def authorize_url(server, client_id: str) -> str:
    query = {"response_type": "code", "client_id": client_id, "redirect_uri": CALLBACK, "scope": "read",
             "state": "s-1", "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
             "code_challenge_method": "S256"}
    return server.url + "/authorize?" + urlencode(query)


def test_the_groups_from_the_provider_decide_who_may_authorize_an_agent(page, server, agent, browser):
    sign_in_at_the_provider(page, server, "alice")
    page.goto(authorize_url(server, agent))
    expect(page.get_by_text("You may not authorize report helper to act for you")).to_be_visible()
    assert "reporters" not in page.content() and "agent-users" not in page.content()
    assert page.url.startswith(server.url)  # shown, never sent back to the agent
    [refused] = [e for e in audit_events(server, "authorization.refused") if e["client_id"] == agent]
    assert refused["decision"] == "deny" and "deny by default" in refused["reason"]

    other = browser.new_context()  # rhea, in the reporters group, in a browser of her own
    try:
        rhea = other.new_page()
        rhea.set_default_timeout(15_000)
        sign_in_at_the_provider(rhea, server, "rhea", start=authorize_url(server, agent).removeprefix(server.url))
        expect(rhea.get_by_role("button", name=re.compile("Allow"))).to_be_visible()
        expect(rhea.get_by_text("report helper").first).to_be_visible()
    finally:
        other.close()
