"""The machine endpoints' front (app.oauth.front): what it answers before or around Authlib."""
import pytest

from app.models import IssuedToken

from .factories import count, events, make_client
from .token_actions import ISSUER, auth


def test_an_oversized_token_request_is_413_and_writes_nothing(client, app):
    made = make_client(auth_method="client_secret_basic")
    _, headers = auth(made, ISSUER)
    body = "grant_type=client_credentials&scope=" + "r" * app.config["MAX_BODY_BYTES"]
    response = client.post("/token", data=body, headers={**headers, "Content-Type":
                                                         "application/x-www-form-urlencoded"})
    assert response.status_code == 413
    assert response.get_json() == {"error": "invalid_request", "error_description":
                                   f"request body is larger than {app.config['MAX_BODY_BYTES']} bytes"}
    assert count(IssuedToken) == 0


@pytest.mark.parametrize("path", ["/token", "/introspect", "/revoke", "/task/end"])
def test_another_method_is_405_with_allow_post(client, path):
    response = client.get(path)
    assert response.status_code == 405 and set(response.headers["Allow"].split(", ")) == {"OPTIONS", "POST"}
    assert response.get_json()["error"] == "invalid_request"


@pytest.mark.parametrize("how", ["json body", "query string"])
def test_parameters_count_only_in_a_form_body(client, how):
    """RFC 6749 §3.2: a JSON body or the query string carries no token request parameters."""
    made = make_client(auth_method="client_secret_basic")
    _, headers = auth(made, ISSUER)
    if how == "json body":
        response = client.post("/token", json={"grant_type": "client_credentials"}, headers=headers)
    else:
        response = client.post("/token?grant_type=client_credentials", headers=headers)
    assert response.status_code == 400
    assert response.get_json()["error"] == "unsupported_grant_type"
    assert count(IssuedToken) == 0


def test_an_unexpected_error_is_a_json_500_and_the_token_is_not_written(client, app, monkeypatch):
    made = make_client(auth_method="client_secret_basic")
    _, headers = auth(made, ISSUER)

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr("app.oauth.rfc9068.mint", broken)
    monkeypatch.setattr("app.oauth.grants.client_credentials.mint", broken)
    response = client.post("/token", data={"grant_type": "client_credentials"}, headers=headers)
    assert response.status_code == 500
    assert response.get_json() == {"error": "server_error", "error_description": "internal error; nothing was changed"}
    assert count(IssuedToken) == 0
    assert events("token.issued") == []
