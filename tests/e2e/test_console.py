"""The admin console in real headless Chromium against a real gunicorn server.

A registration made over the real POST /register is proofed and approved in the
browser, gets a token from /token, is suspended in the browser, and its next token
request is refused. Screenshots of the main pages go to test-artifacts/screenshots/.
"""
from __future__ import annotations

import json
import re
import uuid

import jwt as pyjwt
import pytest
import requests
from joserfc.jwk import ECKey
from playwright.sync_api import expect, sync_playwright

from tests.servers import ROOT

pytestmark = pytest.mark.e2e

SHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PASSWORD = "e2e console password"
SCRIPT = '<script>document.title="pwned"</script>'
AUDIENCE = "https://reports.example.com"


@pytest.fixture(scope="module")
def server(live_server):
    username = f"admin-{uuid.uuid4().hex[:8]}"
    created = live_server.cli("admin", "create", username, "--password-stdin", input=PASSWORD + "\n")
    assert created.returncode == 0, created.stderr
    live_server.admin = username
    return live_server


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server):
    """A logged-in console page; fails the test if any dialog (an injected alert) opens."""
    context = browser.new_context(viewport={"width": 1280, "height": 1200})
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.on("dialog", lambda dialog: pytest.fail(f"a dialog opened: {dialog.message}"))
    page.goto(server.url + "/console/pending")  # the home page (/console/) is the review queue
    expect(page).to_have_url(re.compile(r"/console/login"))
    page.get_by_label("Username").fill(server.admin)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Pending registrations")).to_be_visible()
    yield page
    context.close()


def shot(page, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    # Viewport only: a full-page shot resizes the page and headless Chromium then misplaces clicks.
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def register(server, **metadata) -> dict:
    body = {"client_name": "nightly reporter", "token_endpoint_auth_method": "client_secret_basic",
            "grant_types": ["client_credentials"], "scope": "reports:read", "audiences": [AUDIENCE],
            "client_uri": "https://reporter.example/", **metadata}
    response = requests.post(server.url + "/register", json=body, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()


def token(server, reg) -> requests.Response:
    return requests.post(server.url + "/token", auth=(reg["client_id"], reg["client_secret"]), timeout=10,
                         data={"grant_type": "client_credentials", "scope": "reports:read",
                               "resource": AUDIENCE})


def test_proof_approve_token_suspend_refused(page, server):
    reg = register(server, client_name=f"nightly reporter {uuid.uuid4().hex[:6]}")
    name = reg["client_name"]
    refused = token(server, reg).json()
    assert refused["error"] == "unauthorized_client" and "pending approval" in refused["error_description"]

    page.reload()
    row = page.get_by_role("row").filter(has_text=name)
    expect(row).to_contain_text("reports:read")
    expect(row).to_contain_text("client_secret_basic")
    shot(page, "pending")

    row.get_by_role("link", name=name).click()
    expect(page.get_by_role("heading", name=name)).to_be_visible()
    expect(page.get_by_label("Proofing method")).to_have_value("")  # nothing chosen in advance
    expect(page.get_by_label("reports:read")).not_to_be_checked()
    page.get_by_label("Proofing method").select_option("document_check")
    page.get_by_label("Evidence reference").fill("CHG-1234")
    page.get_by_label("Owner").fill("reporting team <reports@example.com>")
    page.get_by_label("Purpose").fill("Builds the nightly usage reports")
    page.get_by_label("reports:read").check()
    page.get_by_label("Assurance level of this proofing").select_option("2")
    page.get_by_role("button", name="Show scopes allowed at this level").click()
    expect(page.get_by_text("Scopes offered for assurance level 2")).to_be_visible()
    # Showing the scopes of another level lost nothing typed.
    expect(page.get_by_label("Proofing method")).to_have_value("document_check")
    expect(page.get_by_label("Evidence reference")).to_have_value("CHG-1234")
    expect(page.get_by_label("Owner")).to_have_value("reporting team <reports@example.com>")
    expect(page.get_by_label("Purpose")).to_have_value("Builds the nightly usage reports")
    expect(page.get_by_label("reports:read")).to_be_checked()
    expect(page.get_by_label("Audiences (one URL per line)")).to_have_value(AUDIENCE)
    page.get_by_label("Maximum token lifetime (seconds)").fill("600")
    shot(page, "registration")
    page.get_by_role("button", name="Approve this client").click()
    expect(page.get_by_text(f"Approved {name}.")).to_be_visible()
    expect(page.locator("h1 .status")).to_have_text("active")
    expect(page.get_by_text("by admin:" + server.admin)).to_be_visible()

    issued = token(server, reg)
    assert issued.status_code == 200, issued.text
    access_token = issued.json()["access_token"]
    signing_key = pyjwt.PyJWKClient(server.url + "/jwks.json").get_signing_key_from_jwt(access_token)
    claims = pyjwt.decode(access_token, signing_key.key, algorithms=["ES256", "RS256"], audience=AUDIENCE,
                          issuer=server.url)
    assert claims["client_id"] == reg["client_id"] and claims["scope"] == "reports:read"

    page.get_by_role("link", name="Inventory").click()
    row = page.get_by_role("row").filter(has_text=name)
    expect(row).to_contain_text("reporting team")
    expect(row.get_by_role("cell").nth(8)).to_have_text("1")  # tokens in the last 24 h
    shot(page, "inventory")

    row.get_by_role("link", name=name).click()
    page.get_by_label("Reason for suspending").fill("owner left the company")
    page.get_by_role("button", name="Suspend this client").click()
    expect(page.get_by_text("gets no new token until an administrator reactivates it")).to_be_visible()
    assert token(server, reg).status_code == 200  # not yet: the second step names what will happen
    page.get_by_role("button", name=f"Suspend {name} now").click()
    expect(page.locator("h1 .status")).to_have_text("suspended")

    after = token(server, reg)
    assert after.status_code == 400
    assert after.json()["error"] == "unauthorized_client" and "suspended" in after.json()["error_description"]

    page.get_by_role("link", name="Audit trail").click()
    page.get_by_label("Client ID").fill(reg["client_id"])
    page.get_by_role("button", name="Search the trail").click()
    for event in ("client.registered", "client.approved", "token.issued", "client.suspended"):
        expect(page.get_by_role("cell", name=event, exact=True).first).to_be_visible()
    shot(page, "audit")


def test_script_in_client_name_renders_as_text(page, server):
    reg = register(server, client_name=SCRIPT, client_uri="https://reporter.example/")
    page.reload()
    expect(page.get_by_role("link", name=SCRIPT)).to_be_visible()
    page.get_by_role("link", name=SCRIPT).click()
    expect(page.get_by_role("heading", name=SCRIPT)).to_be_visible()
    assert page.title() != "pwned" and page.locator("script").count() == 0
    expect(page.get_by_role("link", name="https://reporter.example/")).to_have_attribute(
        "rel", "noopener noreferrer nofollow")
    csp = page.request.get(page.url).headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src" not in csp
    assert reg["client_id"] in page.content()


def test_form_post_without_csrf_token_is_refused(page, server):
    page.get_by_role("link", name="Keys").click()
    kids_before = page.locator("tbody code").all_inner_texts()
    shot(page, "keys")
    # The browser's own cookies, a form post without the token: refused, nothing rotated.
    response = page.request.post(server.url + "/console/keys/rotate", form={"submit": "rotate"})
    assert response.status == 400 and "CSRF" in response.text()
    page.reload()
    assert page.locator("tbody code").all_inner_texts() == kids_before
    expect(page.locator("tbody tr").filter(has_text="active")).to_have_count(1)


def test_add_and_remove_a_publisher(page, server):
    issuer = f"https://publisher-{uuid.uuid4().hex[:6]}.example"
    key = ECKey.generate_key("P-256", parameters={"alg": "ES256", "use": "sig"}, private=True)
    page.get_by_role("link", name="Publishers & issuers").click()
    form = page.get_by_role("region", name="Add a publisher")
    form.get_by_label("Issuer (the statement's iss)").fill(issuer)
    form.get_by_label("Or the JWKS itself (JSON)").fill(json.dumps({"keys": [key.as_dict(private=False)]}))
    form.get_by_label("Assurance level of its statements").select_option("2")
    form.get_by_role("button", name="Add this publisher").click()
    expect(page.get_by_text(f"Added the publisher {issuer}.")).to_be_visible()
    expect(page.get_by_role("row").filter(has_text=issuer)).to_contain_text("ES256")
    expect(page.get_by_role("region", name="Add a workload-identity issuer").get_by_label(
        "Audience the tokens must carry")).to_be_visible()
    shot(page, "trust")
    page.get_by_role("button", name=f"Remove publisher {issuer}").click()
    expect(page.get_by_text(f"Removed the publisher {issuer}.")).to_be_visible()
    expect(page.get_by_role("row").filter(has_text=issuer)).to_have_count(0)


def test_tick_two_registrations_confirm_and_deny_them(page, server):
    """The checkboxes sit in the queue's tables and join the selection form by its id (form=…):
    a real browser must send them, and nothing is denied before the confirmation."""
    tag = uuid.uuid4().hex[:6]
    regs = [register(server, client_name=f"bulk {tag} {i}", client_uri=f"https://bulk-{tag}.example/")
            for i in range(3)]
    page.reload()
    for reg in regs[:2]:
        page.get_by_role("row").filter(has_text=reg["client_name"]).get_by_label("select").check()
    page.get_by_role("button", name="Deny the selected registrations…").click()
    expect(page.get_by_role("heading", name="Deny 2 clients?")).to_be_visible()
    expect(page.get_by_role("row").filter(has_text=regs[2]["client_name"])).to_have_count(0)
    shot(page, "bulk-confirm")
    page.get_by_label("Reason (recorded for each client)").fill(f"flood {tag}")
    page.get_by_role("button", name="Deny these 2 clients").click()
    expect(page.get_by_text("Denied 2 clients.")).to_be_visible()
    expect(page.get_by_role("row").filter(has_text=regs[0]["client_name"])).to_have_count(0)
    expect(page.get_by_role("row").filter(has_text=regs[2]["client_name"])).to_have_count(1)

    page.get_by_role("link", name="Inventory").click()
    page.get_by_label("Search").fill(f"bulk-{tag}.example")
    page.get_by_label("Status", exact=True).select_option("denied")
    page.get_by_role("button", name="Filter the inventory").click()
    expect(page.get_by_text("2 clients match.")).to_be_visible()
