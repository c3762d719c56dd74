"""Regenerate the console's screenshots in docs/images/ from a freshly seeded database.

    .venv/bin/python tools/console_screenshots.py            # writes docs/images/console-*.png
    .venv/bin/python tools/console_screenshots.py --out DIR  # somewhere else

It makes a fresh SQLite instance in a temporary folder (``ostiary init``), seeds it through the
real services (``seed``: registrations by ``register()``, approvals by the lifecycle, a trusted
publisher and its signed software statements, tokens from the real token endpoint, an
administrator), starts the real server (gunicorn with config/gunicorn.conf.py, as in
production), signs the administrator in in headless Chromium (/usr/bin/chromium, or
``--chromium``) and saves one PNG per page (``SHOTS``). Nothing outside the temporary folder
and the output folder is touched. ``seed`` is also what tests/test_console_screenshots.py runs.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

ADMIN, PASSWORD = "alice", "screenshots only, never a real password"
PUBLISHER = "https://agents.acme.example"
API = "https://reports.example.com"
WIDTH, HEIGHT = 1440, 900  # wide enough for the tables unwrapped; a shot is at most this tall
CATALOGUE = """
[levels.1]
name = "low"
[levels.2]
name = "substantial"
[levels.3]
name = "high"
[catalogue]
default_assurance = 1
proofing_methods = ["in_person", "document_check", "video_call", "software_statement", "owner_attestation"]
evidence_methods = ["in_person", "document_check", "software_statement"]
[scopes."reports:read"]
description = "reads the nightly usage reports"
default = true
[scopes."reports:write"]
description = "publishes reports"
[scopes."tickets:read"]
description = "reads support tickets"
[scopes."payments:write"]
assurance = 2
description = "moves money"
sensitive = true
"""


@dataclass
class Seeded:
    """The client ids the screenshots open."""
    pending_verified: str = ""
    active: str = ""
    due_for_review: str = ""
    suspended: str = ""
    pending: list = field(default_factory=list)
    approved: list = field(default_factory=list)


def seed(actor: str = "admin:alice") -> Seeded:
    """A realistic console, in the current app context, through the real services: an
    administrator; a trusted publisher; active agents, one signed by the publisher, one due for
    review within the review window, one suspended; with tokens from the token endpoint; and
    pending registrations: a self-asserted flood of three from one address, a look-alike of the
    publisher's agent, one more signed by the publisher, and a lone one."""
    from flask import current_app
    from joserfc import jwt
    from joserfc.jwk import ECKey

    from app.console.admins import create_admin
    from app.registration import lifecycle
    from app.registration.service import register
    from app.support import clock
    from app.trust import issuers

    seeded = Seeded()
    create_admin(ADMIN, PASSWORD, actor="cli:screenshots")
    key = ECKey.generate_key("P-256", parameters={"kid": "acme-1", "alg": "ES256", "use": "sig"}, private=True)
    issuers.add(issuers.PUBLISHERS, PUBLISHER, jwks={"keys": [key.as_dict(private=False)]}, assurance_level=2,
                actor=actor)

    def statement(software_id: str, name: str) -> str:
        claims = {"iss": PUBLISHER, "iat": int(clock.timestamp()), "software_id": software_id,
                  "client_name": name, "software_version": "2.4"}
        return jwt.encode({"alg": "ES256", "kid": key.kid}, claims, key, algorithms=["ES256"])

    def registered(name: str, address: str, **metadata):
        body = {"client_name": name, "token_endpoint_auth_method": "client_secret_basic",
                "grant_types": ["client_credentials"], "scope": "reports:read", "audiences": [API], **metadata}
        return register(body, address=address)

    def approve(client_id: str, owner: str, purpose: str, scopes: list, review_days: int = 30, level: int = 1):
        now = clock.now()
        lifecycle.approve(client_id, version=lifecycle.get_client(client_id).version, owner=owner, purpose=purpose,
                          scopes=scopes, audiences=[API], serves=[], max_token_ttl=600,
                          expires_at=now + timedelta(days=90), review_at=now + timedelta(days=review_days),
                          assurance_level=level, proofing_method="document_check", evidence="CHG-2291", actor=actor)

    agents = [
        ("nightly usage reporter", "reporting team <reports@example.com>", "Builds the nightly usage reports",
         ["reports:read"], 30, "https://reporter.example/"),
        ("ticket triage agent", "support tooling <support-tools@example.com>", "Sorts incoming support tickets",
         ["reports:read", "tickets:read"], 6, "https://triage.example/"),   # due for review in 6 days
        ("quarterly summariser", "finance analytics <fin-analytics@example.com>", "Summarises quarterly reports",
         ["reports:read", "reports:write"], 12, "https://summaries.example/"),  # due in 12 days
        ("legacy export job", "data platform <data@example.com>", "Exports reports to the old warehouse",
         ["reports:read"], 30, "https://export.example/"),
    ]
    made = []
    for name, owner, purpose, scopes, review_days, uri in agents:
        reg = registered(name, "192.0.2.10", client_uri=uri, scope=" ".join(scopes))
        approve(reg.client.client_id, owner, purpose, scopes, review_days)
        made.append(reg)
    acme = registered("Acme Agent", "198.51.100.20", software_statement=statement("acme-agent", "Acme Agent"))
    approve(acme.client.client_id, "acme integration <acme@example.com>", "Acme's reporting connector",
            ["reports:read"], level=2)
    made.append(acme)
    seeded.active, seeded.due_for_review = made[0].client.client_id, made[1].client.client_id
    seeded.approved = [reg.client.client_id for reg in made]

    http = current_app.test_client()
    for reg, count in zip(made, (6, 3, 1, 1, 2)):
        for _ in range(count):
            response = http.post("/token", auth=(reg.client.client_id, reg.client_secret),
                                 data={"grant_type": "client_credentials", "scope": "reports:read", "resource": API})
            assert response.status_code == 200, response.get_json()
    seeded.suspended = made[3].client.client_id
    lifecycle.suspend(seeded.suspended, reason="warehouse retired; export no longer needed", actor=actor)

    for _ in range(3):  # one software, one address: a group, and a flood if it goes on
        seeded.pending.append(registered("report-bot", "203.0.113.7", software_id="report-bot",
                                         client_uri="https://report-bot.example/").client.client_id)
    seeded.pending.append(registered("\u0410cme Agent", "203.0.113.45",  # a Cyrillic A: looks like Acme's
                                     software_id="acme-agent-helper").client.client_id)
    verified = registered("Acme Deploy Agent", "198.51.100.20",
                          software_statement=statement("acme-deploy", "Acme Deploy Agent"))
    seeded.pending_verified = verified.client.client_id
    seeded.pending.append(verified.client.client_id)
    seeded.pending.append(registered("invoice sorter", "192.0.2.77", client_uri="https://invoices.example/",
                                     scope="reports:read payments:write").client.client_id)
    return seeded


# ---- the server and the browser ---------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def environment(instance: Path, port: int) -> dict:
    """The settings of the throw-away instance: its own folder, secrets and catalogue."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSTIARY_")}
    (instance / "scopes.toml").write_text(CATALOGUE)
    env.update({
        "OSTIARY_INSTANCE_PATH": str(instance), "OSTIARY_ISSUER": f"http://127.0.0.1:{port}",
        "OSTIARY_BIND": f"127.0.0.1:{port}", "OSTIARY_WORKERS": "1",
        "OSTIARY_RATELIMIT_STORAGE_URI": "memory://", "OSTIARY_SCOPES_FILE": str(instance / "scopes.toml"),
        "OSTIARY_SECRET_KEY": secrets.token_urlsafe(32), "OSTIARY_KEY_ENCRYPTION_KEY": secrets.token_urlsafe(32),
    })
    return env


@contextlib.contextmanager
def server(env: dict, log: Path):
    """gunicorn as in production, until the block ends."""
    with log.open("ab") as out:
        proc = subprocess.Popen([str(BIN / "gunicorn"), "-c", "config/gunicorn.conf.py", "asgi:app"], cwd=ROOT,
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = "http://" + env["OSTIARY_BIND"]
    try:
        import requests
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the server did not start:\n{log.read_text()}")
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(url + "/health", timeout=2).status_code == 200:
                    break
            time.sleep(0.2)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(15)


def shoot(url: str, seeded: Seeded, out: Path, chromium: str) -> list[Path]:
    """Sign in and save each page of ``SHOTS``; returns the files written."""
    from playwright.sync_api import expect, sync_playwright

    written = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
        page.set_default_timeout(15_000)
        page.goto(url + "/console/login")
        page.get_by_label("Username").fill(ADMIN)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("button", name="Log out")).to_be_visible()
        page.goto(url + "/console/")
        expect(page.get_by_role("heading", name="Reviews due")).to_be_visible()

        def save(name: str, target=None) -> None:
            """The viewport, as tall as the page's content up to HEIGHT (no empty space under a short page)."""
            path = out / f"console-{name}.png"
            if target is None:
                page.set_viewport_size({"width": WIDTH, "height": HEIGHT})
                box = page.locator("main").bounding_box()
                page.set_viewport_size({"width": WIDTH, "height": min(HEIGHT, int(box["y"] + box["height"]) + 24)})
            (target or page).screenshot(path=str(path))
            written.append(path)

        save("reviews")
        page.goto(url + "/console/pending")
        save("pending")
        page.goto(f"{url}/console/clients/{seeded.pending_verified}")
        page.get_by_label("Proofing method").select_option("software_statement")
        page.get_by_label("Evidence reference (ticket, document, contact)").fill("CHG-2304")
        page.get_by_label("Owner (an accountable person or team)").fill("acme integration <acme@example.com>")
        page.get_by_label("Purpose").fill("Deploys Acme's reporting connector")
        save("approval", page.get_by_role("region", name="Proof and approve"))
        page.goto(f"{url}/console/clients/{seeded.active}")
        save("client")
        page.goto(url + "/console/inventory?sort=last_token")
        save("inventory")
        page.goto(f"{url}/console/audit?client_id={seeded.suspended}")
        save("audit")
        browser.close()
    return written


SHOTS = ("reviews", "pending", "approval", "client", "inventory", "audit")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate the console screenshots from a seeded database.")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images", help="where the PNGs go")
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="the Chromium to drive")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ostiary-screenshots-") as folder:
        instance = Path(folder)
        env = environment(instance, _free_port())
        init = subprocess.run([str(BIN / "ostiary"), "init"], cwd=ROOT, env=env, capture_output=True, text=True,
                              check=False)
        if init.returncode != 0:
            raise SystemExit(f"ostiary init failed:\n{init.stderr}")
        os.environ.update({k: v for k, v in env.items() if k.startswith("OSTIARY_")})
        from app import create_app
        app = create_app()
        with app.app_context():
            seeded = seed()
            from app.extensions import db
            db.session.remove()
            db.engine.dispose()
        with server(env, instance / "server.log") as url:
            written = shoot(url, seeded, args.out, args.chromium)
    for path in written:
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
