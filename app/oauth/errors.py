"""OAuth error codes that Authlib does not ship, in Authlib's shape (one class per code)."""
from authlib.oauth2.rfc6749.errors import OAuth2Error

# Named in the descriptions of refusals for a missing parameter: a JSON body or the query
# string, which carry no parameters here, is the usual cause.
FORM_BODY = "parameters go in an application/x-www-form-urlencoded body (RFC 6749 section 3.2)"


class InvalidTargetError(OAuth2Error):
    """The requested resource or audience is invalid, unknown, or outside what the client may
    reach (RFC 8707 §2; RFC 8693 §2.2.2)."""

    error = "invalid_target"


class InvalidAuthorizationDetailsError(OAuth2Error):
    """The ``authorization_details`` are of an unknown type, malformed, or not allowed for this
    client (RFC 9396 §5 and §6.2)."""

    error = "invalid_authorization_details"


class PolicyUnavailableError(OAuth2Error):
    """The intent policy cannot be read, so nothing is issued (deny by default). RFC 6749 §4.1.2.1
    defines ``temporarily_unavailable``; the token endpoint borrows it with a 503."""

    error = "temporarily_unavailable"
    status_code = 503
    description = "the intent policy cannot be read; nothing was issued"
