"""The grants of an agent acting for a person: the authorization code (RFC 6749 §4.1, PKCE
required, RFC 7636) and the refresh token (RFC 6749 §6, rotated on every use, RFC 9700 §4.14.2).

Both end in one issuance, written as every grant's is (``OstiaryGrantMixin.issue``): the access
token names the person as ``sub`` and the agent as ``client_id`` (RFC 9068 §2.2), and it comes
with a new refresh token of the same family. The code or refresh token presented is used up in
that same transaction (``group_commit.Spend``); presented again, whatever its first use issued
is revoked, in the transaction that refuses it.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
from datetime import datetime, timedelta
from types import SimpleNamespace

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import InvalidGrantError, InvalidRequestError
from flask import current_app
from sqlalchemy import bindparam, select, update

from app import audit
from app.db import dbapi
from app.models import AuthorizationCode, IssuedToken, Person, RefreshToken
from app.oauth.errors import InvalidTargetError
from app.oauth.grants.base import OstiaryGrantMixin
from app.oauth.group_commit import Spend
from app.oauth.rfc9068 import mint
from app.policy import PersonFacts
from app.support import clock, hashing
from app.support.echo import safe_echo
from app.support.protocol import AUTH_METHODS, AUTHORIZATION_CODE, NONE, REFRESH_TOKEN
from app.support.resources import match

log = logging.getLogger(__name__)

# RFC 7636 §4.1: 43 to 128 unreserved characters
VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")

_CODE, _REFRESH, _TOKEN, _PERSON = (AuthorizationCode.__table__, RefreshToken.__table__,
                                    IssuedToken.__table__, Person.__table__)
# Read in autocommit on the driver (app.db.dbapi), as the client is: the token endpoint runs
# inline on the event loop, and the row is used up only in the issuance's own transaction.
FIND_CODE = select(_CODE).where(_CODE.c.code_hash == bindparam("code_hash"))
FIND_REFRESH = select(_REFRESH).where(_REFRESH.c.token_hash == bindparam("token_hash"))
FIND_PERSON = select(_PERSON.c.public_id, _PERSON.c.disabled_at, _PERSON.c.username, _PERSON.c.email,
                     _PERSON.c.email_verified, _PERSON.c.groups).where(_PERSON.c.id == bindparam("person_id"))
SPEND_CODE = (update(_CODE).where(_CODE.c.code_hash == bindparam("key"), _CODE.c.spent_at.is_(None))
              .values(spent_at=bindparam("now"), access_jti=bindparam("access_jti"),
                      refresh_family=bindparam("family")).returning(_CODE.c.code_hash))
SPEND_REFRESH = (update(_REFRESH).where(_REFRESH.c.token_hash == bindparam("key"), _REFRESH.c.used_at.is_(None),
                                        _REFRESH.c.revoked_at.is_(None))
                 .values(used_at=bindparam("now")).returning(_REFRESH.c.token_hash))
REVOKE_FAMILY = (update(_REFRESH).where(_REFRESH.c.family == bindparam("family"), _REFRESH.c.revoked_at.is_(None))
                 .values(revoked_at=bindparam("now")))
FAMILY_TOKENS = select(_REFRESH.c.access_jti).where(_REFRESH.c.family == bindparam("family"))
CHILDREN = select(_TOKEN.c.jti).where(_TOKEN.c.parent_jti == bindparam("jti"))
REVOKE_TOKEN = (update(_TOKEN).where(_TOKEN.c.jti == bindparam("jti"), _TOKEN.c.revoked_at.is_(None))
                .values(revoked_at=bindparam("now")))


def s256(verifier: str) -> str:
    """RFC 7636 §4.2: BASE64URL(SHA256(ASCII(code_verifier))), unpadded."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


class PersonGrantMixin(OstiaryGrantMixin):
    """What the code and the refresh token grants share: public clients, the person, the
    issuance with its next refresh token."""

    TOKEN_ENDPOINT_AUTH_METHODS = (*AUTH_METHODS, NONE)

    def person_subject(self, person_id: int) -> str:
        """The person's ``sub``, if they may still be acted for: not disabled, and still allowed
        by the policy's ``[[people]]`` rules to authorize this client (a rule or their groups may
        have changed since they consented: a refresh is judged as a new authorization would be)."""
        row = dbapi.fetch_one(FIND_PERSON, {"person_id": person_id})
        if row is None or row[1] is not None:
            raise InvalidGrantError("the person who authorized this client is no longer an active user")
        person = SimpleNamespace(**dict(zip(("public_id", "disabled_at", "username", "email", "email_verified",
                                             "groups"), row)))
        decision = self.policy().decide_person(client_id=self.client.client_id,
                                               owner=self.client.approval.owner or "", person=PersonFacts.of(person))
        if not decision.allowed:
            raise InvalidGrantError("the policy no longer lets the person who authorized this client do so; "
                                    "they must authorize it again once allowed")
        return person.public_id

    def narrowed(self, granted_scopes: list[str], granted_resources: list[str]) -> tuple[list, list]:
        """RFC 6749 §6 and RFC 8707 §2.2: a token request may ask for less than was granted,
        never more; then it must still lie within the client's current approval."""
        scopes = self.requested_scopes() or list(granted_scopes)
        if extra := [s for s in scopes if s not in granted_scopes]:
            raise InvalidGrantError(f"scope {safe_echo(' '.join(extra), 200)} was not granted by the person; "
                                    f"granted: {' '.join(granted_scopes) or 'none'}")
        resources, extra = match(self.requested_audiences() or list(granted_resources), granted_resources)
        if extra:
            raise InvalidTargetError(f"resource {safe_echo(extra[0], 200)} was not part of the person's "
                                     f"authorization; granted: {safe_echo(' '.join(granted_resources), 400)}")
        self.enforce_approval(scopes, resources)
        return scopes, resources

    def issue_for_person(self, *, person_id: int, subject: str, family: str, spend: Spend, event_type: str,
                         family_ends: datetime | None = None):
        """Mint the access token and the family's next refresh token; write both with ``spend``.
        A family lives REFRESH_TOKEN_TTL from the code's exchange (``family_ends`` for the next of
        its tokens): rotation replaces a token, it does not extend the person's authorization."""
        granted = self.request.decision.granted
        approval = self.client.approval
        minted = mint(client_id=self.client.client_id, subject=subject, scopes=granted["scopes"],
                      audience=granted["audiences"], ttl=self.base_ttl(), grant_type=self.GRANT_TYPE,
                      owner=approval.owner)
        spend.params.update(access_jti=minted.row["jti"], family=family)
        rows, extra = [], {}
        if self.client.check_grant_type(REFRESH_TOKEN):
            refresh = hashing.generate()
            now = clock.now()
            ends = family_ends or now + timedelta(seconds=int(current_app.config["REFRESH_TOKEN_TTL"]))
            rows.append((_REFRESH, {
                "token_hash": hashing.hash_secret(refresh), "family": family, "client_id": self.client.client_id,
                "person_id": person_id, "scopes": granted["scopes"], "resources": granted["audiences"],
                "access_jti": minted.row["jti"], "created_at": now, "expires_at": ends}))
            extra["refresh_token"] = refresh
        minted.extra.update(extra)
        self.issue(minted, event_type, spend=spend, rows=rows, data={"person": subject, "family": family})
        return 200, {**minted.response()}, self.TOKEN_RESPONSE_HEADER


def _revoke_issued(connection, jtis: list[str], now) -> list[str]:
    """Revoke ``jtis`` and every token exchanged from them, in ``connection``'s transaction."""
    found, frontier = [], list(dict.fromkeys(j for j in jtis if j))
    while frontier:  # a rare path (a code or refresh token stolen and replayed): one row at a time
        found.extend(frontier)
        frontier = [child for jti in frontier for (child,) in connection.execute(CHILDREN, {"jti": jti}).all()]
    if found:
        connection.execute(REVOKE_TOKEN, [{"jti": jti, "now": now} for jti in found])
    return found


def _revoke_family(connection, family: str | None, now) -> list[str]:
    if family is None:
        return []
    jtis = [row[0] for row in connection.execute(FAMILY_TOKENS, {"family": family}).all()]
    connection.execute(REVOKE_FAMILY, {"family": family, "now": now})
    return _revoke_issued(connection, jtis, now)


class AuthorizationCodeGrant(PersonGrantMixin, grants.BaseGrant, grants.TokenEndpointMixin):
    """RFC 6749 §4.1.3: the code, the redirect URI it was issued for, the PKCE verifier."""

    GRANT_TYPE = AUTHORIZATION_CODE

    def validate_token_request(self):
        self.authenticate_for_grant()
        form = self.request.form
        code, verifier = form.get("code"), form.get("code_verifier")
        if not code:
            raise InvalidRequestError("code is required (RFC 6749 section 4.1.3)")
        row = dbapi.fetch_one(FIND_CODE, {"code_hash": hashing.hash_secret(code)})
        row = dict(zip(_CODE.c.keys(), row)) if row is not None else None
        if row is None or row["client_id"] != self.client.client_id:
            raise InvalidGrantError("the code is unknown or was issued to another client")
        if row["expires_at"] <= clock.now() and row["spent_at"] is None:
            raise InvalidGrantError("the code has expired; authorization codes live "
                                    f"{current_app.config['AUTHORIZATION_CODE_TTL']} seconds")
        if row["redirect_uri_given"] and form.get("redirect_uri") != row["redirect_uri"]:
            raise InvalidGrantError("redirect_uri must be the one of the authorization request "
                                    "(RFC 6749 section 4.1.3)")
        if not verifier:
            raise InvalidRequestError("code_verifier is required: this server requires PKCE (RFC 7636)")
        if not VERIFIER.match(verifier):
            raise InvalidRequestError("code_verifier must be 43 to 128 unreserved characters (RFC 7636 section 4.1)")
        if not hmac.compare_digest(s256(verifier), row["code_challenge"]):
            raise InvalidGrantError("code_verifier does not match the code_challenge (RFC 7636 section 4.6)")
        self.code = row
        self.subject = self.person_subject(row["person_id"])
        self.narrowed(row["scopes"], row["resources"])

    def create_token_response(self):
        row, now = self.code, clock.now()
        client_id = self.client.client_id

        def on_reuse(connection):
            """RFC 6749 §4.1.2: the code was used before; what its first use issued is revoked."""
            first = connection.execute(select(_CODE.c.access_jti, _CODE.c.refresh_family).where(
                _CODE.c.code_hash == bindparam("code_hash")), {"code_hash": row["code_hash"]}).first()
            revoked = list(dict.fromkeys(_revoke_issued(connection, [first[0]], now)
                                         + _revoke_family(connection, first[1], now)))
            return [audit.values("authorization_code.reused", f"client:{client_id}", client_id=client_id,
                                 decision="deny", reason="an authorization code was presented a second time; "
                                 "the tokens issued with it are revoked", data={"revoked": revoked})]

        spend = Spend(SPEND_CODE, {"key": row["code_hash"], "now": now},
                      InvalidGrantError("the code was used before; the tokens issued with it are revoked "
                                        "(RFC 6749 section 4.1.2)"), on_reuse)
        return self.issue_for_person(person_id=row["person_id"], subject=self.subject,
                                     family=secrets.token_urlsafe(16), spend=spend, event_type="token.issued")


class RefreshTokenGrant(PersonGrantMixin, grants.BaseGrant, grants.TokenEndpointMixin):
    """RFC 6749 §6, rotated (RFC 9700 §4.14.2): each refresh token is used once."""

    GRANT_TYPE = REFRESH_TOKEN

    def validate_token_request(self):
        self.authenticate_for_grant()
        token = self.request.form.get("refresh_token")
        if not token:
            raise InvalidRequestError("refresh_token is required (RFC 6749 section 6)")
        row = dbapi.fetch_one(FIND_REFRESH, {"token_hash": hashing.hash_secret(token)})
        row = dict(zip(_REFRESH.c.keys(), row)) if row is not None else None
        if row is None or row["client_id"] != self.client.client_id:
            raise InvalidGrantError("the refresh token is unknown or was issued to another client")
        if row["revoked_at"] is not None:
            raise InvalidGrantError("the refresh token was revoked")
        if row["expires_at"] <= clock.now():
            raise InvalidGrantError("the refresh token has expired; the person must authorize the client again")
        self.refresh = row
        self.subject = self.person_subject(row["person_id"])
        self.narrowed(row["scopes"], row["resources"])

    def create_token_response(self):
        row, now = self.refresh, clock.now()
        client_id = self.client.client_id

        def on_reuse(connection):
            """RFC 9700 §4.14.2: a rotated refresh token came back; the whole family is revoked."""
            revoked = _revoke_family(connection, row["family"], now)
            return [audit.values("refresh_token.reused", f"client:{client_id}", client_id=client_id,
                                 decision="deny", reason="a rotated refresh token was presented again; its "
                                 "family is revoked", data={"family": row["family"], "revoked": revoked})]

        spend = Spend(SPEND_REFRESH, {"key": row["token_hash"], "now": now},
                      InvalidGrantError("the refresh token was used before; every token of its family is "
                                        "revoked (RFC 9700 section 4.14.2)"), on_reuse)
        return self.issue_for_person(person_id=row["person_id"], subject=self.subject, family=row["family"],
                                     spend=spend, event_type="token.refreshed", family_ends=row["expires_at"])
