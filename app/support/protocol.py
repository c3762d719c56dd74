"""The OAuth names that Ostiary's parts share, each written once: grant types, token types,
client authentication methods and the client assertion type.

Here, below registration and the token endpoints alike, so that both read them from one place
and neither imports the other for a string.
"""
from __future__ import annotations

# Grant types (RFC 6749 §4.4.2, RFC 8693 §2.1, RFC 7523 §2.1): the ones this server has, and
# what a client that registers none may use (RFC 7591 §2 ``grant_types``).
CLIENT_CREDENTIALS = "client_credentials"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
AUTHORIZATION_CODE = "authorization_code"  # RFC 6749 §4.1, for an agent acting for a person
REFRESH_TOKEN = "refresh_token"  # RFC 6749 §6
# RFC 7523 §2.1: a JWT as the grant; here a workload's own platform JWT (workload identity
# federation), so that the agent keeps no credential of its own.
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GRANT_TYPES = (CLIENT_CREDENTIALS, TOKEN_EXCHANGE, AUTHORIZATION_CODE, REFRESH_TOKEN, JWT_BEARER)
# The grants a public client (RFC 6749 §2.1, token_endpoint_auth_method "none") may use: the
# person's code, with PKCE, and its refresh tokens; never a grant that acts as the client alone.
PUBLIC_CLIENT_GRANT_TYPES = (AUTHORIZATION_CODE, REFRESH_TOKEN)
# The grants whose assertion is the credential: a workload's JWT from a trusted issuer, bound to
# the client by policy. Only a client with no credential of its own ("none") uses them.
ASSERTION_GRANT_TYPES = (JWT_BEARER,)
RESPONSE_TYPE_CODE = "code"
DEFAULT_GRANT_TYPES = (CLIENT_CREDENTIALS,)

# Token type identifiers (RFC 8693 §3) and the access token type issued (RFC 6750 §6.1.1).
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"
BEARER = "Bearer"

# Client authentication methods (RFC 7591 §2, OIDC Core §9) and the assertion type of
# ``private_key_jwt`` (RFC 7523 §2.2).
CLIENT_SECRET_BASIC = "client_secret_basic"
CLIENT_SECRET_POST = "client_secret_post"
PRIVATE_KEY_JWT = "private_key_jwt"
AUTH_METHODS = (CLIENT_SECRET_BASIC, CLIENT_SECRET_POST, PRIVATE_KEY_JWT)
NONE = "none"  # a public client: it only names itself (RFC 7591 §2)
JWT_BEARER_ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
