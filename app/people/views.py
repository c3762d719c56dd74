"""The people's pages: signing in (with a local account, or through the organisation's OpenID
provider) and out, and ``/my/``, who is signed in. Thin views over ``app.people.accounts``,
``app.people.oidc`` and ``app.people.session``."""
from __future__ import annotations

import logging
import math

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.exceptions import HTTPException

from app.extensions import limiter
from app.http import pages
from app.people import accounts, oidc
from app.people.forms import SignInForm, SignOutForm
from app.people.session import (
    current_person,
    require_person,
    safe_next,
    sign_in,
    sign_out,
)

log = logging.getLogger(__name__)

bp = Blueprint("people", __name__)

WRONG = "Wrong username or password."


bp.after_request(pages.secure)


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    return render_template("people/error.html", error=exc), exc.code or 500


@bp.context_processor
def _signed_in():
    """Who is signed in, and a sign-out form, for the people's base template."""
    return {"signed_in": current_person(), "sign_out_form": SignOutForm()}


def _sign_in_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


@bp.route("/signin", methods=["GET", "POST"])
@limiter.limit(_sign_in_limit, methods=["POST"])
def signin():
    """The sign-in form; after it, ``next`` if it is a local path (``session.safe_next``)."""
    target = safe_next(request.args.get("next")) or url_for("people.me")
    if request.method == "GET" and current_person() is not None:
        return redirect(target, 303)
    form = SignInForm()
    if form.validate_on_submit():
        try:
            signed_in = accounts.authenticate(form.username.data, form.password.data, request.remote_addr)
        except accounts.LoginThrottled as exc:
            log.warning("sign-in refused for %r from %r: %s", form.username.data[:64], request.remote_addr,
                        exc.reason)
            minutes = math.ceil(exc.retry_after / 60)
            form.form_errors.append(f"Too many failed sign-ins for this account or from this address. "
                                    f"Try again in {minutes} minute{'s' if minutes != 1 else ''}.")
            return _page(form, 429, {"Retry-After": str(exc.retry_after)})
        if signed_in is None:
            log.info("sign-in failed for %r from %r", form.username.data[:64], request.remote_addr)
            form.password.errors.append(WRONG)
            return _page(form, 401)
        sign_in(signed_in)
        return redirect(target, 303)
    return _page(form, 400 if request.method == "POST" else 200)


@bp.get("/signin/oidc")
def oidc_start():
    """Off to the OpenID provider (``oidc.start``), coming back to ``next`` afterwards."""
    if not oidc.enabled():
        abort(404)
    try:
        return oidc.start(safe_next(request.args.get("next")))
    except oidc.SignInError as exc:
        return _not_signed_in(exc)


@bp.get(oidc.CALLBACK)
@limiter.limit(_sign_in_limit)
def oidc_callback():
    """The provider's answer (``oidc.complete``): signed in and on to ``next``, or a page saying
    why not."""
    if not oidc.enabled():
        abort(404)
    try:
        signed_in, target = oidc.complete()
    except oidc.SignInError as exc:
        return _not_signed_in(exc)
    sign_in(signed_in)
    return redirect(safe_next(target) or url_for("people.me"), 303)


@bp.post("/signout")
def signout():
    """Sign out: ends every session of this person, on every device (``accounts.sign_out``)."""
    sign_out()
    flash("You are signed out.")
    return redirect(url_for("people.signin"), 303)


@bp.get("/my/")
def me():
    return render_template("people/me.html", person=require_person())


def _page(form: SignInForm, status: int, headers=None):
    return render_template("people/signin.html", form=form, next=safe_next(request.args.get("next")),
                           provider=oidc.provider_name() if oidc.enabled() else None), status, headers or {}


def _not_signed_in(exc: oidc.SignInError):
    return render_template("people/not_signed_in.html", message=str(exc)), exc.status
