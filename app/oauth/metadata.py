"""RFC 8414 authorization server metadata: only what Ostiary really supports."""
from __future__ import annotations

from flask import current_app


def server_metadata() -> dict:
    config = current_app.config
    issuer = config["ISSUER"]
    return {
        "issuer": issuer,
        "jwks_uri": f"{issuer}/jwks.json",
        "response_types_supported": [],  # no authorization endpoint: machine grants only
        "subject_types_supported": ["public"],
    }
