"""A person signs in and out in real headless Chromium against a real gunicorn server: the
person's cookie is HttpOnly and SameSite=Lax, it is no console login, the page breaks no rule of
its Content-Security-Policy, and ``next`` brings the person back where they were sent from."""
from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.servers import ROOT

pytestmark = pytest.mark.e2e

SHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PASSWORD = "e2e person password"


@pytest.fixture(scope="module")
def server(live_server):
    username = f"person-{uuid.uuid4().hex[:8]}"
    created = live_server.cli("user", "create", username, "--name", "Pat Example", "--email", "pat@example.com",
                              "--password-stdin", input=PASSWORD + "\n")
    assert created.returncode == 0, created.stderr
    live_server.person = username
    return live_server


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    """A page that fails the test on a dialog, and collects what the console reports (a CSP
    violation is reported there)."""
    context = browser.new_context(viewport={"width": 1000, "height": 800})
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.on("dialog", lambda dialog: pytest.fail(f"a dialog opened: {dialog.message}"))
    page.reported = []
    page.on("console", lambda message: page.reported.append(message.text) if message.type == "error" else None)
    yield page
    context.close()


def test_a_person_signs_in_comes_back_and_signs_out(page, server):
    page.goto(server.url + "/my/")
    expect(page).to_have_url(re.compile(r"/signin\?next=/my/$"))
    page.get_by_label("Username").fill(server.person)
    page.get_by_label("Password").fill("not the password at all")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("Wrong username or password.")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/signin\?next=/my/$"))  # still on its way back

    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Signed in as Pat Example")).to_be_visible()
    expect(page).to_have_url(server.url + "/my/")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "people-signed-in.png"))

    cookies = {cookie["name"]: cookie for cookie in page.context.cookies()}
    assert set(cookies) == {"ostiary_person"}
    assert cookies["ostiary_person"]["httpOnly"] and cookies["ostiary_person"]["sameSite"] == "Lax"
    assert "ostiary_person" not in page.evaluate("document.cookie")  # HttpOnly: no script reads it

    page.goto(server.url + "/console/pending")  # a person's session is no console login
    expect(page).to_have_url(re.compile(r"/console/login"))
    page.goto(server.url + "/my/")
    expect(page.get_by_role("heading", name="Signed in as Pat Example")).to_be_visible()

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You are signed out.")).to_be_visible()
    page.goto(server.url + "/my/")
    expect(page).to_have_url(re.compile(r"/signin\?next=/my/$"))
    assert not [text for text in page.reported if "Content Security Policy" in text], page.reported
