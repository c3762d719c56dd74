"""One host classification (``app.support.fetch.classify_host``) for registration and for the fetcher:
a numeric host is read as the C resolver reads it, an IPv6 address that carries an IPv4 one
is judged by the IPv4 address, and every other spelling of loopback, private, link-local or
metadata addresses is refused at registration (RFC 7591 §3.2.2) and when fetched."""
import ipaddress
import re

import pytest
import responses

from app.support import fetch

# (host as written in a URL, what it is, the address it reaches)
DISGUISED = [
    ("2130706433", fetch.LOOPBACK, "127.0.0.1"),  # decimal
    ("0x7f000001", fetch.LOOPBACK, "127.0.0.1"),  # hexadecimal
    ("0x7f.1", fetch.LOOPBACK, "127.0.0.1"),
    ("127.1", fetch.LOOPBACK, "127.0.0.1"),  # short dotted form
    ("0177.0.0.1", fetch.LOOPBACK, "127.0.0.1"),  # octal
    ("0", fetch.UNSPECIFIED, "0.0.0.0"),
    ("0.0.0.0", fetch.UNSPECIFIED, "0.0.0.0"),
    ("[::127.0.0.1]", fetch.LOOPBACK, "127.0.0.1"),  # IPv4-compatible
    ("[::ffff:127.0.0.1]", fetch.LOOPBACK, "127.0.0.1"),  # IPv4-mapped
    ("[::ffff:7f00:1]", fetch.LOOPBACK, "127.0.0.1"),
    ("[2002:7f00:1::]", fetch.LOOPBACK, "127.0.0.1"),  # 6to4
    ("[64:ff9b::7f00:1]", fetch.LOOPBACK, "127.0.0.1"),  # NAT64 well-known prefix
    ("2852039166", fetch.METADATA, "169.254.169.254"),
    ("[::ffff:169.254.169.254]", fetch.METADATA, "169.254.169.254"),
    ("10.1", fetch.PRIVATE, "10.0.0.1"),
    ("0x0a000001", fetch.PRIVATE, "10.0.0.1"),
    ("[64:ff9b::a00:1]", fetch.PRIVATE, "10.0.0.1"),
    ("[2002:c0a8:101::]", fetch.PRIVATE, "192.168.1.1"),
    ("\uff11\uff12\uff17.\uff10.\uff10.\uff11", fetch.LOOPBACK, "127.0.0.1"),  # full-width, read through IDNA
]
PLAIN = [
    ("127.0.0.1", fetch.LOOPBACK, "127.0.0.1"),
    ("[::1]", fetch.LOOPBACK, "::1"),
    ("[::]", fetch.UNSPECIFIED, "::"),
    ("169.254.169.254", fetch.METADATA, "169.254.169.254"),
    ("[fe80::1]", fetch.LINK_LOCAL, "fe80::1"),
    ("[fe80::1%25no-such-interface]", fetch.LINK_LOCAL, None),
    ("[fd00:ec2::254]", fetch.METADATA, "fd00:ec2::254"),
    ("100.100.100.200", fetch.METADATA, "100.100.100.200"),
    ("192.168.1.1", fetch.PRIVATE, "192.168.1.1"),
    ("100.64.0.1", fetch.PRIVATE, "100.64.0.1"),
    ("224.0.0.1", fetch.PRIVATE, "224.0.0.1"),
    ("[64:ff9b:1::a00:1]", fetch.PRIVATE, "64:ff9b:1::a00:1"),  # RFC 8215 local-use NAT64
    ("93.184.216.34", fetch.PUBLIC, "93.184.216.34"),
    ("[2606:2800:220:1:248:1893:25c8:1946]", fetch.PUBLIC, "2606:2800:220:1:248:1893:25c8:1946"),
    ("[::ffff:93.184.216.34]", fetch.PUBLIC, "93.184.216.34"),
    ("[64:ff9b::5db8:d822]", fetch.PUBLIC, "93.184.216.34"),  # what DNS64 answers for a public host
]
NAMES = [
    ("keys.example.com", fetch.NAME),
    ("0x7f000001.example.com", fetch.NAME),
    ("localhost", fetch.LOOPBACK),
    ("LocalHost.", fetch.LOOPBACK),
    ("agent.localhost", fetch.LOOPBACK),
    ("metadata.google.internal", fetch.METADATA),
    ("anything.internal", fetch.METADATA),
]
REFUSED = [(host, kind) for host, kind, _ in DISGUISED]


@pytest.mark.parametrize("host, kind, effective", DISGUISED + PLAIN)
def test_classify_addresses(host, kind, effective):
    found = fetch.classify_host(host)
    assert found.kind == kind
    assert found.address is not None
    if effective is not None:
        assert found.effective == ipaddress.ip_address(effective)


@pytest.mark.parametrize("host, kind", NAMES)
def test_classify_names(host, kind):
    found = fetch.classify_host(host)
    assert (found.kind, found.address, found.effective) == (kind, None, None)


@pytest.mark.parametrize("address, kind", [
    ("127.0.0.1", fetch.LOOPBACK), ("::ffff:10.0.0.1", fetch.PRIVATE), ("64:ff9b::a9fe:a9fe", fetch.METADATA),
    ("93.184.216.34", fetch.PUBLIC)])
def test_classify_a_resolved_address(address, kind):
    """The fetcher hands over what the resolver answered: the same function classifies it."""
    assert fetch.classify_host(ipaddress.ip_address(address)).kind == kind


def test_no_dns_query_is_made(monkeypatch):
    """Registration classifies without resolving: only numeric parsing (AI_NUMERICHOST)."""
    real = fetch.socket.getaddrinfo
    flags = []

    def spy(host, port, *args, **kwargs):
        flags.append(kwargs.get("flags", 0))
        return real(host, port, *args, **kwargs)
    monkeypatch.setattr(fetch.socket, "getaddrinfo", spy)
    assert fetch.classify_host("keys.example.com").kind == fetch.NAME
    assert fetch.classify_host("2130706433").kind == fetch.LOOPBACK
    assert flags and all(f & fetch.socket.AI_NUMERICHOST for f in flags)


@pytest.mark.parametrize("host, kind", REFUSED)
def test_check_url_refuses_every_spelling(app, host, kind):
    with pytest.raises(fetch.FetchError, match=re.escape(fetch.REFUSALS[kind])):
        fetch.check_url(f"https://{host}/jwks.json", allow_loopback=False)


@pytest.mark.parametrize("host", ["2130706433", "[::ffff:7f00:1]", "127.1"])
def test_the_refusal_says_what_the_spelling_is(app, host):
    with pytest.raises(fetch.FetchError, match="is 127.0.0.1"):
        fetch.check_url(f"https://{host}/jwks.json", allow_loopback=False)


@pytest.mark.parametrize("url", ["https://keys.example.com/jwks.json", "https://93.184.216.34/jwks.json",
                                 "https://[2606:2800:220:1:248:1893:25c8:1946]/jwks.json"])
def test_check_url_passes_public_hosts(app, url):
    assert fetch.check_url(url, allow_loopback=False) == url


@pytest.mark.parametrize("host", ["0", "10.1", "2852039166"])  # unspecified, private, cloud metadata
def test_development_loopback_admits_only_loopback(app, host):
    """FETCH_ALLOW_HTTP_LOOPBACK admits what the function calls loopback, nothing more."""
    assert fetch.check_url("http://2130706433:8000/jwks.json", allow_loopback=True)
    with pytest.raises(fetch.FetchError):
        fetch.check_url(f"https://{host}/jwks.json", allow_loopback=True)


@pytest.mark.parametrize("host, kind", REFUSED)
def test_registration_refuses_every_spelling(client, host, kind):
    resp = client.post("/register", json={
        "client_name": "report agent", "token_endpoint_auth_method": "private_key_jwt",
        "grant_types": ["client_credentials"], "jwks_uri": f"https://{host}/jwks.json"})
    assert resp.status_code == 400, resp.json
    assert resp.json["error"] == "invalid_client_metadata"
    assert resp.json["error_description"].startswith(f"jwks_uri: {fetch.REFUSALS[kind]}")


def test_every_url_field_uses_the_same_check(client):
    resp = client.post("/register", json={"client_name": "report agent", "jwks_uri": "https://keys.example.com/j",
                                          "logo_uri": "https://2130706433/logo.png"})
    assert resp.status_code == 400 and resp.json["error"] == "invalid_client_metadata"
    assert "logo_uri" in resp.json["error_description"] and "loopback" in resp.json["error_description"]


@responses.activate
@pytest.mark.parametrize("host, kind", REFUSED)
def test_the_fetcher_refuses_every_spelling(app, host, kind):
    fetch.clear_cache()
    with pytest.raises(fetch.FetchError, match="address|metadata"):
        fetch.fetch_json(f"https://{host}/jwks.json")
    assert len(responses.calls) == 0


@responses.activate
@pytest.mark.parametrize("host, kind", REFUSED)
def test_the_fetcher_refuses_a_name_that_resolves_to_any_spelling(app, monkeypatch, host, kind):
    """After resolution (a hosts file or DNS answer may hold any of these spellings): the
    system resolver reads the spelling, and the address it gives is classified alike."""
    fetch.clear_cache()
    resolve = fetch._resolve
    monkeypatch.setattr(fetch, "_resolve", lambda name, port: resolve(host.strip("[]"), port))
    with pytest.raises(fetch.FetchError, match=re.escape(fetch.REFUSALS[kind])):
        fetch.fetch_json("https://rebind.example.com/jwks.json")
    assert len(responses.calls) == 0
    fetch.clear_cache()


@pytest.mark.parametrize("uri", ["http://127.0.0.1:8080/cb", "http://[::1]/cb", "http://localhost:3000/cb",
                                 "https://app.example.com/cb"])
def test_redirect_uris_on_plain_loopback_are_accepted(client, uri):
    resp = client.post("/register", json={"client_name": "report agent", "token_endpoint_auth_method":
                                          "client_secret_basic", "redirect_uris": [uri]})
    assert resp.status_code == 201, resp.json


@pytest.mark.parametrize("uri, words", [
    ("http://2130706433/cb", "127.0.0.1"), ("http://0x7f000001/cb", "127.0.0.1"), ("http://127.1/cb", "127.0.0.1"),
    ("http://0177.0.0.1/cb", "127.0.0.1"), ("http://[::ffff:127.0.0.1]/cb", "127.0.0.1"),
    ("http://[::127.0.0.1]/cb", "127.0.0.1"), ("http://0/cb", "0.0.0.0"), ("http://0.0.0.0/cb", "RFC 8252"),
    ("http://127.0.0.2/cb", "RFC 8252"), ("http://agent.localhost/cb", "RFC 8252"),
    ("https://2130706433/cb", "non-standard form"), ("https://[::ffff:7f00:1]/cb", "non-standard form"),
])
def test_redirect_uris_in_other_spellings_are_refused(client, uri, words):
    """Only 127.0.0.1, [::1] and localhost, as RFC 8252 §7.3 and §8.3 write them, admit http."""
    resp = client.post("/register", json={"client_name": "report agent", "token_endpoint_auth_method":
                                          "client_secret_basic", "redirect_uris": [uri]})
    assert resp.status_code == 400 and resp.json["error"] == "invalid_redirect_uri", resp.json
    assert words in resp.json["error_description"]


@pytest.mark.parametrize("url", ["https://a..b/x", "https://.example/x", f"https://{'a' * 64}.example/x",
                                 "https://\xad/x"])
def test_a_host_no_resolver_could_be_asked_for_is_refused_not_a_500(app, url):
    """An empty or over-long label (IDNA cannot encode it) is a refusal, at the check and at the
    resolver, not an exception nobody catches."""
    with pytest.raises(fetch.FetchError):
        fetch.check_url(url)
    with pytest.raises(fetch.FetchError):
        fetch._resolve(url.split("/")[2], 443)


@pytest.mark.parametrize("url", ["https://api.exa\tmple.com/jwks", " https://api.example.com/jwks",
                                 "https://api.example.com/jwks\n", "https://api.example.com/a b",
                                 "https://api.example.com/\x00", "https://api.example.com/\x7f"])
def test_a_url_the_parser_would_rewrite_is_refused(app, url):
    """urlsplit drops tabs and newlines and strips spaces: the URL it reads is not the one given."""
    with pytest.raises(fetch.FetchError, match="spaces or control characters"):
        fetch.check_url(url)


def test_a_trickling_answer_is_given_up_after_the_timeout_in_all(app):
    """FETCH_TIMEOUT bounds the whole read, not each wait: a server that sends a byte now and then,
    each within the socket's timeout, is cut off (the last wait may end one timeout after)."""
    import http.server
    import time

    from .servers import serve_in_background

    class Trickle(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "40")
            self.end_headers()
            for _ in range(40):
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(0.25)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    serve_in_background(server)
    app.config.update(FETCH_ALLOW_HTTP_LOOPBACK=True, FETCH_TIMEOUT=1)
    fetch.clear_cache()
    started = time.monotonic()
    try:
        with pytest.raises(fetch.FetchError, match="took longer than 1 seconds"):
            fetch.fetch_json(f"http://127.0.0.1:{server.server_port}/slow.json")
        assert time.monotonic() - started < 2.5  # the trickle alone would take 10 s
    finally:
        server.shutdown()
        server.server_close()


def test_a_failed_fetch_is_remembered_for_a_while_then_tried_again(app):
    """A key set fetched on a stranger's request: while its host fails, each request does not
    make this server ask again; after FETCH_FAILURE_CACHE_SECONDS it does, and a success is kept."""
    import http.server

    from app.support import clock

    from .servers import serve_in_background

    answers, asked = [(503, b"down"), (200, b'{"keys": []}')], []

    class Flaky(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            status, body = answers[min(len(asked), 1)]
            asked.append(self.path)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    serve_in_background(server)
    app.config.update(FETCH_ALLOW_HTTP_LOOPBACK=True)
    fetch.clear_cache()
    url = f"http://127.0.0.1:{server.server_port}/jwks.json"
    try:
        for _ in range(3):
            with pytest.raises(fetch.FetchError, match="503"):
                fetch.fetch_json(url)
        assert len(asked) == 1
        clock.advance(app.config["FETCH_FAILURE_CACHE_SECONDS"] + 1)
        assert fetch.fetch_json(url) == {"keys": []} == fetch.fetch_json(url)
        assert len(asked) == 2
    finally:
        server.shutdown()
        server.server_close()
        fetch.clear_cache()
