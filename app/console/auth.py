"""Console sign-in: argon2 passwords (``app.console.admins``), Flask-Login sessions, audited attempts."""
from __future__ import annotations

import logging
import math

from flask import (
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user

from app.console import admins, bp
from app.console.forms import LoginForm
from app.extensions import db, limiter
from app.models import Admin

log = logging.getLogger(__name__)

login_manager = LoginManager()
login_manager.login_view = "console.login"
login_manager.login_message = "Log in to use the console."
login_manager.session_protection = "strong"
bp.after_request(login_manager._update_remember_cookie)  # the console's only (see init_app)


class ConsoleUser(UserMixin):
    def __init__(self, admin: Admin | admins.SignedIn):
        # The id kept in the session names the administrator's session generation too: when
        # it is raised (logout, password change, disabling; app.console.admins) the session is refused.
        self.id = f"{admin.id}.{admin.session_generation}"
        self.username = admin.username

    @property
    def actor(self) -> str:
        return f"admin:{self.username}"


@login_manager.user_loader
def _load(user_id: str):
    admin_id, _, generation = user_id.partition(".")
    if not (admin_id.isdigit() and generation.isdigit()):
        return None  # not a session this version made
    admin = db.session.get(Admin, int(admin_id))
    return ConsoleUser(admin) if admins.session_is_current(admin, int(generation)) else None


def actor() -> str:
    """The audit actor of the signed-in administrator: ``admin:<username>``."""
    return current_user.actor


@bp.before_request
def _require_login():
    """Every console page but the login page needs a signed-in administrator (deny by default)."""
    if request.endpoint != "console.login" and not current_user.is_authenticated:
        return login_manager.unauthorized()
    return None


def _login_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


def _safe_next(target: str | None) -> str:
    """Only a console path: never an open redirect to another site."""
    if target and target.startswith("/console") and "//" not in target and "\\" not in target:
        return target
    return url_for("console.pending")


def _clear_session() -> None:
    session.clear()
    g.pop("csrf_token", None)  # Flask-WTF caches the token of the old session for this context


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("console.pending"))
    form = LoginForm()
    if form.validate_on_submit():
        try:
            admin = admins.log_in(form.username.data, form.password.data, request.remote_addr)
        except admins.LoginThrottled as exc:
            log.warning("console login refused for %r from %r: %s", form.username.data[:64],
                        request.remote_addr, exc.reason)
            minutes = math.ceil(exc.retry_after / 60)
            form.form_errors.append(f"Too many failed logins for this account or from this address. "
                                    f"Try again in {minutes} minute{'s' if minutes != 1 else ''}.")
            return (render_template("console/login.html", form=form), 429,
                    {"Retry-After": str(exc.retry_after)})
        if admin is None:
            log.info("console login failed for %r from %r", form.username.data[:64], request.remote_addr)
            form.password.errors.append("Wrong username or password.")
            return render_template("console/login.html", form=form), 401
        _clear_session()  # nothing from before the login survives it
        session.permanent = True  # expires after CONSOLE_SESSION_MINUTES without a request
        login_user(ConsoleUser(admin))
        return redirect(_safe_next(request.args.get("next")), 303)
    return render_template("console/login.html", form=form)


@bp.post("/logout")
def logout():
    """Log out: ends every console session of this administrator, on every device (app.console.admins)."""
    admins.log_out(current_user.username)
    logout_user()
    _clear_session()
    flash("You are logged out.")
    return redirect(url_for("console.login"), 303)

