"""Discovery: RFC 8414 authorization server metadata (only what Ostiary really supports) and
the JWKS its tokens verify with."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from app.extensions import limiter
from app.support.protocol import GRANT_TYPES, NONE, RESPONSE_TYPE_CODE
from app.trust.keysets import ASYMMETRIC_ALGS

bp = Blueprint("discovery", __name__)

JWKS_MAX_AGE = 300  # shorter than the time a `next` key is published before it signs


@bp.get("/.well-known/oauth-authorization-server")
@bp.get("/.well-known/openid-configuration")
@limiter.exempt
def metadata():
    response = jsonify(server_metadata())
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@bp.get("/jwks.json")
@limiter.exempt
def jwks():
    response = jsonify(current_app.extensions["ostiary.keys"].jwks())
    response.headers["Cache-Control"] = f"public, max-age={JWKS_MAX_AGE}"
    return response


def server_metadata() -> dict:
    config = current_app.config
    issuer = config["ISSUER"]
    allowed = list(config["ALLOWED_AUTH_METHODS"])
    authenticated = [method for method in allowed if method != NONE]  # a resource server is never public
    body = {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "jwks_uri": f"{issuer}/jwks.json",
        "registration_endpoint": f"{issuer}/register",  # RFC 7591 §3
        "response_types_supported": [RESPONSE_TYPE_CODE],
        "response_modes_supported": ["query"],
        "code_challenge_methods_supported": ["S256"],  # RFC 7636; RFC 9700 §2.1.1: never plain
        "authorization_response_iss_parameter_supported": True,  # RFC 9207
        "subject_types_supported": ["public"],
        "grant_types_supported": list(GRANT_TYPES),
        "token_endpoint_auth_methods_supported": allowed,
        "token_endpoint_auth_signing_alg_values_supported": list(ASYMMETRIC_ALGS),
        "introspection_endpoint": f"{issuer}/introspect",
        "introspection_endpoint_auth_methods_supported": authenticated,
        "revocation_endpoint": f"{issuer}/revoke",
        "revocation_endpoint_auth_methods_supported": authenticated,
        "authorization_details_types_supported": ["agent_task"],  # RFC 9396 §10
    }
    if config["CLIENT_ID_DOCUMENTS"]:  # draft-ietf-oauth-client-id-metadata-document (app.registration.documents)
        body["client_id_metadata_document_supported"] = True
    return body
