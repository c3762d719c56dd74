"""RFC 7523 §2.1 JWT bearer grant, for workload identity federation: a workload presents its
own platform JWT (SPIFFE JWT-SVID, Kubernetes service account token, CI OIDC token) from a
trusted workload issuer and gets an RFC 9068 access token as the client that a policy
``[[workload]]`` rule binds it to. The agent keeps no secret or key of its own anywhere.

- The assertion is verified as every workload JWT is (``app.trust.workload``: a trusted
  issuer, its keys and asymmetric algorithms, times, subject pattern), its ``aud`` this
  server's issuer identifier alone (draft-ietf-oauth-rfc7523bis; RFC 7523 §3 items 1-6).
- Its ``jti`` is required and accepted once, across instances (RFC 7523 §3 item 7): spent in
  ``assertion_jti`` in the transaction of the token or of the refusal (``OstiaryGrantMixin.issue``,
  ``app.oauth.server``), keyed by its issuer, as a client assertion's is by its client.
- The client is one that the ``[[workload]]`` rules matching the workload name literally
  (``Policy.workload_clients``): the ``client_id`` in the form (RFC 6749 §3.2.1), or, when the
  request names none, as the MCP workload identity federation extension sends it
  (``grant_type``, ``assertion``, ``resource``), the only one they name. A pattern in a rule's
  ``clients`` binds no client here: the client authenticates with nothing but the workload's
  JWT, so ``clients = ["*"]`` (written for token exchange, where the caller also proves its own
  credential) would let every matching workload act as every public client. Either way it registered ``token_endpoint_auth_method`` none
  and this grant type (``app.registration.metadata``), and it is active; the token holds no more
  than its approval (scopes and RFC 8707 resources).
- The token's ``sub`` is the workload (the JWT's ``sub``, RFC 7523 §3 item 2.A); its
  ``client_id`` the bound client.

Budget: beside the client's read and the one write transaction, one indexed read of the
workload issuer, whose keys come from the fetcher's cache (``app.support.fetch``), as a
workload subject token's do in token exchange.
"""
from __future__ import annotations

import hashlib
import logging

from authlib.oauth2.rfc6749.errors import (
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    UnauthorizedClientError,
)
from authlib.oauth2.rfc6749.grants import BaseGrant
from authlib.oauth2.rfc6749.grants.base import TokenEndpointMixin
from flask import current_app

from app.oauth.client_auth import REPLAYED
from app.oauth.errors import InvalidAuthorizationDetailsError
from app.oauth.grants.base import OstiaryGrantMixin
from app.oauth.rfc9068 import mint
from app.oauth.status import require_active
from app.support import clock, jwt_claims
from app.support.echo import safe_echo
from app.support.protocol import AUTH_METHODS, JWT_BEARER, NONE
from app.trust import workload

log = logging.getLogger(__name__)

# RFC 7523 §3 item 4 lets a server refuse an exp "unreasonably far in the future". Platform JWTs
# live minutes to an hour (a projected service account token one hour by default, a JWT-SVID
# minutes); a day is generous, and it bounds how long the jti row is kept. Not the client
# assertions' ASSERTION_MAX_LIFETIME (seconds): the platform, not the agent, sets this lifetime.
MAX_ASSERTION_LIFETIME = 24 * 3600
WORKLOAD_JTI = "iss:"  # the prefix of a workload JWT's assertion_jti key
ASSERTION_REPLAYED = ("the assertion was already used (jti replay): each workload JWT gets one token; "
                      "present a new one from the platform")


class JWTBearerGrant(OstiaryGrantMixin, BaseGrant, TokenEndpointMixin):
    GRANT_TYPE = JWT_BEARER
    # A client that sends credentials is authenticated with them, to be told plainly that this
    # grant is not one it registered; the clients that use it registered none.
    TOKEN_ENDPOINT_AUTH_METHODS = (*AUTH_METHODS, NONE)

    def validate_token_request(self):
        """RFC 7523 §2.1 parameters; the client named or mapped, bound to the workload by policy;
        then the approval, as for client credentials."""
        data, datalist = self.request.payload.data, self.request.payload.datalist
        for name in ("assertion", "client_id"):
            if len(datalist.get(name, [])) > 1:
                raise InvalidRequestError(f"{name} must be given once")
        if not data.get("assertion"):
            raise InvalidRequestError("assertion is required: the workload's JWT (RFC 7523 section 2.1)")
        if data.get("authorization_details"):
            raise InvalidAuthorizationDetailsError(
                "task intents (agent_task) are granted by token exchange, not the jwt-bearer grant")
        client = self.authenticate_for_grant() if self.names_client() else None
        policy = self.policy()
        claims = self.verified(data["assertion"])
        who = f"{safe_echo(claims['sub'], 200)} from {safe_echo(claims['iss'], 200)}"
        if client is None:
            binding = self.mapped_client(policy, claims, who)
        else:
            binding = policy.workload_clients(issuer=claims["iss"], subject=claims["sub"]).get(client.client_id)
            if binding is None:
                raise InvalidGrantError(f"no policy workload rule names client {safe_echo(client.client_id)} "
                                        f"for {who} (a rule's clients must name it without wildcards)")
        self.workload = {"iss": claims["iss"], "sub": claims["sub"], "jti": claims["jti"], "rule": binding.name}
        self.enforce_approval(self.requested_scopes(), self.requested_audiences())

    def create_token_response(self):
        granted = self.request.decision.granted
        approval = self.client.approval
        minted = mint(client_id=self.client.client_id, subject=self.workload["sub"], scopes=granted["scopes"],
                      audience=granted["audiences"], ttl=self.base_ttl(), grant_type=self.GRANT_TYPE,
                      owner=approval.owner)
        try:
            self.issue(minted, "token.issued", data={"workload": self.workload})
        except InvalidClientError as exc:
            if exc.description != REPLAYED:
                raise
            self.request.assertion_jti = None  # spent by its first use: the refusal spends nothing
            raise InvalidGrantError(ASSERTION_REPLAYED) from None
        return 200, minted.response(), self.TOKEN_RESPONSE_HEADER

    # -- the steps, each raising the RFC error it is about ------------------------------------

    def names_client(self) -> bool:
        """Does the request say which client it is (RFC 6749 §2.3, §3.2.1)?"""
        form = self.request.form
        return bool(form.get("client_id") or form.get("client_secret") or form.get("client_assertion")
                    or self.request.headers.get("Authorization"))

    def verified(self, assertion: str) -> dict:
        """The assertion's claims (RFC 7523 §3), its ``jti`` kept to be spent with the answer."""
        issuer = current_app.config["ISSUER"]
        if workload.unverified_issuer(assertion) == issuer:
            raise InvalidGrantError("the assertion was issued by this server; this grant takes a workload's "
                                    "JWT from a trusted issuer (this server's tokens are exchanged with "
                                    "token exchange, RFC 8693)")
        try:
            claims = workload.verify(assertion, sole_audience=issuer, what="the assertion")
        except workload.UntrustedWorkloadToken as exc:
            raise InvalidGrantError(f"the assertion is not accepted: {safe_echo(str(exc), 400)}") from None
        if claims["exp"] - clock.timestamp() > MAX_ASSERTION_LIFETIME:
            raise InvalidGrantError(f"the assertion expires more than {MAX_ASSERTION_LIFETIME // 3600} hours "
                                    "from now; a workload JWT for this grant must be short-lived "
                                    "(RFC 7523 section 3)")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not 0 < len(jti) <= 255:
            raise InvalidGrantError("the assertion needs a jti (a string of at most 255 characters): each "
                                    "workload JWT is accepted once (RFC 7523 section 3)")
        self.request.assertion_jti = {
            "client_id": jti_namespace(claims["iss"]), "jti": jti,
            "expires_at": jwt_claims.kept_until(claims["exp"])}
        return claims

    def mapped_client(self, policy, claims: dict, who: str):
        """The client the policy maps the workload to when the request names none: it must exist,
        have registered none and this grant, and be active (``require_active``)."""
        named = policy.workload_clients(issuer=claims["iss"], subject=claims["sub"])
        if not named:
            raise InvalidGrantError(f"no policy workload rule maps {who} to a client (a rule's clients "
                                    "must name it without wildcards)")
        # Whoever holds a workload's JWT learns from these answers no rule name and no client
        # of someone else's: the trail (the refusal's event) and the policy file say which.
        if len(named) > 1:
            raise InvalidGrantError(f"the policy workload rules map {who} to several clients; name yours "
                                    "with client_id")
        [(client_id, binding)] = named.items()
        client = self.server.query_client(client_id)
        if client is None:
            log.info("workload rule %s maps %s to client %r, which is not registered", binding.name, who, client_id)
            raise InvalidGrantError(f"the client the policy maps {who} to is not registered here")
        self.request.client = client
        if not client.check_endpoint_auth_method(NONE, "token"):
            raise InvalidGrantError(f"the client the policy maps {who} to did not register token_endpoint_auth_method "
                                    "none: a workload's JWT alone gets tokens only for a client registered so")
        self.request.auth_method = NONE  # the workload's JWT proved who asks; the policy named the client
        require_active(client)
        if not client.check_grant_type(self.GRANT_TYPE):
            raise UnauthorizedClientError(f"the client did not register for grant_type {self.GRANT_TYPE}")
        return binding


def jti_namespace(issuer: str) -> str:
    """Where a workload JWT's ``jti`` is unique: its issuer (RFC 7519 §4.1.7), as the
    ``assertion_jti`` key's first half, which holds a client_id (64 characters) for client
    assertions. The prefix keeps the two apart (no client_id begins with it: Ostiary makes them
    of hex digits, and a metadata document's is an https URL); the hash fits any issuer URL."""
    return WORKLOAD_JTI + hashlib.sha256(issuer.encode()).hexdigest()[:40]


def is_workload_jti(row: dict) -> bool:
    """Is this assertion_jti row a workload JWT's (``jti_namespace``), not a client assertion's?"""
    return row["client_id"].startswith(WORKLOAD_JTI)
