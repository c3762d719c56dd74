"""Test-client helpers for the console: an administrator who logs in, forms with their CSRF token."""
from __future__ import annotations

import re
from html.parser import HTMLParser

from flask import g

from app.console.admins import create_admin
from app.extensions import db

PASSWORD = "correct horse battery staple"
CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|'
                  r'name="csrf_token" value="([^"]+)"')


def csrf_token(html: str) -> str:
    match = CSRF.search(html)
    assert match, "page has no CSRF token"
    return match.group(1) or match.group(2)


class Console:
    """Drives the console like a browser without JavaScript would."""

    def __init__(self, client, username="alice"):
        self.client, self.username = client, username

    def create_admin(self):
        create_admin(self.username, PASSWORD, actor="cli:test")
        return self

    def login(self, password=PASSWORD, username=None):
        page = self.client.get("/console/login")
        return self.client.post("/console/login", data={
            "csrf_token": csrf_token(page.get_data(as_text=True)),
            "username": username or self.username, "password": password})

    def post(self, path, data=None, page=None):
        """POST a form with the CSRF token from ``page`` (default: the page at ``path``'s parent)."""
        html = self.client.get(page or "/console/keys").get_data(as_text=True)
        return self.client.post(path, data={"csrf_token": csrf_token(html), **(data or {})})


def fresh_context_per_request(app) -> None:
    """Each request ends as it does in production, where it has an app context of its own: the
    ``app`` fixture keeps one for the whole test, so ``g`` (Flask-Login's user of the request,
    Flask-WTF's CSRF token) and the database session would carry over from one browser's
    request to another's, and a user loader or a stale row would go unnoticed."""

    @app.teardown_request
    def _end(_exc):
        for name in list(vars(g)):
            delattr(g, name)
        db.session.remove()


class _Controls(HTMLParser):
    def __init__(self):
        super().__init__()
        self.controls, self.label_targets, self.buttons = {}, set(), []
        self._in_button = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("input", "select", "textarea") and attrs.get("type") not in ("hidden", "submit"):
            self.controls[attrs.get("id")] = attrs.get("name")
        elif tag == "label":
            self.label_targets.add(attrs.get("for"))
        elif tag == "button":
            self._in_button, self.buttons = True, self.buttons + [attrs.get("aria-label") or ""]

    def handle_data(self, data):
        if self._in_button and data.strip():
            self.buttons[-1] = self.buttons[-1] or data.strip()

    def handle_endtag(self, tag):
        if tag == "button":
            self._in_button = False


def unlabelled(html: str) -> tuple[list, list, list]:
    """(controls without a <label for>, labels for nothing, buttons without text) on a page."""
    parser = _Controls()
    parser.feed(html)
    no_label = [(i, n) for i, n in parser.controls.items() if i is None or i not in parser.label_targets]
    dangling = [t for t in parser.label_targets if t not in parser.controls]
    return no_label, dangling, [b for b in parser.buttons if not b]
