"""The admin web console under ``/console``: server-rendered pages, views and forms only.

Every state change goes through the service functions the CLI and HTTP
endpoints use (``app.registration.lifecycle``, ``app.signing.rotate``, …); the
views parse a form, call one service with ``actor="admin:<username>"``, and
render or redirect.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from flask import Blueprint, Flask, render_template
from flask_login.utils import _user_context_processor
from werkzeug.exceptions import HTTPException

from app.http import pages, sessions

log = logging.getLogger(__name__)

bp = Blueprint("console", __name__, url_prefix="/console")
# Flask-Login's ``current_user`` in the console's templates only (see init_app): loaded on another
# realm's page, it would read, and with its session protection write, that realm's session.
bp.context_processor(_user_context_processor)



bp.after_request(pages.secure)


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    return render_template("console/error.html", error=exc), exc.code or 500


def init_app(app: Flask) -> None:
    """The console's session cookie, the login manager, and the blueprint."""
    # Opened for console requests only, and by no other path (app.http.sessions). The salt is
    # Flask's own, so that console sessions made before realms survive.
    lifetime = timedelta(minutes=app.config["CONSOLE_SESSION_MINUTES"])
    app.config["PERMANENT_SESSION_LIFETIME"] = lifetime  # Flask's name for it, as before realms
    sessions.mount(app, sessions.Realm(cookie="ostiary_console", salt="cookie-session",
                                       prefixes=(bp.url_prefix,), lifetime=lifetime))
    from app.console import (  # noqa: F401 (routes)
        auditlog,
        auth,
        bulk,
        clients,
        inventory,
        keys,
        pending,
        reviews,
        trust,
    )
    from app.console.templating import init_templating
    auth.login_manager.init_app(app, add_context_processor=False)
    # Flask-Login's remember-cookie hook runs after every request of the app and opens the
    # session cookie (and answers ``Vary: Cookie``) even on /token; only console requests
    # can carry a console login, so it runs for them alone (auth.py registers it on bp).
    app.after_request_funcs[None].remove(auth.login_manager._update_remember_cookie)
    # Likewise its templates' ``current_user``, for console pages alone (registered on bp above).
    init_templating(app)
    app.register_blueprint(bp)
