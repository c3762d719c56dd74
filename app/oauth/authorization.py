"""The authorization request (RFC 6749 §4.1.1) of an agent acting for a person, and what a
person's decision on it writes: a code, a remembered consent, a request for access.

Only ``response_type=code``, with PKCE ``S256`` required (RFC 7636; RFC 9700 §2.1.1), ``state``
passed through, ``resource`` (RFC 8707) bound into the code, and the ``iss`` parameter on every
response (RFC 9207). Until the client and its redirect URI are trusted, an error is shown to the
person and never redirected (RFC 6749 §4.1.2.1: an open redirector otherwise); after, it goes
back to the client, redirected. The approval queue still rules: a pending agent gets no code,
and what a person may grant lies within the agent's approval.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from authlib.common.urls import add_params_to_uri
from flask import current_app
from sqlalchemy import select

from app import audit
from app.extensions import db
from app.models import AuthorizationCode, Client, Consent, IssuedToken, RefreshToken
from app.models.client import ACTIVE, CLIENT_ID_MAX, PENDING, might_be_id
from app.oauth import tokens
from app.people.session import current_person
from app.policy import PersonFacts, load, within_approval
from app.registration import documents
from app.registration.metadata import LOOPBACK_REDIRECT_HOSTS
from app.support import clock, hashing
from app.support.echo import safe_echo
from app.support.protocol import AUTHORIZATION_CODE, RESPONSE_TYPE_CODE

log = logging.getLogger(__name__)

# RFC 7636 §4.2: BASE64URL(SHA256(verifier)), 43 characters unpadded
S256_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")
SINGLE = ("response_type", "client_id", "redirect_uri", "scope", "state", "code_challenge",
          "code_challenge_method")  # RFC 6749 §3.1: "MUST NOT be included more than once"


class ShownError(Exception):
    """The request cannot be answered to its client: shown to the person, never redirected.
    ``status``: 400 for a request that is wrong, 403 for one the policy refuses this person."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


class RedirectedError(Exception):
    """An RFC 6749 §4.1.2.1 error, sent back to the client's redirect URI (``request``)."""

    def __init__(self, error: str, description: str):
        super().__init__(description)
        self.error, self.description = error, description
        self.request: Request | None = None


@dataclass
class Request:
    """A checked authorization request."""
    client: Client
    redirect_uri: str
    redirect_uri_given: bool
    scopes: list[str]
    resources: list[str]
    code_challenge: str
    state: str | None

    def redirect(self, params: list[tuple[str, str]]) -> str:
        """The redirect URI with ``params``, ``state`` and ``iss`` (RFC 9207 §2) added."""
        if self.state is not None:
            params = [*params, ("state", self.state)]
        return add_params_to_uri(self.redirect_uri, [*params, ("iss", current_app.config["ISSUER"])])

    def error_uri(self, error: RedirectedError) -> str:
        return self.redirect([("error", error.error), ("error_description", error.description)])

    @property
    def hidden(self) -> dict:
        """The parameters that carry the request through the consent form."""
        values = {"response_type": RESPONSE_TYPE_CODE, "client_id": self.client.client_id,
                  "scope": " ".join(self.scopes), "code_challenge": self.code_challenge,
                  "code_challenge_method": "S256"}
        if self.redirect_uri_given:
            values["redirect_uri"] = self.redirect_uri
        if self.state is not None:
            values["state"] = self.state
        return values


def redirect_matches(given: str, registered: str) -> bool:
    """RFC 6749 §3.1.2.3: the same string; except that for a loopback redirect URI of a native
    client the port may differ (RFC 8252 §7.3), as the port is picked when the client runs."""
    if given == registered:
        return True
    try:
        g, r = urlsplit(given), urlsplit(registered)
        g.port  # noqa: B018 (a malformed port raises here)
    except ValueError:
        return False
    return (r.scheme == g.scheme == "http" and r.hostname in LOOPBACK_REDIRECT_HOSTS
            and g.hostname == r.hostname and (g.path, g.query, g.fragment) == (r.path, r.query, "")
            and g.username is None and g.password is None)


def parse(params, resources: list[str]) -> Request:
    """Check an authorization request: ``ShownError`` while the client or its redirect URI is
    not trusted, ``RedirectedError`` (to be sent with ``Request.error_uri``) after."""
    repeated = [name for name in SINGLE if len(params.getlist(name)) > 1]
    client_id = params.get("client_id")
    if not client_id:
        raise ShownError("The request names no client (client_id is missing).")
    if len(client_id) > CLIENT_ID_MAX:
        raise ShownError(f"The request's client_id is longer than {CLIENT_ID_MAX} characters; no client here "
                         "has such an id.")
    if not might_be_id(client_id):
        raise ShownError("The request's client_id holds control characters; no client here has such an id.")
    if documents.names_document(client_id):
        try:  # before the session's first read: the fetch must not hold a transaction
            documents.resolve(client_id)
        except documents.DocumentError as exc:
            raise ShownError(f"The client's metadata document cannot be used: {exc}") from None
    client = db.session.get(Client, client_id) if not documents.switched_off(client_id) else None
    if client is None:
        raise ShownError("The request names a client that is not registered here.")
    registered = (client.client_metadata or {}).get("redirect_uris") or []
    given = params.get("redirect_uri")
    if given is None and len(registered) != 1:
        raise ShownError("The request names no redirect URI, and the client registered "
                         f"{'several' if registered else 'none'}.")
    if given is not None and not any(redirect_matches(given, uri) for uri in registered):
        raise ShownError("The redirect URI of the request is not one the client registered; "
                         "nothing is sent to it.")
    if "redirect_uri" in repeated or "client_id" in repeated:
        raise ShownError("The request repeats its client_id or redirect_uri.")
    state = params.get("state")
    request = Request(client=client, redirect_uri=given or registered[0], redirect_uri_given=given is not None,
                      scopes=[], resources=[], code_challenge="", state=state)
    try:
        _check(request, params, resources, repeated)
    except RedirectedError as error:
        error.request = request
        raise
    _person_may_authorize(request)
    return request


def _person_may_authorize(request: Request) -> None:
    """The policy's ``[[people]]`` rules (``Policy.decide_person``): may the signed-in person
    authorize this agent? Asked at each parse, so before the consent page is shown and again
    when the decision is posted (a person not signed in yet is asked once they are; a pending
    agent, which gets no code, is not asked). A refusal is audited and shown to the person,
    never redirected: the client would learn from it what the policy thinks of the person."""
    person, client = current_person(), request.client
    if person is None or client.status == PENDING:
        return
    decision = load(current_app.config["POLICY_FILE"] or None).decide_person(
        client_id=client.client_id, owner=client.approval.owner or "",
        person=PersonFacts.of(person))
    if decision.allowed:
        return
    audit.record("authorization.refused", f"person:{person.public_id}", client_id=client.client_id,
                 decision="deny", reason=decision.reason, data={"rule": decision.rule})
    db.session.commit()
    raise ShownError(f"You may not authorize {safe_echo(client.client_name or client.client_id)} to act for you: "
                     "no rule of this server's policy allows it for you. Its administrators can say why.", 403)


def _check(request: Request, params, resources: list[str], repeated: list[str]) -> None:
    client = request.client
    if repeated:
        raise RedirectedError("invalid_request", f"{', '.join(repeated)} must be given once (RFC 6749 section 3.1)")
    if params.get("response_type") != RESPONSE_TYPE_CODE:
        raise RedirectedError("unsupported_response_type", "response_type must be code (the only response "
                                                           "type of this server)")
    grant_types = (client.client_metadata or {}).get("grant_types") or []
    if AUTHORIZATION_CODE not in grant_types:
        raise RedirectedError("unauthorized_client", "the client did not register for the authorization_code grant")
    challenge, method = params.get("code_challenge"), params.get("code_challenge_method")
    if not challenge:
        raise RedirectedError("invalid_request", "code_challenge is required: this server requires PKCE "
                                                 "with S256 (RFC 7636, RFC 9700 section 2.1.1)")
    if method != "S256":
        raise RedirectedError("invalid_request", "code_challenge_method must be S256; plain is not accepted "
                                                 "(RFC 9700 section 2.1.1)")
    if not S256_CHALLENGE.match(challenge):
        raise RedirectedError("invalid_request", "code_challenge must be 43 base64url characters, the S256 "
                                                 "of the verifier (RFC 7636 section 4.2)")
    request.code_challenge = challenge
    for uri in resources:
        parts = urlsplit(uri)
        if not parts.scheme or not parts.netloc or "#" in uri:
            raise RedirectedError("invalid_target", f"resource {safe_echo(uri)} is not an absolute URI without "
                                                    "a fragment (RFC 8707 section 2)")
    if client.status == PENDING:
        return  # the scopes are judged once it is approved; the person sees the waiting page
    if client.status != ACTIVE or client.approval is None or client.approval.expires_at <= clock.now():
        raise RedirectedError("unauthorized_client", "the client may not be authorized now (it is "
                                                     f"{client.status}); its administrators can say why")
    scopes = (params.get("scope") or "").split()
    decision = within_approval(approved_scopes=client.approval.scopes, approved_audiences=client.approval.audiences,
                               scopes=scopes, audiences=list(dict.fromkeys(resources)))
    if not decision.allowed:
        raise RedirectedError(decision.error, decision.reason)
    request.scopes, request.resources = decision.granted["scopes"], decision.granted["audiences"]


def remembered(person_id: int, request: Request) -> bool:
    """Has the person consented to this client for these scopes (or more) before?"""
    consent = db.session.get(Consent, (person_id, request.client.client_id))
    return consent is not None and set(request.scopes) <= set(consent.scopes)


def grant(person, request: Request, *, remember: bool, consent: str = "given") -> str:
    """The person authorizes the request (``consent``: "given" now, or "remembered" from
    before): a code (stored as a hash, short-lived) and, asked to, the consent remembered;
    audited, committed. Returns the redirect URI with the code."""
    code, now = hashing.generate(), clock.now()
    db.session.add(AuthorizationCode(
        code_hash=hashing.hash_secret(code), client_id=request.client.client_id, person_id=person.id,
        redirect_uri=request.redirect_uri, redirect_uri_given=request.redirect_uri_given,
        scopes=request.scopes, resources=request.resources, code_challenge=request.code_challenge,
        created_at=now, expires_at=now + timedelta(seconds=int(current_app.config["AUTHORIZATION_CODE_TTL"]))))
    if remember:
        stored = db.session.get(Consent, (person.id, request.client.client_id))
        if stored is None:
            db.session.add(Consent(person_id=person.id, client_id=request.client.client_id,
                                   scopes=request.scopes, granted_at=now))
        else:
            stored.scopes, stored.granted_at = sorted(set(stored.scopes) | set(request.scopes)), now
    audit.record("authorization.granted", f"person:{person.public_id}", client_id=request.client.client_id,
                 decision="allow", data={"scope": " ".join(request.scopes), "resources": request.resources,
                                         "consent": consent, "remember": remember})
    db.session.commit()
    return request.redirect([("code", code)])


def deny(person, request: Request) -> str:
    """The person refuses: audited; the client hears ``access_denied``."""
    audit.record("authorization.denied", f"person:{person.public_id}", client_id=request.client.client_id,
                 decision="deny", reason="the person refused")
    db.session.commit()
    return request.error_uri(RedirectedError("access_denied", "the person did not authorize the client"))


class NotConnected(ValueError):
    """The agent does not act for the person; nothing to withdraw."""


@dataclass
class Connected:
    """An agent a person has let act for them: remembered consent, or live refresh tokens."""
    client: Client
    scopes: list[str]
    since: object  # when the consent was given, or the oldest live refresh token issued
    remembered: bool


def connected_agents(person) -> list[Connected]:
    """The agents that may act for ``person`` without asking: each with a remembered consent or
    a refresh token still usable, newest first."""
    now, found = clock.now(), {}
    for consent in db.session.execute(select(Consent).where(Consent.person_id == person.id)).scalars():
        found[consent.client_id] = Connected(db.session.get(Client, consent.client_id), list(consent.scopes),
                                             consent.granted_at, True)
    live = select(RefreshToken).where(RefreshToken.person_id == person.id, RefreshToken.used_at.is_(None),
                                      RefreshToken.revoked_at.is_(None), RefreshToken.expires_at > now)
    for token in db.session.execute(live).scalars():
        entry = found.get(token.client_id)
        if entry is None:
            found[token.client_id] = Connected(db.session.get(Client, token.client_id), list(token.scopes),
                                               token.created_at, False)
        else:
            entry.scopes = sorted(set(entry.scopes) | set(token.scopes))
    return sorted(found.values(), key=lambda c: c.since, reverse=True)


def disconnect(person, client_id: str) -> list[str]:
    """The person withdraws an agent: the consent is forgotten, and every refresh and access
    token issued for them to it stops working now (and what was exchanged from those).
    Audited; returns the access tokens revoked."""
    now = clock.now()
    consent = db.session.get(Consent, (person.id, client_id))
    families = list(db.session.execute(select(RefreshToken).where(
        RefreshToken.person_id == person.id, RefreshToken.client_id == client_id,
        RefreshToken.revoked_at.is_(None))).scalars())
    if consent is None and not families:
        raise NotConnected("This agent is not connected to you.")
    if consent is not None:
        db.session.delete(consent)
    for token in families:
        token.revoked_at = now
    issued = list(db.session.execute(select(IssuedToken.jti).where(
        IssuedToken.client_id == client_id, IssuedToken.subject == person.public_id,
        IssuedToken.revoked_at.is_(None), IssuedToken.expires_at > now)).scalars())
    revoked = tokens.revoke_many(issued)
    audit.record("authorization.withdrawn", f"person:{person.public_id}", client_id=client_id,
                 data={"revoked": revoked, "refresh_tokens": len(families)})
    db.session.commit()
    return revoked
