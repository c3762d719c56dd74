"""The authorization endpoint's pages (RFC 6749 §4.1): a thin view over ``app.oauth.authorization``.

GET ``/authorize`` checks the request, asks the person to sign in, and shows the consent page
(or, for an agent still pending, the waiting page); POST ``/authorize`` is the person's
decision, CSRF-protected. A redirect goes only to a redirect URI the client registered.
"""
from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)

from app.extensions import db, limiter
from app.http import pages
from app.models import Client
from app.models.client import PENDING, is_url_id, might_be_id
from app.oauth import authorization, logos
from app.people.session import current_person, require_person, sign_in_url
from app.policy import scopes as catalogue
from app.registration import access, documents
from app.registration.metadata import escape_display
from app.support.protocol import REFRESH_TOKEN

log = logging.getLogger(__name__)

bp = pages.protect(Blueprint("authorize", __name__))


def _document_limit() -> str:
    return current_app.config["CLIENT_DOCUMENT_RATE_LIMIT"]


def _not_first_sight() -> bool:
    """Spared the limit: a request that cannot make Ostiary fetch a document it has not seen,
    whose client_id is no URL, or the URL of a document already known
    (``app.registration.documents.known``)."""
    params = request.args if request.method == "GET" else request.form
    client_id = params.get("client_id")
    return not client_id or not documents.names_document(client_id) or documents.known(client_id)


@bp.route("/authorize", methods=["GET", "POST"])
# Anyone, not signed in, can name a URL here, and a URL not seen before is fetched, and its
# refusal audited: per caller address that is CLIENT_DOCUMENT_RATE_LIMIT (429 beyond it).
@limiter.limit(_document_limit, exempt_when=_not_first_sight)
def authorize():
    params = request.args if request.method == "GET" else request.form
    try:
        asked = authorization.parse(params, params.getlist("resource"))
    except authorization.ShownError as exc:
        return render_template("authorize/error.html", message=str(exc)), exc.status
    except authorization.RedirectedError as exc:
        return redirect(exc.request.error_uri(exc), 302 if request.method == "GET" else 303)
    person = current_person()
    if person is None:
        return redirect(sign_in_url(request.full_path if request.method == "GET" else None), 303)
    client = asked.client
    if client.status == PENDING:
        return _waiting(client)
    if request.method == "GET":
        if authorization.remembered(person.id, asked):
            return redirect(authorization.grant(person, asked, remember=False, consent="remembered"), 302)
        return _consent(asked, params.getlist("resource"))
    if request.form.get("decision") == "allow":
        return redirect(authorization.grant(person, asked, remember=request.form.get("remember") == "yes"), 303)
    return redirect(authorization.deny(person, asked), 303)


@bp.post("/authorize/request-access")
def request_access():
    person = current_person()
    if person is None:
        return redirect(sign_in_url(None), 303)
    client_id = request.form.get("client_id", "")
    try:
        access.request_access(person, client_id, request.form.get("reason", ""))
    except access.AccessRequestError as exc:
        db.session.rollback()
        client = db.session.get(Client, client_id) if might_be_id(client_id) else None
        if client is None or client.status != PENDING:
            return render_template("authorize/error.html", message=str(exc)), exc.status
        return _waiting(client, error=str(exc), status=400)
    return _waiting(db.session.get(Client, client_id))


def _waiting(client, *, error: str | None = None, status: int = 200):
    person = current_person()
    requested = next((r for r in access.access_requests(client.client_id) if r.person_id == person.id), None)
    return render_template("authorize/waiting.html", name=escape_display(client.client_name or client.client_id),
                           client_id=client.client_id, requested=requested, error=error,
                           logo=logos.src(client), initial=logos.initial(client)), status


def _consent(asked: authorization.Request, resources_asked: list[str]):
    client, approval = asked.client, asked.client.approval
    parts = urlsplit(asked.redirect_uri)
    pages.allow_form_redirect(f"{parts.scheme}://{parts.netloc}")
    described = catalogue.current().scopes
    config = current_app.config
    refresh = REFRESH_TOKEN in ((client.client_metadata or {}).get("grant_types") or [])
    return render_template(
        "authorize/consent.html", name=escape_display(client.client_name or client.client_id),
        logo=logos.src(client), initial=logos.initial(client),
        vouched_by=client.publisher.issuer if client.publisher else None,
        document_host=urlsplit(client.client_id).hostname if is_url_id(client.client_id) else None,
        purpose=escape_display(approval.purpose), owner=escape_display(approval.owner),
        scopes=[(scope, (described.get(scope) or {}).get("description")) for scope in asked.scopes],
        resources=asked.resources, resources_asked=resources_asked, hidden=asked.hidden,
        token_minutes=min(int(config["ACCESS_TOKEN_TTL"]), approval.max_token_ttl) // 60,
        refresh_days=int(config["REFRESH_TOKEN_TTL"]) // 86400 if refresh else None)


@bp.get("/my/agents")
def my_agents():
    person = require_person()
    return render_template("authorize/agents.html", connected=authorization.connected_agents(person),
                           requests=access.my_requests(person),
                           name=lambda client: escape_display(client.client_name or client.client_id))


@bp.post("/my/agents/<path:client_id>/disconnect", merge_slashes=False)  # a URL client id has slashes
def disconnect(client_id: str):
    person = require_person()
    try:
        revoked = authorization.disconnect(person, client_id)
    except authorization.NotConnected as exc:
        db.session.rollback()
        flash(str(exc))
    else:
        flash(f"Disconnected; {len(revoked)} access token(s) stopped working now.")
    return redirect(url_for("authorize.my_agents"), 303)
