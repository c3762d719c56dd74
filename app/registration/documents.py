"""Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document): a client whose
``client_id`` is an https URL, at which it publishes a JSON document of its metadata.

The document is a registration like any other, validated as strictly as RFC 7591 (``validate``)
and with two rules of the draft on top: its ``client_id`` is its URL exactly, and it carries no
shared secret (so ``none`` or ``private_key_jwt``, with the document's ``jwks`` or ``jwks_uri``).
Its ``redirect_uris`` are the only ones allowed. The first time a URL client appears, at the
authorization endpoint (never the token endpoint: see below), the document is fetched
(``app.support.fetch``: https, the address checked after DNS resolution, no redirects, size and
time caps) and becomes a pending registration, from the URL's host; approving it is approving
any client. A trusted publisher of documents (``app.trust.document_publishers``) may approve it
by policy instead.

The document is kept as its HTTP caching says (``Cache-Control`` max-age; no-store, no-cache or
nothing is the least), within CLIENT_DOCUMENT_MIN_CACHE and _MAX_CACHE, then fetched again on
the next request. What changed is applied as an RFC 7592 update would be: a document that asks
for more than was approved, or changes its redirect URIs or authentication method, sends the
client back to pending (a suspended or expired one too, for a person: ``_apply``); a rotation
of its keys is taken as it comes (the document is where its keys are published, as a
``jwks_uri`` is). A document that disappears or turns invalid stops the client with the
reason, audited, until a fetch succeeds again.

No fetch holds a transaction: the state is read in autocommit (``app.db.dbapi``), the document
fetched, then written in a transaction of its own. On the event loop (the token endpoint) the
fetch and the write each run on a thread (``app.support.inline.blocking``).

Plain http on loopback (and loopback at all) is accepted as a document URL only under the
development override FETCH_ALLOW_HTTP_LOOPBACK, as the fetcher accepts it.

Anyone may name a URL, signed in or not, so what a stranger can make this server do is bounded:
a client id URL is first seen only at the authorization endpoint (``resolve(first_sight=False)``
at the token endpoint answers ``invalid_client``), rate-limited per caller address there
(CLIENT_DOCUMENT_RATE_LIMIT, ``app.oauth.authorize``); a failure, for an unknown URL too, is
remembered in this process for CLIENT_DOCUMENT_MIN_CACHE and answered again without a fetch
(so audited at most once per URL in that time); and a stranger is told that a first-seen URL
could not be fetched, not what the network said (the detail is in the log and the audit event).
"""
from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from authlib.oauth2.base import OAuth2Error
from flask import current_app
from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError

from app import audit
from app.db import dbapi
from app.extensions import db
from app.models import Client, ClientDocument
from app.models.client import (
    ACTIVE,
    CLIENT_ID_MAX,
    EXPIRED,
    PENDING,
    SUSPENDED,
    URL_ID_SEGMENT,
    is_url_id,
    might_be_id,
)
from app.registration import lifecycle
from app.registration.errors import PendingLimitError
from app.registration.metadata import AUDIENCES, validate
from app.registration.service import _check_pending_caps, beyond_approval
from app.support import clock, fetch, hashing, inline
from app.support.echo import safe_echo
from app.support.protocol import AUTHORIZATION_CODE, NONE, PRIVATE_KEY_JWT
from app.trust import document_publishers

log = logging.getLogger(__name__)

# The draft: a document MUST NOT carry a shared secret, so no method that needs one.
AUTH_METHODS = (NONE, PRIVATE_KEY_JWT)
SECRET_FIELDS = ("client_secret", "client_secret_expires_at")
# What changes how a document client is recognised, and so needs a new review. Its keys are not
# here: a key rotation in the document is taken as it comes.
RECOGNITION = ("redirect_uris", "token_endpoint_auth_method", "token_endpoint_auth_signing_alg")
SYSTEM = "system"
_STATE = (select(ClientDocument.fresh_until, ClientDocument.error)
          .where(ClientDocument.client_id == bindparam("url")))
_fresh: dict[str, float] = {}  # url -> until when this process need not look again
_failures: dict[str, tuple[float, str]] = {}  # url -> (until when, the refusal to answer meanwhile)
_lock = threading.Lock()
FRESH_ENTRIES = 10_000
# The statuses that have an approval: a change of the document is measured against it.
REVIEWED = (ACTIVE, SUSPENDED, EXPIRED)
# What a stranger is told when a URL not seen before could not be fetched: not whether its name
# resolved, to what kind of address, or how the connection failed (draft section 6.5's server-side
# request forgery concern); the detail is in the log and the audit event's reason.
UNREACHABLE = ("the client's metadata document could not be fetched from its URL: it must be served over "
               "https from a public address, answering 200 with a JSON object and no redirect")
NOT_SEEN = ("a client of a metadata document is first seen at the authorization endpoint, or added by an "
            "administrator (ostiary document add): this URL has been neither, so it is no client here yet")
NETLOC = re.compile(r"(?:[A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class DocumentError(ValueError):
    """The URL or its document cannot be a client now; the message says why, for the person
    or the client (it names the URL, never an address it resolved to)."""


class Unreachable(DocumentError):
    """The document could not be fetched (``app.support.fetch`` refused the address it resolved
    to, the connection failed, or the answer was no 200 JSON object): a fact of the network,
    told in full only about a URL already known (``UNREACHABLE`` otherwise)."""


@dataclass(frozen=True)
class Fetched:
    """A document that was fetched and validated."""
    url: str
    raw: dict           # as published
    metadata: dict      # as validated (what the client's registration becomes)
    flags: list[str]    # review flags of the validation
    fresh_until: object  # a datetime: its caching, within the bounds


def names_document(client_id) -> bool:
    """Is ``client_id`` the URL of a metadata document that this server resolves? (Off, with
    CLIENT_ID_DOCUMENTS false: a URL is then an unknown client id like any other.)"""
    return bool(current_app.config["CLIENT_ID_DOCUMENTS"]) and is_url_id(client_id)


def switched_off(client_id) -> bool:
    """Is ``client_id`` a URL while CLIENT_ID_DOCUMENTS is off? It is then unknown here, even a
    client that was registered from its document before: its document is no longer followed."""
    return not current_app.config["CLIENT_ID_DOCUMENTS"] and is_url_id(client_id)


def check_url(url) -> str:
    """The draft's rules for a client id URL (section 3: https, with a path, no fragment, no
    user info, no ``.`` or ``..`` segments; it SHOULD NOT have a query, refused here), the
    fetcher's (no private or loopback address, unless FETCH_ALLOW_HTTP_LOOPBACK), and a narrow
    grammar on top, so that the URL is read the same by every server that could serve it and
    a trusted publisher's prefix cannot be escaped (``URL_ID_SEGMENT``): no control character, no
    ``\\``, no ``;``, no percent-encoding, no empty segment but a last. At most CLIENT_ID_MAX
    characters (the column's bound)."""
    if not isinstance(url, str) or len(url) > CLIENT_ID_MAX:
        raise DocumentError(f"a client_id URL may be at most {CLIENT_ID_MAX} characters long here")
    if CONTROL.search(url):
        raise DocumentError("a client_id URL must not contain control characters")
    try:
        fetch.check_url(url)
        parts = urlsplit(url)
    except (fetch.FetchError, ValueError) as exc:
        raise DocumentError(f"the client_id URL cannot be used: {exc}") from None
    if parts.query or "?" in url:
        raise DocumentError("a client_id URL must not have a query (draft-ietf-oauth-client-id-metadata-document "
                            "section 3)")
    if "\\" in url:
        raise DocumentError("a client_id URL must not contain a backslash")
    if "%" in url:
        raise DocumentError("a client_id URL must not use percent-encoding: its path is letters, digits and "
                            "-._~!$&'()*+,= between slashes")
    if parts.path in ("", "/"):
        raise DocumentError("a client_id URL must have a path (draft-ietf-oauth-client-id-metadata-document "
                            "section 3)")
    segments = parts.path.split("/")[1:]
    if {".", ".."} & set(segments):
        raise DocumentError("a client_id URL must not have . or .. path segments")
    if "" in segments[:-1]:
        raise DocumentError("a client_id URL must not have an empty path segment (//)")
    if (parts.scheme not in ("https", "http") or not NETLOC.fullmatch(parts.netloc)
            or not all(URL_ID_SEGMENT.fullmatch(segment) for segment in segments)):
        raise DocumentError("a client_id URL must be https://host[:port]/path, its path letters, digits and "
                            "-._~!$&'()*+,= between slashes (no ';', no '@', no ':')")
    return url


def known(client_id) -> bool:
    """Is ``client_id`` the URL of a document already seen here (so that resolving it creates
    nothing)? From this process's memory, or one indexed read in autocommit. The authorization
    endpoint's rate limit spares these (``app.oauth.authorize``)."""
    if not might_be_id(client_id):
        return True  # refused before any fetch or read, saying why: nothing to limit
    with _lock:
        if client_id in _fresh:
            return True
    return dbapi.fetch_one(_STATE, {"url": client_id}) is not None


def fetch_document(url: str) -> Fetched:
    """Fetch and validate the document at ``url``; raises ``DocumentError``. Call it with no
    transaction open: it waits on the network."""
    url = check_url(url)
    try:
        got = fetch.fetch_document(url)
    except fetch.FetchError as exc:
        raise Unreachable(f"the client's metadata document could not be fetched: {exc}") from None
    raw = got.value
    if raw.get("client_id") != url:
        raise DocumentError(f"the metadata document at {url} gives another client_id "
                            f"({safe_echo(raw.get('client_id'), 100)}); it must be its own URL exactly")
    if secrets := [name for name in SECRET_FIELDS if name in raw]:
        raise DocumentError(f"the metadata document must not carry {', '.join(secrets)}: a published document "
                            "cannot keep a shared secret")
    given = {name: value for name, value in raw.items() if name not in ("client_id", "software_statement")}
    has_keys = given.get("jwks") is not None or given.get("jwks_uri") is not None
    method = given.get("token_endpoint_auth_method") or (PRIVATE_KEY_JWT if has_keys else NONE)
    if method not in AUTH_METHODS:
        raise DocumentError(f"token_endpoint_auth_method {safe_echo(method)} is not allowed for a metadata "
                            f"document, which cannot keep a shared secret; use {' or '.join(AUTH_METHODS)}")
    given["token_endpoint_auth_method"] = method
    given.setdefault("grant_types", [AUTHORIZATION_CODE])  # RFC 7591 section 2's default
    try:
        clean, flags = validate(given)
    except OAuth2Error as exc:
        raise DocumentError(f"the metadata document is not acceptable: {exc.description}") from None
    return Fetched(url, raw, clean, flags, clock.now() + timedelta(seconds=_keep(got)))


def _keep(got: fetch.Fetched) -> int:
    """How long a document may be kept: its ``max-age`` within the bounds; the least for
    no-store, no-cache or no caching header (a document that says nothing is read again soon)."""
    config = current_app.config
    least, most = int(config["CLIENT_DOCUMENT_MIN_CACHE"]), int(config["CLIENT_DOCUMENT_MAX_CACHE"])
    if got.no_store or got.max_age is None:
        return least
    return min(max(got.max_age, least), most)


def resolve(url: str, *, first_sight: bool = True) -> None:
    """Before a request reads the client of ``url``, with no transaction open: the first time,
    fetch its document and make it a pending registration (or approve it by a trusted
    publisher's rule); later, once its cache time is over, fetch it again and apply what
    changed. Raises ``DocumentError`` when the client cannot be used now (audited when a
    fetch failed). Fresh, it costs one look in this process's memory, or one indexed read.

    ``first_sight`` false (the token endpoint): a URL never seen is refused (``NOT_SEEN``),
    unfetched, unaudited: a client is first seen where a person is asked, the authorization
    endpoint, whose rate limit bounds what strangers make this server fetch and write.
    A refusal is remembered in this process for CLIENT_DOCUMENT_MIN_CACHE, for a URL never seen
    too (which has no row to keep it): the same answer, without fetching or auditing again."""
    url = check_url(url)
    now = clock.timestamp()
    with _lock:
        until = _fresh.get(url)
        failure = _failures.get(url)
    if until is not None and until > now:
        return
    if failure is not None and failure[0] > now:
        raise DocumentError(failure[1])
    row = dbapi.fetch_one(_STATE, {"url": url})
    if row is not None and row[0].timestamp() > now:
        if row[1]:
            raise DocumentError(row[1])  # the last fetch failed; it is tried again when this ends
        _remember(url, row[0].timestamp())
        return
    if row is None and not first_sight:
        raise DocumentError(NOT_SEEN)
    _end_reads()
    try:
        fetched = fetch_document(url)
    except DocumentError as exc:
        inline.blocking(_failed, url, str(exc), row is not None, SYSTEM)
        # A known client's reason is its own (stored, shown to its users); a stranger's URL gets
        # no network facts (UNREACHABLE), only what the document itself got wrong.
        shown = UNREACHABLE if row is None and isinstance(exc, Unreachable) else str(exc)
        _remember_failure(url, shown)
        raise DocumentError(shown) from None
    try:
        inline.blocking(_apply if row is not None else _first_seen, fetched)
    except DocumentError as exc:  # the pending cap: audited by _first_seen, remembered here
        _remember_failure(url, str(exc))
        raise
    _remember(url, fetched.fresh_until.timestamp())


def add(url: str, *, actor: str) -> ClientDocument:
    """An administrator names a document URL before its client is seen (a machine agent, which
    never visits the authorization endpoint): fetched now and registered as on first sight,
    pending (or approved by a trusted publisher's rule); audited. Raises ``DocumentError``."""
    if not current_app.config["CLIENT_ID_DOCUMENTS"]:
        raise DocumentError("client ID metadata documents are switched off here (OSTIARY_CLIENT_ID_DOCUMENTS)")
    url = check_url(url)
    if db.session.get(ClientDocument, url) is not None:
        raise DocumentError(f"{url} is a client here already; `ostiary document refresh` fetches it again")
    return _fetch_now(url, known=False, actor=actor)


def refresh(client_id: str, *, actor: str) -> ClientDocument:
    """Fetch the document of a URL client now, whatever its cache time (the console's and the
    CLI's "refresh now"), and apply it; audited. Raises ``DocumentError``."""
    known = db.session.get(ClientDocument, client_id) if is_url_id(client_id) else None
    if known is None:
        raise DocumentError(f"{client_id!r} is not a client of a metadata document here")
    return _fetch_now(client_id, known=True, actor=actor)


def _fetch_now(url: str, *, known: bool, actor: str) -> ClientDocument:
    """An administrator's fetch (``add``, ``refresh``): the document applied to its client, or
    registered as on first sight when ``known`` is false; a failure audited as theirs, and for
    a known client remembered (it is stopped with the reason until a fetch succeeds)."""
    _end_reads()
    try:
        fetched = fetch_document(url)
    except DocumentError as exc:
        _failed(url, str(exc), known, actor)
        if known:
            _remember_failure(url, str(exc))
        raise
    (_apply if known else _first_seen)(fetched, actor=actor)
    _remember(url, fetched.fresh_until.timestamp())
    return db.session.get(ClientDocument, url)


def _end_reads() -> None:
    """The fetch waits on the network: the request's reads end first, as a software statement's
    key fetch ends them (``statements.verify``). On SQLite their transaction holds the write
    lock, which every writer, token issuance included, would wait for meanwhile."""
    if db.session().in_transaction():
        db.session.rollback()


def _remember(url: str, until: float) -> None:
    with _lock:
        if len(_fresh) >= FRESH_ENTRIES:
            _fresh.clear()
        _fresh[url] = until
        _failures.pop(url, None)


def _remember_failure(url: str, shown: str) -> None:
    """Answer ``shown`` for ``url`` for CLIENT_DOCUMENT_MIN_CACHE without fetching it again."""
    until = clock.timestamp() + int(current_app.config["CLIENT_DOCUMENT_MIN_CACHE"])
    with _lock:
        if len(_failures) >= FRESH_ENTRIES:
            _failures.clear()  # a flood of distinct URLs costs memory no more than this
        _failures[url] = (until, shown)
        _fresh.pop(url, None)


def forget() -> None:
    """Forget what this process knows of documents' freshness and failures (tests; ``refresh``
    elsewhere)."""
    with _lock:
        _fresh.clear()
        _failures.clear()


def _first_seen(fetched: Fetched, actor: str = SYSTEM) -> None:
    """The URL client's first appearance: a pending registration from the URL's host, audited,
    committed; then the trusted publishers' rule, if one covers it."""
    config, now, url = current_app.config, clock.now(), fetched.url
    host = urlsplit(url).hostname
    clean = fetched.metadata
    try:
        # PENDING_CAP_PER_ADDRESS, counted per publishing host; the caller's address is bounded by
        # the authorization endpoint's CLIENT_DOCUMENT_RATE_LIMIT.
        _check_pending_caps(host, None, now)
    except PendingLimitError:
        db.session.rollback()
        refusal = (f"too many clients published by {host} are waiting for approval; wait for them "
                   "to be decided")
        audit.record("client_document.refused", actor, client_id=url, decision="deny", reason=refusal,
                     data={"document_host": host, "cap": int(config["PENDING_CAP_PER_ADDRESS"])})
        db.session.commit()
        log.info("metadata document %r refused: %s", url, refusal)
        raise DocumentError(refusal) from None
    client = Client(
        client_id=url, status=PENDING, created_at=now, updated_at=now,
        pending_expires_at=now + timedelta(seconds=config["PENDING_TTL"]), client_metadata=clean,
        client_name=clean.get("client_name"), token_endpoint_auth_method=clean["token_endpoint_auth_method"],
        jwks=clean.get("jwks"), jwks_uri=clean.get("jwks_uri"), software_id=clean.get("software_id"),
        registered_from=host, review_flags=fetched.flags, version=1, signed_fields=[],
        # No RFC 7592 management: the document is changed where it is published. The hash of a
        # secret nobody was given keeps /register/<id> closed to everyone.
        registration_token_hash=hashing.hash_secret(hashing.generate()))
    db.session.add(client)
    db.session.add(ClientDocument(client_id=url, document=fetched.raw, fetched_at=now,
                                  fresh_until=fetched.fresh_until, checked_at=now, error=None))
    audit.record("client.registered", actor, client_id=url, data={
        "client_name": client.client_name, "provenance": "document", "document_host": host,
        "token_endpoint_auth_method": client.token_endpoint_auth_method, "scope": clean.get("scope"),
        "review_flags": fetched.flags, "fresh_until": fetched.fresh_until.isoformat()})
    try:
        db.session.commit()
    except IntegrityError:  # another request saw it first: theirs stands, this document is applied
        db.session.rollback()
        _apply(fetched, actor=actor)
        return
    log.info("client %r registered from its metadata document", url)
    _by_rule(url)


def _apply(fetched: Fetched, actor: str = SYSTEM) -> None:
    """A document fetched again: applied as an RFC 7592 update (``service.update``) would be;
    back to pending if it asks for more than the approval or changes how it is recognised."""
    url, now, clean = fetched.url, clock.now(), fetched.metadata
    client = lifecycle.get_client(url, lock=True)  # as an approval locks it: they take turns
    before = client.client_metadata or {}
    changed = sorted(name for name in set(before) | set(clean) if before.get(name) != clean.get(name))
    back, was = None, client.status
    if was in REVIEWED:
        # Suspended or expired too: its approval is what reactivating or renewing would make live
        # again, so a change beyond it is reviewed now, not taken in unseen.
        wider = beyond_approval(client, clean)
        moved = [name for name in RECOGNITION if before.get(name) != clean.get(name)]
        back = "; ".join(filter(None, [wider and f"asks for {wider}", moved and f"{', '.join(moved)} changed"]))
    if changed:
        client.version += 1
        client.client_metadata, client.client_name, client.review_flags = clean, clean.get("client_name"), fetched.flags
        client.token_endpoint_auth_method = clean["token_endpoint_auth_method"]
        client.jwks, client.jwks_uri, client.software_id = clean.get("jwks"), clean.get("jwks_uri"), clean.get("software_id")
        client.updated_at = now
        if back and was == ACTIVE:
            lifecycle.back_to_review(client, f"its metadata document needs a new review: {back}", now)
        elif back:
            # A person stopped it: pending for a person to decide, with why it was stopped kept in
            # the reason, never purged, never approved by a publisher's rule (below).
            lifecycle.back_to_review(client, f"its metadata document changed while it was {was} "
                                             f"({client.status_reason or 'no reason given'}): {back}", now,
                                     held=True)
        audit.record("client.updated", actor, client_id=url, data={
            "changed": changed, "version": client.version, "back_to_pending": back or None,
            "review_flags": fetched.flags, "source": "client ID metadata document"})
    stored = db.session.get(ClientDocument, url)
    if stored is None:
        stored = ClientDocument(client_id=url)
        db.session.add(stored)
    stopped_by = stored.error
    stored.document, stored.fetched_at, stored.checked_at = fetched.raw, now, now
    stored.fresh_until, stored.error = fetched.fresh_until, None
    if stopped_by:  # the client works again: as much an event as its stopping (_failed)
        audit.record("client_document.recovered", actor, client_id=url, decision="allow",
                     data={"error": stopped_by, "changed": changed})
    if actor != SYSTEM:
        audit.record("client_document.refreshed", actor, client_id=url,
                     data={"changed": changed, "fresh_until": fetched.fresh_until.isoformat()})
    db.session.commit()
    if changed and back:
        log.info("client %r back to pending (it was %s): %s", url, was, back)
        if was == ACTIVE:
            _by_rule(url)


def _failed(url: str, error: str, known: bool, actor: str) -> None:
    """A fetch that failed or a document refused: audited; a known client is stopped with the
    reason until a fetch succeeds (tried again after CLIENT_DOCUMENT_MIN_CACHE)."""
    now = clock.now()
    if known:
        stored = db.session.get(ClientDocument, url)
        if stored is not None:
            stored.error, stored.checked_at = error, now
            stored.fresh_until = now + timedelta(seconds=int(current_app.config["CLIENT_DOCUMENT_MIN_CACHE"]))
    audit.record("client_document.fetch_failed", actor, client_id=url, decision="deny", reason=error,
                 data={"known": known})
    db.session.commit()
    log.info("metadata document %r refused: %s", url, error)


def _by_rule(url: str) -> None:
    """A pending document client that a trusted publisher's rule covers, approved by the policy
    within the rule's ceiling (scopes, audiences, lifetime); left pending if it asks for more."""
    rule = document_publishers.matching(url)
    if rule is None:
        return
    client = lifecycle.get_client(url)
    if client.status != PENDING:
        return
    meta = client.client_metadata or {}
    scopes = meta.get("scope", "").split() or list(rule.scopes)
    audiences = meta.get(AUDIENCES) or list(rule.audiences)
    outside = [s for s in scopes if s not in rule.scopes] + [a for a in audiences if a not in rule.audiences]
    if outside:
        db.session.rollback()
        _not_applied(url, rule, f"it asks for {', '.join(outside)}, beyond the rule for {rule.prefix}")
        return
    expires_at = clock.in_(rule.approval_days * 86400)
    try:
        lifecycle.approve(
            url, version=client.version, owner=rule.owner,
            purpose=f"{client.client_name or url}: a metadata document under {rule.prefix}, a trusted publisher",
            scopes=scopes, audiences=audiences, max_token_ttl=int(current_app.config["ACCESS_TOKEN_TTL"]),
            expires_at=expires_at, review_at=expires_at, assurance_level=rule.assurance_level,
            proofing_method=rule.proofing_method,
            evidence=f"document publisher rule {rule.id}: {rule.prefix}"[:500],
            actor=document_publishers.approver(rule), sensitive_confirmed=True)
    except lifecycle.LifecycleError as exc:
        db.session.rollback()
        _not_applied(url, rule, f"the rule for {rule.prefix} cannot approve it: {exc}")


def _not_applied(url: str, rule, reason: str) -> None:
    """A rule covers the client but does not approve it: left pending for a person, audited (a
    reviewer wonders why a trusted publisher's agent waits)."""
    audit.record("document_publisher.not_applied", document_publishers.approver(rule), client_id=url,
                 reason=reason, data={"rule_id": rule.id, "prefix": rule.prefix})
    db.session.commit()
    log.info("client %r left pending: %s", url, reason)
