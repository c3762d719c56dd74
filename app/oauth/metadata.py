"""RFC 8414 authorization server metadata: only what Ostiary really supports."""
from __future__ import annotations

from flask import current_app

from ..registration.keys import ASYMMETRIC_ALGS


def server_metadata() -> dict:
    config = current_app.config
    issuer = config["ISSUER"]
    return {
        "issuer": issuer,
        "jwks_uri": f"{issuer}/jwks.json",
        "registration_endpoint": f"{issuer}/register",  # RFC 7591 §3
        "response_types_supported": [],  # no authorization endpoint: machine grants only
        "subject_types_supported": ["public"],
        # issue 5: the token endpoint and what it accepts
        "token_endpoint": f"{issuer}/token",
        "grant_types_supported": ["client_credentials", "urn:ietf:params:oauth:grant-type:token-exchange"],
        "token_endpoint_auth_methods_supported": list(config["ALLOWED_AUTH_METHODS"]),
        "token_endpoint_auth_signing_alg_values_supported": list(ASYMMETRIC_ALGS),
        "introspection_endpoint": f"{issuer}/introspect",
        "introspection_endpoint_auth_methods_supported": list(config["ALLOWED_AUTH_METHODS"]),
        "revocation_endpoint": f"{issuer}/revoke",
        "revocation_endpoint_auth_methods_supported": list(config["ALLOWED_AUTH_METHODS"]),
        "authorization_details_types_supported": ["agent_task"],  # RFC 9396 §10
    }
