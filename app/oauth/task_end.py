"""The endpoint an agent calls when its task is done or failed: every token of the task is
revoked. Ostiary's own endpoint (no RFC defines one), authenticated like the token endpoint.

    POST /task/end   task_id=…&outcome=done|failed   (+ client authentication)
"""
from __future__ import annotations

import logging

from authlib.consts import default_json_headers
from authlib.oauth2.rfc6749.endpoint import Endpoint
from authlib.oauth2.rfc6749.errors import InvalidRequestError

from app.oauth import tokens
from app.support.echo import safe_echo
from app.support.protocol import AUTH_METHODS

log = logging.getLogger(__name__)


class TaskEndEndpoint(Endpoint):
    ENDPOINT_NAME = "task_end"
    CLIENT_AUTH_METHODS = AUTH_METHODS

    def create_endpoint_response(self, request):
        client = self.server.authenticate_client(request, self.CLIENT_AUTH_METHODS, self.ENDPOINT_NAME)
        request.client = client
        form = request.form
        outcome = form.get("outcome", "done")
        if outcome not in ("done", "failed"):
            raise InvalidRequestError("outcome must be done or failed")
        try:
            revoked = tokens.end_task(form.get("task_id", ""), outcome=outcome,
                                      actor=f"client:{client.client_id}", client_id=client.client_id)
        except tokens.TaskError as exc:
            raise InvalidRequestError(safe_echo(exc, 500)) from None
        return 200, {"task_id": form["task_id"], "outcome": outcome, "revoked": len(revoked)}, \
            default_json_headers
