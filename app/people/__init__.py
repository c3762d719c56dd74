"""People: the persons on whose behalf agents act, apart from the console's administrators.

``accounts`` holds their services (the ``ostiary user`` commands call them), ``session`` who is
signed in (what the authorization endpoint asks: ``current_person``, ``require_person``,
``sign_in_url``), ``views`` the sign-in pages, ``oidc`` sign-on through the organisation's
OpenID provider.
"""
from __future__ import annotations

from flask import Flask

from app.http import sessions


def init_app(app: Flask) -> None:
    """The person's session cookie on the people's paths, the OpenID provider if configured, and
    the sign-in pages."""
    from app.people import oidc, session, views
    sessions.mount(app, session.realm(app.config["PERSON_SESSION_MINUTES"]))
    oidc.init_app(app)
    app.register_blueprint(views.bp)
