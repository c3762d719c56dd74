"""Every matching client, across pages, in real headless Chromium against a real server: the
inventory's "every matching" action, its confirmation naming how many and the first few, a
match that changed before the confirmation refused and shown again, then applied to exactly
the clients confirmed."""
from __future__ import annotations

import json
import uuid

import pytest
from playwright.sync_api import expect

from tests.e2e.test_console import browser, page, register, server, shot  # noqa: F401 (fixtures)

pytestmark = pytest.mark.e2e


def test_deny_every_matching_registration_across_pages(page, server):  # noqa: F811
    fleet = f"fleet-{uuid.uuid4().hex[:6]}"
    made = [register(server, client_name=f"{fleet} {i:02d}")["client_id"] for i in range(52)]  # two pages
    page.get_by_role("link", name="Inventory").click()
    page.get_by_label("Search (name, owner, client ID, software ID, publisher, address, host)").fill(fleet)
    page.get_by_label("Status").select_option("pending")
    page.get_by_role("button", name="Filter the inventory").click()
    expect(page.get_by_role("status")).to_have_text("52 clients match; page 1 of 2, 50 shown.")

    page.get_by_role("button", name="Deny every matching pending registration…").click()
    expect(page.get_by_role("heading", name="Deny 52 clients?")).to_be_visible()
    expect(page.get_by_text("the first 10 are named below, and 42 more")).to_be_visible()
    expect(page.get_by_role("cell", name="… and 42 more clients")).to_be_visible()
    expect(page.locator("tbody code")).to_have_count(10)
    shot(page, "bulk-confirm")

    late = register(server, client_name=f"{fleet} late")["client_id"]  # joins the match meanwhile
    page.get_by_label("Reason (recorded for each client)").fill("registration flood")
    page.get_by_role("button", name="Deny all these 52 clients").click()
    expect(page.get_by_role("alert")).to_contain_text("(52 then, 53 now, or others in their place): nothing "
                                                      "was changed")
    expect(page.get_by_role("heading", name="Deny 53 clients?")).to_be_visible()
    assert _status(server, made[0]) == "pending"  # nothing was denied

    page.get_by_role("button", name="Deny all these 53 clients").click()
    expect(page.get_by_text("Denied 53 clients.")).to_be_visible()
    expect(page.locator("p.count")).to_have_text("No clients match.")  # none pending any more
    denied = server.cli("registration", "list", "--status", "denied", "--json")
    assert {c for c in (*made, late)} <= {c["client_id"] for c in json.loads(denied.stdout)}
    audited = server.cli("audit", "export", "--type", "client.denied")
    assert audited.returncode == 0, audited.stderr
    assert all(audited.stdout.count(c) == 1 for c in (*made, late))


def _status(live, client_id: str) -> str:
    shown = live.cli("registration", "show", client_id, "--json")
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)["status"]
