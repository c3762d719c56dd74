"""The machine endpoints' front under gunicorn: bodies sent chunked (no Content-Length)."""
import requests


def chunks(body: bytes, size: int = 1000):
    for start in range(0, len(body), size):
        yield body[start:start + size]


def post_chunked(server, body: bytes):
    return requests.post(server.url + "/token", data=chunks(body), auth=("no-such-client", "secret"),
                         headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=10)


def test_a_chunked_form_body_is_read(live_server):
    response = post_chunked(live_server, b"grant_type=client_credentials&scope=read")
    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    # Parsed: the grant type was seen, and the unknown client refused (an empty body would be
    # unsupported_grant_type).
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


def test_an_oversized_chunked_body_is_413(live_server):
    response = post_chunked(live_server, b"grant_type=client_credentials&scope=" + b"r" * (64 * 1024))
    assert response.status_code == 413
    assert response.json()["error"] == "invalid_request" and "larger than" in response.json()["error_description"]
