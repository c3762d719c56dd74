"""The token, introspection, revocation and task-end routes: each one line into Authlib."""
from flask import Blueprint, current_app, request

from ..extensions import csrf, limiter

bp = Blueprint("oauth", __name__)
csrf.exempt(bp)  # machine endpoints: clients authenticate every request, no cookies involved


@limiter.request_filter
def _unlimited() -> bool:
    """No rate limit applies to these endpoints; saying so here spares Flask-Limiter resolving
    (to nothing) the limits of every token request, 5 % of its CPU."""
    return request.blueprint == bp.name


def _server():
    return current_app.extensions["ostiary.oauth"]


@bp.post("/token")
def token():
    return _server().create_token_response()


@bp.post("/introspect")
def introspect():
    return _server().create_endpoint_response("introspection")


@bp.post("/revoke")
def revoke():
    return _server().create_endpoint_response("revocation")


@bp.post("/task/end")
def end_task():
    return _server().create_endpoint_response("task_end")
