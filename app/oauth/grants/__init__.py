"""Token grants: RFC 6749 §4.4 client credentials, RFC 8693 token exchange and RFC 7523 §2.1
JWT bearer (a workload's own JWT), for an agent acting as itself; RFC 6749 §4.1 authorization
code (with PKCE) and §6 refresh token, for an agent acting for a person."""
from app.oauth.grants.client_credentials import ClientCredentialsGrant
from app.oauth.grants.jwt_bearer import JWTBearerGrant
from app.oauth.grants.person import AuthorizationCodeGrant, RefreshTokenGrant
from app.oauth.grants.token_exchange import TokenExchangeGrant

__all__ = ["AuthorizationCodeGrant", "ClientCredentialsGrant", "JWTBearerGrant", "RefreshTokenGrant",
           "TokenExchangeGrant"]
