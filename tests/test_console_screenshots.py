"""tools/console_screenshots.py: its seeding runs through the real services and makes what the
screenshots show (the browser part is run by hand; docs/console.md says how)."""
import importlib.util
import sys

import pytest

from app.console.queries import pending_groups
from app.extensions import db
from app.models import Client, IssuedToken
from app.registration import approvals
from tests.servers import ROOT

from .factories import count

spec = importlib.util.spec_from_file_location("console_screenshots", ROOT / "tools" / "console_screenshots.py")
screenshots = sys.modules.setdefault(spec.name, importlib.util.module_from_spec(spec))
spec.loader.exec_module(screenshots)  # a script, not a package: loaded from its file


@pytest.fixture
def settings(settings, tmp_path):
    path = tmp_path / "demo-scopes.toml"
    path.write_text(screenshots.CATALOGUE)
    settings["SCOPES_FILE"] = str(path)
    return settings


def test_the_seed_makes_the_console_the_screenshots_show(app):
    seeded = screenshots.seed()
    assert count(Client, status="pending") == len(seeded.pending) == 6
    assert count(Client, status="active") == 4 and count(Client, status="suspended") == 1
    assert count(IssuedToken) == 13
    groups = pending_groups()
    assert groups[0].size == 3 and groups[0].software_id == "report-bot"
    assert any(w.startswith("possible impersonation") for g in groups for ws in g.warnings.values() for w in ws)
    assert db.session.get(Client, seeded.pending_verified).publisher is not None
    assert seeded.due_for_review in [c.client_id for c in approvals.reviews_due()]
