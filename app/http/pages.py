"""The headers of every HTML page Ostiary serves (the console, sign-in, the authorization pages):
no inline script or style, nothing loaded from elsewhere (client-supplied logos included), never
in a frame, never cached, no referrer."""
from __future__ import annotations

from flask import Blueprint, g

CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action {form_action}; "
       "base-uri 'none'; frame-ancestors 'none'")


def allow_form_redirect(origin: str) -> None:
    """Let this response's form lead to ``origin``: browsers apply ``form-action`` to where a
    submitted form redirects too, and the authorization decision redirects to the client."""
    g.ostiary_form_targets = [*g.get("ostiary_form_targets", []), origin]


def secure(response):
    targets = " ".join(["'self'", *g.get("ostiary_form_targets", [])])
    response.headers["Content-Security-Policy"] = CSP.format(form_action=targets)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def protect(bp: Blueprint) -> Blueprint:
    """Every response of ``bp`` gets the pages' headers."""
    bp.after_request(secure)
    return bp
