"""Sign-on through the organisation's OpenID provider, beside the local accounts: the
authorization code flow of OpenID Connect Core 1.0 §3.1.

Authlib's Flask client does the protocol: PKCE with S256 (RFC 7636), ``state`` (RFC 6749
§10.12) and ``nonce`` (OIDC Core §3.1.2.1) kept in the person's session, the ID token's signature
verified with the provider's JWKS and its ``iss``, ``aud``, ``exp`` and ``nonce`` checked
(§3.1.3.7). Its registered claims are checked once more by the project's one check, on the one
clock (``app.support.jwt_claims``). Every call to the provider goes through the one safe fetcher
(``app.support.fetch``): discovery (OpenID Connect Discovery 1.0 §4) and the JWKS by
``fetch_json``; the token and userinfo requests on Authlib's session, which ``fetch.guard``
gives the fetcher's address checks, limits and no redirects.

Who may sign in (``admit``, plain values): the provider must say the email address is verified
(``email_verified`` true), its domain must be one of ``PEOPLE_OIDC_ALLOWED_DOMAINS`` if any are
set, and the person must be in one of ``PEOPLE_OIDC_ALLOWED_GROUPS`` (the ``GROUPS_CLAIM``) if any
are set; both rules apply when both are set. A person admitted is found, or created, by
(issuer, subject) and their email, name and groups are brought up to date (``sign_in``); a
disabled person is refused. Every sign-in, refusal and failure is audited.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from authlib.integrations.base_client import OAuthError
from authlib.integrations.flask_client import FlaskOAuth2App, OAuth
from authlib.integrations.requests_client import OAuth2Session
from flask import Flask, current_app, redirect, request, session
from joserfc.errors import JoseError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app import audit
from app.extensions import db
from app.models import Person
from app.models.person import OIDC
from app.people import accounts
from app.settings import StartupError
from app.support import clock, fetch, jwt_claims

log = logging.getLogger(__name__)

EXTENSION = "ostiary.people_oidc"
NAME = "oidc"  # Authlib's name of the client; its state is kept in the session under it
CALLBACK = "/signin/oidc/callback"
MAX_SUBJECT = 255  # OIDC Core §2: "MUST NOT exceed 255 ASCII characters"; the column's size
MAX_EMAIL = 320
MAX_GROUP = 255
MAX_GROUPS = 200
# Only signatures by the provider's published keys: never "none", nor an HMAC keyed with the
# client secret (OIDC Core §10.1), which the provider's JWKS cannot verify.
SIGNING_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
# What Authlib is given of the discovery document: the rest is not read, so that no field of an
# outside document lands on Authlib's session as a keyword (a "token", a "redirect_uri").
METADATA_FIELDS = ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint",
                   "id_token_signing_alg_values_supported")


class SignInError(Exception):
    """A sign-in through the provider that did not succeed: shown to the person with ``status``."""
    status = 400


class Refused(SignInError):
    """The provider signed the person in, and a rule here says they may not."""
    status = 403


class ProviderError(SignInError):
    """The provider could not be used: unreachable, or it answered what cannot be read."""
    status = 502


@dataclass(frozen=True)
class Rules:
    """Who may sign in (the ``PEOPLE_OIDC_ALLOWED_…`` settings): empty means that rule is off."""
    allowed_domains: frozenset[str]
    allowed_groups: frozenset[str]
    groups_claim: str = "groups"


@dataclass(frozen=True)
class Admitted:
    """A person the provider vouches for and the rules admit, as they will be stored."""
    subject: str
    email: str
    display_name: str | None
    groups: list[str]


def enabled(app: Flask | None = None) -> bool:
    return bool((app or current_app).config["PEOPLE_OIDC_ISSUER"])


def provider_name() -> str:
    """What the sign-in button calls the provider: ``PEOPLE_OIDC_NAME``, or the issuer's host."""
    config = current_app.config
    return config["PEOPLE_OIDC_NAME"] or urlsplit(config["PEOPLE_OIDC_ISSUER"]).hostname


def init_app(app: Flask) -> None:
    """Check the settings and register the provider with Authlib, if sign-on is configured;
    a setting that cannot work stops start-up with one line."""
    config = app.config
    if not enabled(app):
        return
    issuer = config["PEOPLE_OIDC_ISSUER"]
    try:
        fetch.check_url(issuer, allow_loopback=bool(config["FETCH_ALLOW_HTTP_LOOPBACK"]))
    except fetch.FetchError as exc:
        raise StartupError(f"OSTIARY_PEOPLE_OIDC_ISSUER {issuer!r}: {exc}") from None
    if urlsplit(issuer).query:
        raise StartupError(f"OSTIARY_PEOPLE_OIDC_ISSUER {issuer!r} must not have a query "
                           "(OpenID Connect Discovery 1.0 section 3)")
    for name in ("CLIENT_ID", "CLIENT_SECRET", "GROUPS_CLAIM"):
        if not config[f"PEOPLE_OIDC_{name}"]:
            raise StartupError(f"OSTIARY_PEOPLE_OIDC_{name} must be set when OSTIARY_PEOPLE_OIDC_ISSUER is")
    if "openid" not in config["PEOPLE_OIDC_SCOPES"]:
        raise StartupError("OSTIARY_PEOPLE_OIDC_SCOPES must include openid")
    rules = rules_from(config)
    if not rules.allowed_domains and not rules.allowed_groups:
        # Deny by default: a provider such as a public one signs in anyone with an address.
        raise StartupError("set OSTIARY_PEOPLE_OIDC_ALLOWED_DOMAINS or OSTIARY_PEOPLE_OIDC_ALLOWED_GROUPS "
                           "(or both): who may sign in through the OpenID provider")
    oauth = OAuth(app)
    oauth.register(NAME, client_cls=ProviderApp, client_id=config["PEOPLE_OIDC_CLIENT_ID"],
                   client_secret=config["PEOPLE_OIDC_CLIENT_SECRET"],
                   server_metadata_url=issuer.rstrip("/") + "/.well-known/openid-configuration",
                   client_kwargs={"scope": " ".join(config["PEOPLE_OIDC_SCOPES"]), "code_challenge_method": "S256",
                                  "token_endpoint_auth_method": "client_secret_basic"})
    app.extensions[EXTENSION] = oauth


def rules_from(config) -> Rules:
    return Rules(allowed_domains=frozenset(d.strip().lstrip("@").lower() for d in config["PEOPLE_OIDC_ALLOWED_DOMAINS"]
                                           if d.strip()),
                 allowed_groups=frozenset(g for g in config["PEOPLE_OIDC_ALLOWED_GROUPS"] if g),
                 groups_claim=config["PEOPLE_OIDC_GROUPS_CLAIM"])


def start(next_path: str | None):
    """The redirect to the provider's authorization endpoint; ``next_path`` (already a safe local
    path) is kept with the state, for after the sign-in."""
    client = _client()
    try:
        found = client.create_authorization_url(current_app.config["ISSUER"] + CALLBACK)
    except ProviderError as exc:
        raise _failed(exc) from None
    except (fetch.FetchError, requests.RequestException) as exc:
        raise _failed(ProviderError(f"{provider_name()} cannot be reached now: {exc}")) from None
    # Kept in the session cookie until the callback: what Authlib needs there, and ``next``.
    client.save_authorize_data(redirect_uri=current_app.config["ISSUER"] + CALLBACK, next=next_path,
                               state=found["state"], code_verifier=found["code_verifier"], nonce=found["nonce"])
    return redirect(found["url"], 302)


def complete() -> tuple[accounts.SignedIn, str | None]:
    """The provider's answer at the callback: the code exchanged, the ID token verified, the
    rules applied, the person found or created and signed in (audited, committed). Returns who
    signed in and the ``next`` path the sign-in began with. Raises ``SignInError`` (audited)."""
    client, config = _client(), current_app.config
    issuer = config["PEOPLE_OIDC_ISSUER"]
    # The state's own data, read before Authlib clears it: where the person was going.
    kept = client.framework.get_state_data(session, request.args.get("state")) or {}
    try:
        token = client.authorize_access_token(claims_options={"iss": {"essential": True, "value": issuer}})
        if not token.get("userinfo"):
            raise ProviderError(f"{provider_name()} sent no ID token (is openid among the scopes?)")
        claims = dict(token["userinfo"])
        jwt_claims.check(claims, iss={"essential": True, "value": issuer},
                         aud={"essential": True, "value": config["PEOPLE_OIDC_CLIENT_ID"]}, sub={"essential": True})
        claims = _with_userinfo(client, token, claims, config["PEOPLE_OIDC_GROUPS_CLAIM"])
    except OAuthError as exc:
        raise _failed(SignInError(_oauth_problem(exc))) from None
    except JoseError as exc:
        raise _failed(SignInError(f"The ID token from {provider_name()} could not be verified "
                                  f"({type(exc).__name__}: {exc}); nobody was signed in.")) from None
    except ProviderError as exc:
        raise _failed(exc) from None
    except (fetch.FetchError, requests.RequestException) as exc:
        raise _failed(ProviderError(f"{provider_name()} could not be reached to finish the sign-in: "
                                    f"{exc}")) from None
    except (ValueError, TypeError) as exc:  # an answer that is not a JSON object
        raise _failed(ProviderError(f"{provider_name()} answered what cannot be read "
                                    f"({type(exc).__name__}); nobody was signed in.")) from None
    try:
        admitted = admit(claims, rules_from(config), provider_name())
    except Refused as exc:
        raise _refuse(issuer, claims, exc) from None
    return sign_in(issuer, admitted), kept.get("next")


def admit(claims: dict, rules: Rules, provider: str = "the OpenID provider") -> Admitted:
    """Who the provider's claims (OIDC Core §5.1) say signed in, if the rules admit them; else
    ``Refused`` with a reason the person may read (nothing of the rules themselves is told)."""
    subject = claims.get("sub")
    if not isinstance(subject, str) or not 0 < len(subject) <= MAX_SUBJECT:
        raise Refused(f"{provider} did not say who you are (its sub claim is missing or too long).")
    email = claims.get("email")
    if not isinstance(email, str) or len(email) > MAX_EMAIL or not accounts.EMAIL.match(email):
        raise Refused(f"{provider} did not tell this server your email address; it is needed to sign in.")
    # OIDC Core §5.1: a boolean. A string "true" is not the provider saying it checked the address.
    if claims.get("email_verified") is not True:
        raise Refused(f"{provider} does not say that your email address {email} is verified; "
                      f"verify it there, then sign in again.")
    groups = _groups(claims.get(rules.groups_claim), rules.groups_claim, provider)
    domain = email.rsplit("@", 1)[1].rstrip(".").lower()
    if rules.allowed_domains and domain not in rules.allowed_domains:
        raise Refused(f"People with an address at {domain} may not sign in here.")
    if rules.allowed_groups and not rules.allowed_groups & set(groups):
        raise Refused(f"You are not in a group of {provider} whose members may sign in here.")
    return Admitted(subject=subject, email=email, display_name=_display_name(claims.get("name")), groups=groups)


def sign_in(issuer: str, admitted: Admitted) -> accounts.SignedIn:
    """Find the person by (issuer, subject), or create them, bring their email, name and groups
    up to date, and sign them in: audited (``person.created``, ``person.updated``,
    ``person.signed_in``) and committed. A disabled person is refused (``Refused``, audited).

    Never found by email: an address can be given to someone else later, another issuer may
    claim the same address, and a provider may let people set addresses it has not checked;
    whoever holds an address somewhere would then sign in as the person. (issuer, subject) is
    the one identifier OIDC Core §2 promises is never reassigned.
    """
    try:
        return _sign_in(issuer, admitted)
    except IntegrityError:
        # The same person's first sign-in, twice at once: the other one created them.
        db.session.rollback()
        return _sign_in(issuer, admitted)


def _sign_in(issuer: str, admitted: Admitted) -> accounts.SignedIn:
    now = clock.now()
    person = db.session.execute(select(Person).where(Person.issuer == issuer, Person.subject == admitted.subject)
                                ).scalar_one_or_none()
    if person is None:
        person = Person(public_id=accounts.new_public_id(), source=OIDC, issuer=issuer, subject=admitted.subject,
                        email=admitted.email, email_verified=True, display_name=admitted.display_name,
                        groups=admitted.groups, created_at=now)
        db.session.add(person)
        db.session.flush()  # the unique (issuer, subject) is claimed here, or IntegrityError
        audit.record("person.created", accounts.person_actor(person.public_id),
                     data={"sub": person.public_id, "source": OIDC, "issuer": issuer, "subject": admitted.subject,
                           "email": admitted.email, "groups": admitted.groups})
    elif person.disabled_at is not None:
        audit.record("person.sign_in_refused", accounts.person_actor(person.public_id), decision="deny",
                     reason=accounts.DISABLED, data={"sub": person.public_id, "issuer": issuer})
        db.session.commit()
        raise Refused("Your account here is disabled; its administrators can say why.")
    else:
        changed = {name: value for name, value in (
            ("email", admitted.email), ("email_verified", True), ("display_name", admitted.display_name),
            ("groups", admitted.groups)) if getattr(person, name) != value}
        for name, value in changed.items():
            setattr(person, name, value)
        if changed:
            audit.record("person.updated", accounts.person_actor(person.public_id),
                         data={"sub": person.public_id, "source": OIDC, "changed": changed})
    person.last_login_at = now
    audit.record("person.signed_in", accounts.person_actor(person.public_id), decision="allow",
                 data={"sub": person.public_id, "source": OIDC, "issuer": issuer})
    signed_in = accounts.SignedIn(person.public_id, person.username, person.session_generation)
    db.session.commit()
    return signed_in


class GuardedSession(OAuth2Session):
    """Authlib's requests session, calling only where the safe fetcher would (``fetch.guard``)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        fetch.guard(self)


class ProviderApp(FlaskOAuth2App):
    """Authlib's Flask client, reading discovery and the JWKS through ``fetch.fetch_json`` (the
    fetcher's checks, limits, bounded JSON parsing and cache) and making its own requests on a
    ``GuardedSession``."""

    client_cls = GuardedSession

    def load_server_metadata(self):
        document = fetch.fetch_json(self._server_metadata_url)
        issuer = current_app.config["PEOPLE_OIDC_ISSUER"]
        # Discovery §4.3: the issuer in the document MUST be the one it was fetched for; else
        # ID tokens of another issuer would pass the iss check.
        if document.get("issuer") != issuer:
            raise ProviderError(f"the discovery document of {issuer} names another issuer "
                                f"({str(document.get('issuer'))[:200]!r}); OpenID Connect Discovery 1.0 "
                                "section 4.3 requires the same")
        metadata = {name: document[name] for name in METADATA_FIELDS if name in document}
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(metadata.get(name), str):
                raise ProviderError(f"the discovery document of {issuer} has no {name}")
        algs = document.get("id_token_signing_alg_values_supported") or ["RS256"]  # RS256: Discovery §3
        metadata["id_token_signing_alg_values_supported"] = [a for a in algs if a in SIGNING_ALGS]
        if not metadata["id_token_signing_alg_values_supported"]:
            raise ProviderError(f"{issuer} signs ID tokens with none of {', '.join(SIGNING_ALGS)}")
        return metadata

    def fetch_jwk_set(self, force=False):
        # (force, after an unknown kid, still reads through the fetcher's cache: a key the
        # provider has just added is seen within FETCH_CACHE_SECONDS.)
        return fetch.fetch_json(self.load_server_metadata()["jwks_uri"])


def _client() -> ProviderApp:
    return current_app.extensions[EXTENSION].create_client(NAME)


def _with_userinfo(client: ProviderApp, token: dict, claims: dict, groups_claim: str) -> dict:
    """The ID token's claims, with what it left out read from the userinfo endpoint (OIDC Core
    §5.3), as providers that keep the scopes' claims out of a code flow's ID token need. The
    ID token's claims win; the userinfo's ``sub`` must be the ID token's (§5.3.2)."""
    if all(name in claims for name in ("email", "email_verified", groups_claim)):
        return claims
    if not client.load_server_metadata().get("userinfo_endpoint"):
        return claims
    info = client.userinfo(token=token)
    if info.get("sub") != claims["sub"]:
        raise ProviderError("the userinfo endpoint answered for another subject than the ID token's "
                            "(OIDC Core section 5.3.2)")
    return {**info, **claims}


def _groups(value, claim: str, provider: str) -> list[str]:
    """The groups claim as a sorted list of names: absent is none; one string is one group."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(g, str) and 0 < len(g) <= MAX_GROUP and g.isprintable()
                                              for g in value):
        raise Refused(f"{provider} sent a {claim} claim that is not a list of group names.")
    if len(set(value)) > MAX_GROUPS:
        raise Refused(f"{provider} says you are in more than {MAX_GROUPS} groups; this server reads no more.")
    return sorted(set(value))


def _display_name(value) -> str | None:
    if not isinstance(value, str):
        return None
    value = "".join(c for c in value if c.isprintable()).strip()[:accounts.MAX_DISPLAY_NAME]
    return value or None


def _oauth_problem(exc: OAuthError) -> str:
    if exc.error == "mismatching_state":
        return "This sign-in was not started here, or it took too long: start again."
    if exc.error == "access_denied":
        return f"The sign-in at {provider_name()} was cancelled or refused there; nobody was signed in."
    return (f"{provider_name()} did not complete the sign-in ({exc.error}"
            f"{': ' + str(exc.description)[:300] if exc.description else ''}); nobody was signed in.")


def _failed(error: SignInError) -> SignInError:
    """Audit a sign-in that failed before anyone was known; returns the error, to raise."""
    audit.record("person.sign_in_failed", f"oidc:{current_app.config['PEOPLE_OIDC_ISSUER']}", decision="deny",
                 reason=str(error))
    db.session.commit()
    log.warning("sign-in through the OpenID provider failed: %s", error)
    return error


def _refuse(issuer: str, claims: dict, error: Refused) -> Refused:
    """Audit a person the rules refused (as the provider named them); returns the error, to raise."""
    subject = claims.get("sub") if isinstance(claims.get("sub"), str) else None
    audit.record("person.sign_in_refused", f"oidc:{(subject or '?')[:MAX_SUBJECT]}", decision="deny",
                 reason=str(error), data={"issuer": issuer, "subject": subject,
                                          "email": claims.get("email") if isinstance(claims.get("email"), str)
                                          else None})
    db.session.commit()
    log.info("sign-in through the OpenID provider refused: %s", error)
    return error
