"""Discovery (RFC 8414), health and the JSON errors of the well-known routes."""
import pytest


@pytest.mark.parametrize("path", ["/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"])
def test_discovery_documents_carry_the_configured_issuer(app, client, path):
    response = client.get(path)
    assert response.status_code == 200
    document = response.get_json()
    assert document["issuer"] == app.config["ISSUER"]
    assert document["jwks_uri"] == app.config["ISSUER"] + "/jwks.json"


def test_health_checks_the_database(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok"}


def test_unknown_path_is_a_json_error_not_html(client):
    response = client.get("/no/such/thing")
    assert response.status_code == 404
    assert response.is_json and response.get_json()["error"] == "not_found"


def test_wrong_method_is_a_json_error(client):
    response = client.post("/jwks.json")
    assert response.status_code == 405
    assert response.get_json()["error"] == "invalid_request"
