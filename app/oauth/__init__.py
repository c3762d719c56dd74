"""OAuth 2.0 protocol: Authlib server wiring, metadata, grants, tokens."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Build the authorization server for ``app`` and mount its routes. An intent policy file
    that does not load (or whose examples fail) stops start-up with one line."""
    from app.oauth.authorize import bp as authorize
    from app.oauth.client_auth import PrivateKeyJWT
    from app.oauth.clients import ClientCache
    from app.oauth.front import mount
    from app.oauth.grants import (
        AuthorizationCodeGrant,
        ClientCredentialsGrant,
        JWTBearerGrant,
        RefreshTokenGrant,
        TokenExchangeGrant,
    )
    from app.oauth.group_commit import GroupCommit
    from app.oauth.introspection import IntrospectionEndpoint
    from app.oauth.logos import bp as logos
    from app.oauth.metadata import bp as discovery
    from app.oauth.revocation import RevocationEndpoint
    from app.oauth.server import OstiaryAuthorizationServer
    from app.oauth.task_end import TaskEndEndpoint
    from app.policy import PolicyError, load
    from app.settings import StartupError
    from app.support.protocol import PRIVATE_KEY_JWT

    try:
        load(app.config["POLICY_FILE"] or None)
    except PolicyError as exc:
        raise StartupError(f"intent policy: {exc}") from None

    server = OstiaryAuthorizationServer()
    server.register_client_auth_method(PRIVATE_KEY_JWT, PrivateKeyJWT())
    server.register_grant(ClientCredentialsGrant)
    server.register_grant(TokenExchangeGrant)
    server.register_grant(JWTBearerGrant)
    server.register_grant(AuthorizationCodeGrant)
    server.register_grant(RefreshTokenGrant)
    for endpoint in (IntrospectionEndpoint, RevocationEndpoint, TaskEndEndpoint):
        server.register_endpoint(endpoint)
    app.extensions["ostiary.oauth"] = server
    app.extensions["ostiary.group_commit"] = GroupCommit(app)
    app.extensions["ostiary.clients"] = ClientCache()
    app.register_blueprint(discovery)
    app.register_blueprint(authorize)
    app.register_blueprint(logos)
    mount(app)
