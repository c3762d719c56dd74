"""Errors of the registration endpoints, in Authlib's shape (one class per code).

RFC 7591 §3.2.2 codes come from ``authlib.oauth2.rfc7591.errors``; the
subclasses here only make the description safe (``app.support.echo``): the
descriptions of registration quote client metadata throughout.
"""
from __future__ import annotations

from authlib.oauth2.rfc6749 import errors as rfc6749
from authlib.oauth2.rfc6750.errors import InvalidTokenError as _InvalidToken
from authlib.oauth2.rfc7591 import errors as rfc7591

from app.support.echo import safe_echo


class _Described:
    def __init__(self, description=None, **kwargs):
        super().__init__(None if description is None else safe_echo(description, 500), **kwargs)


class InvalidRequestError(_Described, rfc6749.InvalidRequestError):
    """RFC 6749 §5.2 invalid_request: the body is not a JSON object, or the request is malformed."""


class InvalidClientMetadataError(_Described, rfc7591.InvalidClientMetadataError):
    """RFC 7591 §3.2.2 invalid_client_metadata."""


class InvalidRedirectURIError(_Described, rfc7591.InvalidRedirectURIError):
    """RFC 7591 §3.2.2 invalid_redirect_uri."""


class InvalidSoftwareStatementError(_Described, rfc7591.InvalidSoftwareStatementError):
    """RFC 7591 §3.2.2 invalid_software_statement."""


class UnapprovedSoftwareStatementError(_Described, rfc7591.UnapprovedSoftwareStatementError):
    """RFC 7591 §3.2.2 unapproved_software_statement: the statement's issuer is not a trusted publisher."""


class InvalidTokenError(_Described, _InvalidToken):
    """RFC 6750 §3.1 invalid_token (401): a missing or wrong initial or registration access token
    (RFC 7591 §3, RFC 7592 §2)."""

    def __init__(self, description=None):
        super().__init__(description, realm="registration")


class AccessDeniedError(_Described, rfc6749.AccessDeniedError):
    """RFC 7592 §2.2/§2.3: the client may not do this in its current status (403)."""

    status_code = 403


class PendingLimitError(_Described, rfc6749.OAuth2Error):
    """Ostiary: too many registrations from this source await approval (429), so that a flood from
    one address or publisher cannot crowd out the others. Try again when some were decided."""

    error = "too_many_pending_registrations"
    status_code = 429
