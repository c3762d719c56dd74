"""Requests to the ASGI front (app.http.serving) in-process, as gunicorn's asgi worker makes them."""
import asyncio
import json
from dataclasses import dataclass
from urllib.parse import urlencode

from app.extensions import db

FORM = "application/x-www-form-urlencoded"


@dataclass
class Answer:
    status_code: int
    headers: dict
    body: bytes

    def get_json(self):
        return json.loads(self.body)


def request(method, path, *, body=b"", headers=None, chunks=None, disconnect=False):
    """An ASGI HTTP request: its scope, a receive() that gives the body (in ``chunks``, then
    ``http.disconnect`` in place of the last one if ``disconnect``), and the list of receive()
    calls made."""
    headers = {"host": "127.0.0.1:5000", **(headers or {})}
    if chunks is None:
        chunks = [body]
        headers.setdefault("content-length", str(len(body)))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "server": ("127.0.0.1", 5000), "client": ("192.0.2.7", 40000),
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
                for i, c in enumerate(chunks)]
    if disconnect:
        messages[-1:] = [{"type": "http.disconnect"}]
    received = []

    async def receive():
        received.append(1)
        if messages:
            return messages.pop(0)
        await asyncio.Event().wait()  # nothing more: as a client that stays quiet
    return scope, receive, received


async def call(server, method, path, **options) -> Answer | None:
    scope, receive, _ = request(method, path, **options)
    sent = []

    async def send(message):
        sent.append(message)
    await server(scope, receive, send)
    if not sent:
        return None
    return Answer(sent[0]["status"], {k.decode(): v.decode() for k, v in sent[0]["headers"]},
                  b"".join(m.get("body", b"") for m in sent[1:]))


def form_post(path, data, headers) -> dict:
    """``call()``'s arguments for a form POST (the shape of ``token_actions.Agent``'s post)."""
    return dict(method="POST", path=path, body=urlencode(data).encode(),
                headers={**headers, "content-type": FORM})


def at_once(server, requests) -> list:
    """Send every request (``call()``'s keyword arguments) at once, on one event loop."""
    db.session.remove()  # the test's own transaction (SQLite: its write lock) ends first

    async def main():
        return await asyncio.gather(*(call(server, **r) for r in requests))
    return asyncio.run(main())
