"""OAuth 2.0 protocol: Authlib server wiring, metadata, grants, tokens."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Build the authorization server for ``app`` and mount its routes. An intent policy file
    that does not load (or whose examples fail) stops start-up with one line."""
    from .. import StartupError
    from ..policy import PolicyError, load
    from .client_auth import AUTH_METHOD, PrivateKeyJWT
    from .clients import ClientCache
    from .front import mount
    from .grants import ClientCredentialsGrant, TokenExchangeGrant
    from .introspection import IntrospectionEndpoint
    from .group_commit import GroupCommit
    from .revocation import RevocationEndpoint
    from .server import OstiaryAuthorizationServer
    from .task_end import TaskEndEndpoint

    try:
        load(app.config["POLICY_FILE"] or None)
    except PolicyError as exc:
        raise StartupError(f"intent policy: {exc}") from None

    server = OstiaryAuthorizationServer()
    server.register_client_auth_method(AUTH_METHOD, PrivateKeyJWT())
    server.register_grant(ClientCredentialsGrant)
    server.register_grant(TokenExchangeGrant)
    for endpoint in (IntrospectionEndpoint, RevocationEndpoint, TaskEndEndpoint):
        server.register_endpoint(endpoint)
    app.extensions["ostiary.oauth"] = server
    app.extensions["ostiary.group_commit"] = GroupCommit(app)
    app.extensions["ostiary.clients"] = ClientCache()
    mount(app)
