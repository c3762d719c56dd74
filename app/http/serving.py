"""The ASGI application that gunicorn serves (``asgi:app``, gunicorn's ``asgi`` worker on uvloop).

The machine requests that only read, or whose one write is an issuance's group commit, run
inline on the event loop: token requests, introspection, the JWKS and discovery. The WSGI
app is called in a greenlet (``app.support.inline``), and while an issuance waits for its group
commit the loop serves other requests, which join the next group. No thread is handed these
requests, so none contends for the GIL with another, which under gunicorn's threaded worker
cost more than the protocol work itself
(docs/decisions/0002-the-token-endpoint-keeps-its-event-loop-front.md). Every other request
goes to the same WSGI app through a2wsgi's thread pool: the console, registration,
revocation and task end write through the ORM and may wait for locks or remote fetches,
which must not stop the loop.
"""
from __future__ import annotations

import io

from a2wsgi import WSGIMiddleware
from a2wsgi.wsgi import build_environ
from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from app.support import inline

INLINE = {("POST", "/token"), ("POST", "/introspect"), ("GET", "/jwks.json"),
          ("GET", "/.well-known/oauth-authorization-server"), ("GET", "/.well-known/openid-configuration")}


class Server:
    """An ASGI callable in front of ``flask_app`` (a WSGI app, with the machine front mounted)."""

    def __init__(self, flask_app: Flask, *, threads: int, proxy_hops: int = 0):
        if proxy_hops:
            # Behind N reverse proxies (TLS termination), the client's address and scheme are
            # the last N X-Forwarded-For/-Proto entries: rate limits, pending caps and the
            # audit trail see the client, not the proxy. 0 when clients can reach gunicorn
            # directly: the headers would then be the client's to forge.
            flask_app.wsgi_app = ProxyFix(flask_app.wsgi_app, x_for=proxy_hops, x_proto=proxy_hops)
        self.app = flask_app
        self.max_body = int(flask_app.config["MAX_BODY_BYTES"])
        self.threaded = WSGIMiddleware(flask_app, workers=threads)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and (scope["method"], scope["path"]) in INLINE:
            await self._inline(scope, receive, send)
        else:
            await self.threaded(scope, receive, send)

    async def _inline(self, scope, receive, send):
        body = await self._body(receive)
        if body is None:
            return  # the client went away
        environ = build_environ(scope, io.BytesIO(body))
        environ["wsgi.input_terminated"] = True  # all of the body is there, or more than allowed
        status, headers, content = await inline.run(self._call, environ)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    async def _body(self, receive) -> bytes | None:
        """The request body, read no further than one byte past the limit (that is a 413)."""
        body, more = bytearray(), True
        while more and len(body) <= self.max_body:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            more = message.get("more_body", False)
        return bytes(body)

    def _call(self, environ):
        started = []
        chunks = self.app(environ, lambda status, headers, exc_info=None: started.append((status, headers)))
        try:
            content = b"".join(chunks)
        finally:
            if hasattr(chunks, "close"):
                chunks.close()
        status, headers = started[-1]
        return int(status[:3]), [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers], content
