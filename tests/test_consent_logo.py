"""The agent's logo on the authorization pages, served from Ostiary's own origin
(``app.oauth.logos``): fetched from a real image server on loopback (the tests run with
FETCH_ALLOW_HTTP_LOOPBACK), raster images only, recognised by their bytes, anything else a 404
with no body, and the pages point at this origin alone."""
from __future__ import annotations

import http.server
import re
import struct
import time
import zlib
from collections import Counter

import psycopg
import pytest

from app.extensions import db
from app.models.client import DENIED, PENDING, RETIRED, SUSPENDED
from app.oauth import logos

from .factories import make_client, sqlite_write_lock_is_free
from .servers import LoopbackHTTPServer, serve_in_background
from .test_authorization_code import (
    PERSON_GRANTS,
    REDIRECT,
    authorize_params,
    person,  # noqa: F401 (a fixture: alice, signed in on the test's client)
    pkce,
)


def png(width: int = 2, height: int = 2) -> bytes:
    """A real PNG (ISO/IEC 15948): signature, IHDR, one IDAT of red pixels, IEND."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + b"\xc8\x1e\x1e" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


PNG = png()
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
HTML = b"<!doctype html><html><body><script>alert(document.domain)</script></body></html>"
# path: (status, content type, body, extra headers)
ANSWERS = {
    "/logo.png": (200, "image/png", PNG, {}),
    "/logo.jpg": (200, "image/jpeg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 32, {}),
    "/logo.gif": (200, "image/gif", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", {}),
    "/logo.webp": (200, "image/webp", b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00/\x00\x00\x00\x10", {}),
    "/png-said-html": (200, "text/html", PNG, {}),
    "/logo.svg": (200, "image/svg+xml", SVG, {}),
    "/svg-said-png": (200, "image/png", SVG, {}),
    "/html-said-png": (200, "image/png", HTML, {}),
    "/huge.png": (200, "image/png", PNG + b"\x00" * logos.MAX_BYTES, {}),
    "/redirect": (302, "text/plain", b"", {"Location": "/logo.png"}),
    "/missing": (404, "text/plain", b"no", {}),
    "/probe.png": (200, "image/png", PNG, {}),
}


class ImageServer:
    """A real HTTP server on loopback, counting the requests it answers; ``during_probe`` is
    called while it answers ``/probe.png`` (the fetch is then in flight)."""

    def __init__(self):
        self.hits: Counter = Counter()
        self.during_probe = None
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.hits[self.path] += 1
                if self.path == "/probe.png" and server.during_probe is not None:
                    server.during_probe()
                status, content_type, body, headers = ANSWERS.get(self.path, (404, "text/plain", b"", {}))
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = LoopbackHTTPServer(Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        serve_in_background(self.httpd)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def images():
    server = ImageServer()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def fresh(images):
    logos.clear_cache()
    images.hits.clear()
    images.during_probe = None
    yield
    logos.clear_cache()


@pytest.fixture
def settings():
    return {"FETCH_ALLOW_HTTP_LOOPBACK": True}


def agent(images, path: str | None = "/logo.png", status: str = "active"):
    metadata = {"logo_uri": images.base + path} if path else {}
    return make_client("none", status, scopes=("read", "write"), grant_types=PERSON_GRANTS,
                       redirect_uris=[REDIRECT], **metadata)


def logo_of(client, made):
    db.session.remove()  # the test's own reads hold no transaction while the request runs
    return client.get(f"/authorize/logo/{made.client_id}")


@pytest.mark.parametrize("path, content_type", [
    ("/logo.png", "image/png"), ("/logo.jpg", "image/jpeg"), ("/logo.gif", "image/gif"),
    ("/logo.webp", "image/webp"),
    ("/png-said-html", "image/png"),  # the bytes decide, not the Content-Type the host declared
])
@pytest.mark.usefixtures("person")
def test_a_raster_logo_is_served_from_this_origin(client, images, path, content_type):
    made = agent(images, path)
    response = logo_of(client, made)
    assert response.status_code == 200
    assert response.data == ANSWERS[path][2]
    assert response.headers["Content-Type"] == content_type
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Security-Policy"] == "default-src 'none'"
    cache = response.headers["Cache-Control"]
    assert cache.startswith("private, max-age=") and 0 < int(cache.split("=")[1]) <= 300
    assert images.hits[path] == 1


@pytest.mark.parametrize("path", ["/logo.svg", "/svg-said-png", "/html-said-png", "/huge.png", "/redirect",
                                  "/missing"])
@pytest.mark.usefixtures("person")
def test_anything_but_a_raster_image_is_a_404_with_no_body(client, images, path):
    made = agent(images, path)
    response = logo_of(client, made)
    assert response.status_code == 404 and response.data == b""
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Security-Policy"] == "default-src 'none'"
    assert images.hits[path] == 1
    assert images.hits["/logo.png"] == 0  # the redirect was not followed


@pytest.mark.parametrize("client_id", ["no-such-client", "x" * 513, "https://agent.example.com/not-registered"])
@pytest.mark.usefixtures("person")
def test_an_unknown_client_has_no_logo(client, client_id):
    response = client.get(f"/authorize/logo/{client_id}")
    assert response.status_code == 404 and response.data == b""


@pytest.mark.usefixtures("person")
def test_a_client_without_a_logo_uri_has_none(client, images):
    response = logo_of(client, agent(images, None))
    assert response.status_code == 404 and response.data == b""


@pytest.mark.usefixtures("person")
def test_a_pending_agents_logo_is_served_for_its_waiting_page(client, images):
    made = agent(images, status=PENDING)
    assert logo_of(client, made).status_code == 200


@pytest.mark.parametrize("status", [DENIED, SUSPENDED, RETIRED])
@pytest.mark.usefixtures("person")
def test_an_agent_no_page_shows_is_never_fetched(client, images, status):
    made = agent(images, status=status)
    assert logo_of(client, made).status_code == 404
    assert images.hits["/logo.png"] == 0


def test_without_a_signed_in_person_nothing_is_fetched(app, images):
    made = agent(images)
    response = app.test_client().get(f"/authorize/logo/{made.client_id}")
    assert response.status_code == 404 and response.data == b""
    assert images.hits["/logo.png"] == 0


@pytest.mark.usefixtures("person")
def test_a_logo_and_a_failure_are_kept_a_while(client, images):
    good, bad = agent(images, "/logo.png"), agent(images, "/logo.svg")
    for _ in range(3):
        assert logo_of(client, good).status_code == 200
        assert logo_of(client, bad).status_code == 404
    assert images.hits["/logo.png"] == 1 and images.hits["/logo.svg"] == 1


@pytest.mark.usefixtures("person")
def test_the_logo_is_fetched_with_no_transaction_open(app, client, images, backend):
    """On SQLite every transaction holds the write lock (BEGIN IMMEDIATE): a fetch inside one
    would stop every writer for as long as the other host takes. On PostgreSQL the connection
    would sit idle in a transaction."""
    seen = []
    url = app.config["DATABASE_URL"]

    def none_open() -> bool:
        if backend == "sqlite":
            return sqlite_write_lock_is_free(url.removeprefix("sqlite:///"))
        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as other:
            return other.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                 "AND state LIKE 'idle in transaction%'").fetchone()[0] == 0

    def probe():
        # The audit sequencer may write for a moment meanwhile: free at some point is enough,
        # where a transaction held by the request would be held until this answer.
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and not (free := none_open()):
            time.sleep(0.05)
        seen.append(free)

    images.during_probe = probe
    made = agent(images, "/probe.png")
    assert logo_of(client, made).status_code == 200
    assert seen == [True]


@pytest.mark.usefixtures("person")
def test_the_consent_page_shows_the_logo_from_this_origin_only(client, images):
    made = agent(images)
    response = client.get("/authorize", query_string=authorize_params(made, pkce()[1]))
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "act for you" in html
    [src] = re.findall(r'<img src="([^"]+)"', html)
    assert src == f"/authorize/logo/{made.client_id}"
    assert images.base not in html  # the client's logo_uri never reaches the page
    assert 'data-initial="T"' in html  # "test agent": shown if the logo does not load
    policy = response.headers["Content-Security-Policy"]
    assert "img-src 'self';" in policy and policy.count("img-src") == 1
    assert client.get(src).status_code == 200


@pytest.mark.usefixtures("person")
def test_the_waiting_page_shows_a_pending_agents_logo(client, images):
    made = agent(images, status=PENDING)
    html = client.get("/authorize", query_string=authorize_params(made, pkce()[1])).get_data(as_text=True)
    assert "waiting for your administrators" in html
    assert re.findall(r'<img src="([^"]+)"', html) == [f"/authorize/logo/{made.client_id}"]


@pytest.mark.usefixtures("person")
def test_an_agent_without_a_logo_shows_its_initial(client, images):
    made = agent(images, None)
    html = client.get("/authorize", query_string=authorize_params(made, pkce()[1])).get_data(as_text=True)
    assert "<img" not in html
    assert '<div class="agent-mark" aria-hidden="true">T</div>' in html


@pytest.mark.parametrize("name, expected", [("test agent", "T"), ("\u202eevil", "E"), ("-- 9 lives", "9"),
                                            ("!!!", "?")])
def test_the_initial_passes_over_what_is_not_a_letter(name, expected):
    from app.models import Client
    assert logos.initial(Client(client_id="c1", client_name=name)) == expected


@pytest.mark.parametrize("body, expected", [
    (PNG, "image/png"), (b"\xff\xd8\xff\xdb", "image/jpeg"), (b"GIF87a....", "image/gif"),
    (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"), (b"RIFF\x00\x00\x00\x00WAVEfmt ", None),
    (SVG, None), (HTML, None), (b"\xef\xbb\xbf<svg/>", None), (b"", None), (PNG[:7], None),
])
def test_sniff_knows_the_raster_signatures_only(body, expected):
    assert logos.sniff(body) == expected
