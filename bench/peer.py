"""The peer: panva's oidc-provider from npm, installed into bench/peer/ at run time, on loopback."""
from __future__ import annotations

import contextlib
import json
import logging
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import requests
from joserfc.jwk import ECKey

from .servers import free_port
from .workloads import AUDIENCE, BenchClients

OPAQUE_AUDIENCE = "https://opaque.example.com"

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent / "peer"


def ensure_installed() -> None:
    if (HERE / "node_modules" / "oidc-provider").is_dir():
        return
    if not shutil.which("npm"):
        raise RuntimeError("npm (node 20) is needed to install the peer, oidc-provider")
    log.warning("installing oidc-provider into %s with npm", HERE)
    subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=HERE,
                   check=True, timeout=300)


def version() -> str:
    return json.loads((HERE / "node_modules" / "oidc-provider" / "package.json").read_text())["version"]


@contextlib.contextmanager
def start(workdir: Path):
    """Yields (base_url, pid, BenchClients) for a running oidc-provider."""
    ensure_installed()
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    signing = ECKey.generate_key("P-256", private=True)
    client_key = ECKey.generate_key("P-256", private=True)
    client_key.ensure_kid()
    basic_secret = secrets.token_urlsafe(32)
    signing_jwk = {**signing.as_dict(private=True), "alg": "ES256", "use": "sig"}
    signing_jwk["kid"] = signing.thumbprint()
    config = {
        "issuer": issuer, "port": port, "audience": AUDIENCE, "opaque_audience": OPAQUE_AUDIENCE,
        "cookie_key": secrets.token_urlsafe(32),
        "signing_jwk": signing_jwk,
        "clients": [
            {"client_id": "bench-basic", "client_secret": basic_secret,
             "token_endpoint_auth_method": "client_secret_basic", "grant_types": ["client_credentials"],
             "response_types": [], "redirect_uris": [], "scope": "read"},
            {"client_id": "bench-jwt", "token_endpoint_auth_method": "private_key_jwt",
             "token_endpoint_auth_signing_alg": "ES256",
             "jwks": {"keys": [client_key.as_dict(private=False)]},
             "grant_types": ["client_credentials"], "response_types": [], "redirect_uris": [],
             "scope": "read"},
        ],
    }
    config_path = workdir / "peer-config.json"
    config_path.write_text(json.dumps(config))
    log_path = workdir / "peer.log"
    with log_path.open("ab") as out:
        proc = subprocess.Popen(["node", "server.mjs", str(config_path)], cwd=HERE, stdout=out,
                                stderr=subprocess.STDOUT, env={"PATH": "/usr/bin:/bin", "NODE_ENV": "production"})
    try:
        _wait(issuer + "/.well-known/openid-configuration", proc, log_path)
        yield issuer, proc.pid, BenchClients("bench-basic", basic_secret, "bench-jwt", client_key, issuer)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait(url: str, proc: subprocess.Popen, log_path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the peer exited with {proc.returncode}:\n{log_path.read_text()}")
        with contextlib.suppress(requests.ConnectionError):
            if requests.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"the peer did not start:\n{log_path.read_text()}")
