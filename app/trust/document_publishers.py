"""Publishers of client ID metadata documents that an administrator trusts: the idea of a trusted
software-statement publisher (``app.trust.issuers``), for documents.

A rule names an https origin and a path prefix (``https://apps.example.com/agents/``). A
document whose URL lies under it is approved by policy when it first appears
(``app.registration.documents``), within the rule's scopes and audiences, for the rule's
number of days, at its assurance level: the administrator vouched for whoever controls those
URLs when adding the rule. A document that asks for more than the ceiling stays pending, for a
person to review.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import select

from app import audit
from app.extensions import db
from app.models import DocumentPublisher
from app.models.client import URL_ID_SEGMENT
from app.policy import scopes as catalogue
from app.support import clock, fetch

MAX_DAYS = 3 * 365  # an approval expires within three years (app.registration.lifecycle.check_grant)
DEFAULT_PORTS = {"https": 443, "http": 80}


class DocumentPublisherError(ValueError):
    """The rule cannot be added or removed as asked; the message says why, for a person."""


def check_prefix(prefix) -> str:
    """An https origin and a path prefix ending in ``/``, so that ``…/agents/`` never covers
    ``…/agents-of-someone-else/``; no query, fragment or user info, no dot segments, and the
    path grammar of a document URL (``URL_ID_SEGMENT``). Loopback only under
    FETCH_ALLOW_HTTP_LOOPBACK, as for the documents themselves. Returns it normalised as
    ``covers`` compares it: scheme and host lower-cased, a default port dropped."""
    if not isinstance(prefix, str) or len(prefix) > 512:
        raise DocumentPublisherError("the prefix must be a URL of at most 512 characters")
    try:
        fetch.check_url(prefix)
    except fetch.FetchError as exc:
        raise DocumentPublisherError(f"the prefix {prefix!r}: {exc}") from None
    parts = urlsplit(prefix)
    if parts.query or "?" in prefix or not parts.path.endswith("/"):
        raise DocumentPublisherError("the prefix must be an origin and a path ending in '/', without a query "
                                     "(https://apps.example.com/agents/)")
    segments = parts.path.split("/")[1:-1]
    if {".", ".."} & set(segments):
        raise DocumentPublisherError("the prefix must not have . or .. path segments")
    if "" in segments or "%" in prefix or "\\" in prefix or not all(URL_ID_SEGMENT.fullmatch(s) for s in segments):
        raise DocumentPublisherError("the prefix's path must be letters, digits and -._~!$&'()*+,= between "
                                     "single slashes, as a document URL's is (no percent-encoding, ';' or '\\')")
    return _origin(parts) + parts.path


def covers(rule: DocumentPublisher, url: str) -> bool:
    """Does ``rule`` cover the document at ``url`` (a URL ``documents.check_url`` accepted)? By
    its parsed parts, not its text: the same scheme, host (case-insensitive) and effective port,
    and the rule's path segments as the first of the URL's, with at least one more. A URL that
    the document grammar would refuse (a query, percent-encoding, ';', '\\', a control
    character, a dot segment) is covered by no rule, whatever its text starts with."""
    if not isinstance(url, str) or any(c in url for c in "?#%;\\@") or any(c <= " " or c == "\x7f" for c in url):
        return False
    try:
        parts, rule_parts = urlsplit(url), urlsplit(rule.prefix)
        origin, rule_origin = _origin(parts), _origin(rule_parts)
    except ValueError:
        return False
    segments, under = parts.path.split("/")[1:], rule_parts.path.split("/")[1:-1]
    if {".", ".."} & set(segments):
        return False
    return origin == rule_origin and len(segments) > len(under) and segments[:len(under)] == under


def _origin(parts) -> str:
    """``scheme://host[:port]``, lower-cased, the port only if it is not the scheme's default."""
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal keeps its brackets
    port = parts.port
    return f"{scheme}://{host}" + (f":{port}" if port is not None and port != DEFAULT_PORTS.get(scheme) else "")


def matching(url: str) -> DocumentPublisher | None:
    """The most specific rule that covers ``url`` (the longest prefix), or None."""
    rules = [rule for rule in listed() if covers(rule, url)]
    return max(rules, key=lambda rule: len(rule.prefix)) if rules else None


def add(prefix: str, *, owner: str, scopes: list[str], audiences: list[str], approval_days: int,
        assurance_level: int, proofing_method: str, actor: str, sensitive_confirmed: bool = False) -> DocumentPublisher:
    """Trust the documents under ``prefix``, within a ceiling; audited, committed."""
    prefix = check_prefix(prefix)
    cat = catalogue.current()
    scopes, audiences = list(dict.fromkeys(scopes or [])), list(dict.fromkeys(audiences or []))
    if not owner or not owner.strip() or len(owner) > 255:
        raise DocumentPublisherError("an owner (the person or team accountable for these agents, at most 255 "
                                     "characters) is required")
    if bad := [s for s in scopes if not isinstance(s, str) or not catalogue.SCOPE_TOKEN.match(s)]:
        raise DocumentPublisherError(f"not valid scope names (RFC 6749 section 3.3): {', '.join(map(repr, bad))}")
    if not scopes or (unknown := cat.unknown(scopes)):
        raise DocumentPublisherError(f"scopes not in the catalogue: {', '.join(unknown)}" if scopes
                                     else "at least one scope is required")
    if not audiences:
        raise DocumentPublisherError("at least one audience (resource URI) is required")
    for audience in audiences:
        parts = urlsplit(audience)
        if not parts.scheme or not parts.netloc or "#" in audience:
            raise DocumentPublisherError(f"audience {audience!r} is not an absolute URI without a fragment "
                                         "(RFC 8707 section 2)")
    if not isinstance(approval_days, int) or not 1 <= approval_days <= MAX_DAYS:
        raise DocumentPublisherError(f"the approval lasts 1 to {MAX_DAYS} days")
    if assurance_level not in cat.levels:
        raise DocumentPublisherError(f"assurance must be one of {', '.join(map(str, cat.levels))}")
    if above := cat.above(scopes, assurance_level):
        raise DocumentPublisherError(f"scopes {', '.join(above)} need a higher assurance level than "
                                     f"{assurance_level}")
    if proofing_method == "software_statement":
        raise DocumentPublisherError("a rule approves metadata documents, not software statements: choose "
                                     "another proofing method (owner_attestation, say)")
    if proofing_method not in cat.proofing_methods:
        raise DocumentPublisherError(f"proofing method must be one of {', '.join(cat.proofing_methods)}")
    if (sensitive := cat.sensitive(scopes)) and not sensitive_confirmed:
        raise DocumentPublisherError(f"scopes {', '.join(sensitive)} are sensitive: confirm that every document "
                                     "under this prefix may have them")
    if db.session.execute(select(DocumentPublisher).where(DocumentPublisher.prefix == prefix)).first():
        raise DocumentPublisherError(f"documents under {prefix} are already trusted")
    rule = DocumentPublisher(prefix=prefix, owner=owner.strip(), scopes=scopes, audiences=audiences,
                             approval_days=approval_days, assurance_level=assurance_level,
                             proofing_method=proofing_method, created_at=clock.now(), created_by=actor)
    db.session.add(rule)
    audit.record("document_publisher.added", actor, data={
        "prefix": prefix, "owner": rule.owner, "scopes": scopes, "audiences": audiences,
        "approval_days": approval_days, "assurance_level": assurance_level, "proofing_method": proofing_method})
    db.session.commit()
    return rule


def remove(prefix: str, *, actor: str) -> None:
    """No longer trust documents under ``prefix``. The clients it approved keep their approvals
    (each names the rule in its evidence): suspend or retire them to end them."""
    rule = db.session.execute(select(DocumentPublisher).where(DocumentPublisher.prefix == prefix)).scalar_one_or_none()
    if rule is None:
        raise DocumentPublisherError(f"no trusted document publisher {prefix!r}")
    db.session.delete(rule)
    audit.record("document_publisher.removed", actor, data={"prefix": prefix})
    db.session.commit()


def listed() -> list[DocumentPublisher]:
    return list(db.session.execute(select(DocumentPublisher).order_by(DocumentPublisher.prefix)).scalars())


def approver(rule: DocumentPublisher) -> str:
    """The approval's ``approved_by``: the policy, naming the rule."""
    return f"policy:document-publisher:{rule.id}"


def default_days() -> int:
    return int(current_app.config["APPROVAL_DAYS"])
