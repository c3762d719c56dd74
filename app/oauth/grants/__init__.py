"""Token grants: RFC 6749 §4.4 client credentials and RFC 8693 token exchange."""
from app.oauth.grants.client_credentials import ClientCredentialsGrant
from app.oauth.grants.token_exchange import TokenExchangeGrant

__all__ = ["ClientCredentialsGrant", "TokenExchangeGrant"]
