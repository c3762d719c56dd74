"""Real Ostiary server processes for end-to-end tests: `ostiary init`, then gunicorn."""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
REDIS_URL = "redis://127.0.0.1:6379/0"
TEST_SECRETS = {"SECRET_KEY": "test-secret-key-" + "s" * 32,
                "KEY_ENCRYPTION_KEY": "test-key-encryption-key-" + "k" * 32}
# Every server and app of the suite hashes passwords at the least cost the settings accept, a
# fifth of the default's time (the same argon2id code; the default is what deployments get).
LEAST_PASSWORD_COST = {"PASSWORD_TIME_COST": 2, "PASSWORD_MEMORY_KIB": 19456}


class LoopbackHTTPServer(ThreadingHTTPServer):
    """A test's HTTP server on 127.0.0.1. Its ``server_close()`` waits for the answers in flight,
    so none outlives the test that made it; an answer the client hung up on (a fetch that
    refused a body by its Content-Length, then closed) is kept in ``errors``, not printed: printed
    from a late thread, it would land in whatever captures standard error then, a later test's
    CLI output among them."""

    daemon_threads = False

    def __init__(self, handler):
        super().__init__(("127.0.0.1", 0), handler)
        self.errors: list[BaseException] = []

    def handle_error(self, request, client_address):
        self.errors.append(sys.exc_info()[1])


def serve_in_background(server) -> threading.Thread:
    """Start ``server`` (a ``socketserver`` server) answering on a daemon thread. Its
    ``shutdown()`` then returns within 50 ms: at serve_forever's default poll, half a second,
    each test that stops a server waited that long."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return thread


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    url: str
    env: dict
    log: Path
    proc: subprocess.Popen | None = None
    extra_args: list = field(default_factory=list)

    def start(self, timeout: float = 30) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(BIN / "gunicorn"), "-c", "config/gunicorn.conf.py", *self.extra_args, "asgi:app"],
                cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log.read_text()}")
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"server did not become healthy:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def kill(self) -> None:
        """SIGKILL the whole process group: master and workers, no clean shutdown."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def cli(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
        """Run `ostiary …` against this server's database and settings."""
        return subprocess.run([str(BIN / "ostiary"), *args], cwd=ROOT, env=self.env, input=input,
                              capture_output=True, text=True, timeout=60)


def server_env(instance: Path, port: int, database_url: str | None = None, **settings) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSTIARY_")}
    env.update({"OSTIARY_" + k: str(v) for k, v in (TEST_SECRETS | LEAST_PASSWORD_COST).items()})
    env.update({
        "OSTIARY_ISSUER": f"http://127.0.0.1:{port}",
        "OSTIARY_INSTANCE_PATH": str(instance),
        "OSTIARY_BIND": f"127.0.0.1:{port}",
        "OSTIARY_WORKERS": "2",
        # Two workers refuse per-process (memory://) limit storage, as in production; each
        # server's keys have a prefix of their own, so no test spends another's limit.
        "OSTIARY_RATELIMIT_STORAGE_URI": REDIS_URL,
        "OSTIARY_RATELIMIT_KEY_PREFIX": f"ostiary-test-{uuid.uuid4().hex}",
        "OSTIARY_FETCH_ALLOW_HTTP_LOOPBACK": "true",
    })
    if database_url:
        env["OSTIARY_DATABASE_URL"] = database_url
    env.update({"OSTIARY_" + k: str(v) for k, v in settings.items()})
    return env


@contextlib.contextmanager
def start_server(instance: Path, database_url: str | None = None, port: int | None = None,
                 **settings):
    port = port or free_port()
    server = Server(url=f"http://127.0.0.1:{port}",
                    env=server_env(instance, port, database_url, **settings),
                    log=instance / "server.log")
    init = server.cli("init")
    if init.returncode != 0:
        raise RuntimeError(f"ostiary init failed: {init.stderr}")
    server.start()
    try:
        yield server
    finally:
        server.stop()
