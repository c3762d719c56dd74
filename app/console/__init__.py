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
from flask.sessions import SecureCookieSessionInterface
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

bp = Blueprint("console", __name__, url_prefix="/console")

# No inline script or style anywhere; nothing is fetched from anywhere but here, and
# client-supplied logos are never loaded (img-src 'self').
CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
       "base-uri 'none'; frame-ancestors 'none'")


@bp.after_request
def _security_headers(response):
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers.setdefault("Cache-Control", "no-store")
    return response


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    return render_template("console/error.html", error=exc), exc.code or 500


class ConsoleSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, opened for console requests only: nothing else reads it,
    and opening it (a signing serializer, the cookie's signature check) on every token request
    was CPU spent for nothing. Elsewhere the session is Flask's null session: never saved."""

    def open_session(self, app, request):
        if request.path != bp.url_prefix and not request.path.startswith(bp.url_prefix + "/"):
            return self.make_null_session(app)
        return super().open_session(app, request)


def init_app(app: Flask) -> None:
    """Session cookie rules, the login manager, and the blueprint."""
    app.config.update(
        SESSION_COOKIE_NAME="ostiary_console",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=app.config["ISSUER"].startswith("https://"),
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=app.config["CONSOLE_SESSION_MINUTES"]),
    )
    from app.console import auditlog, auth, clients, keys, pending, trust  # noqa: F401 (routes)
    from app.console.templating import init_templating
    app.session_interface = ConsoleSessionInterface()
    auth.login_manager.init_app(app)
    # Flask-Login's remember-cookie hook runs after every request of the app and opens the
    # session cookie (and answers ``Vary: Cookie``) even on /token; only console requests
    # can carry a console login, so it runs for them alone (auth.py registers it on bp).
    app.after_request_funcs[None].remove(auth.login_manager._update_remember_cookie)
    init_templating(app)
    app.register_blueprint(bp)
