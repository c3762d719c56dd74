"""The guides run as written: every shell and Python block of the README's tour, docs/agents.md
and docs/relying-services.md, in order, against a real server (gunicorn, SQLite).

A page's ```sh / ```bash blocks run in one bash session (variables carry from block to block),
its ```python blocks in one Python namespace, in the page's own order, in an empty folder, with
the variables the page states up front (ISSUER, API, TOKEN). Blocks tagged otherwise (```json,
```text, ```toml, ```nginx) are illustrations and are not run. Administrator steps (`ostiary
registration approve …`) run as written, with the server's settings in the environment, as an
administrator on the server host would run them. In the shell, `set -euo pipefail` is on and
`curl` fails on an HTTP error (`--fail-with-body`), so a step that no longer works fails here.

Of the README only the section "A five-minute tour" runs (`make run` would not return). The
files a guide says someone else hands over (a publisher's keys and software statement, a
workload platform's keys and JWT-SVID) are made here.
"""
from __future__ import annotations

import json
import queue
import re
import shutil
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import jwt as pyjwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from ..servers import BIN, ROOT, start_server

pytestmark = pytest.mark.e2e

API = "https://api.example.com"
SHELL, PYTHON = {"sh", "bash"}, {"python"}
OPENING = re.compile(r"^(`{3,})([\w+-]*)\s*$")
PRELUDE = """set -euo pipefail
curl() { command curl --silent --show-error --fail-with-body "$@"; }
"""
BLOCK_TIMEOUT = 60


@dataclass
class Block:
    page: str
    line: int  # of the block's first line of code
    lang: str
    code: str

    def __str__(self):
        return f"{self.page}:{self.line} ({self.lang})"


def fenced_blocks(path: Path, section: str | None = None) -> list[Block]:
    """The fenced blocks of a Markdown page, in order; with ``section``, only those under the
    ``## section`` heading."""
    blocks, heading, fence = [], None, None
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if fence is None:
            if line.startswith("## "):
                heading = line[3:].strip()
            if match := OPENING.match(line):
                fence, lang, start, body = match[1], match[2], number + 1, []
        elif line.strip() == fence:
            if section is None or heading == section:
                blocks.append(Block(str(path.relative_to(ROOT)), start, lang, "\n".join(body)))
            fence = None
        else:
            body.append(line)
    assert fence is None, f"{path}: the block opened at line {start - 1} is never closed"
    return blocks


class Shell:
    """One bash session: what a block sets is there for the next one."""

    def __init__(self, cwd: Path, env: dict):
        self.cwd, self.count = cwd, 0
        self.proc = subprocess.Popen(["bash", "--noprofile", "--norc"], cwd=cwd, env=env, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.lines: queue.Queue = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self._send(PRELUDE)

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _send(self, text: str):
        try:
            self.proc.stdin.write(text)
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass  # the shell has exited: run() reports it

    def run(self, block: Block) -> str:
        """Run the block; its output, or a test failure naming the block."""
        self.count += 1
        script = self.cwd / f".block-{self.count}.sh"
        script.write_text(block.code + "\n")
        marker = f"__block_{uuid.uuid4().hex}_done__"
        # stdin from /dev/null: a command that reads standard input must not eat the session's.
        self._send(f"source {script} </dev/null\nprintf '\\n%s\\n' {marker}\n")
        out, deadline = [], time.monotonic() + BLOCK_TIMEOUT
        while True:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"{block} did not finish within {BLOCK_TIMEOUT} s:\n{''.join(out)}")
            if line is None:
                code = self.proc.wait(10)
                pytest.fail(f"{block} failed (exit {code}):\n{block.code}\n--- output ---\n{''.join(out)}")
            if line.rstrip("\n") == marker:
                return "".join(out)
            out.append(line)

    def close(self):
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(10)
        self.proc.stdout.close()


def run_page(blocks: list[Block], shell: Shell, namespace: dict) -> list[tuple[Block, str]]:
    """Run a page's shell and Python blocks in order; returns each shell block's output."""
    outputs = []
    ran = [b for b in blocks if b.lang in SHELL | PYTHON]
    assert ran, "no runnable block found"
    for block in ran:
        started = time.monotonic()
        if block.lang in SHELL:
            outputs.append((block, shell.run(block)))
        else:
            # Padded so that a traceback names the page's own line numbers.
            code = compile("\n" * (block.line - 1) + block.code, block.page, "exec")
            try:
                exec(code, namespace)  # the guide's own code, as a reader runs it
            except Exception as exc:
                pytest.fail(f"{block} raised {type(exc).__name__}: {exc}\n{block.code}")
        print(f"{block}: {time.monotonic() - started:.1f} s")
    return outputs


# ---- the server, and what others hand over -------------------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory):
    instance = tmp_path_factory.mktemp("docs-server")
    policy = instance / "policy.toml"
    shutil.copy(ROOT / "config" / "policy.toml", policy)  # the guide's administrator edits it
    # One worker, so per-process rate limits are accepted: no Redis, only SQLite.
    with start_server(instance, WORKERS="1", RATELIMIT_STORAGE_URI="memory://",
                      POLICY_FILE=str(policy)) as server:
        yield server


def environment(server, **variables) -> dict:
    env = dict(server.env, PATH=f"{BIN}:{server.env.get('PATH', '/usr/bin:/bin')}")
    env.update(variables)
    return env


def signing_key(kid: str):
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True) | {"kid": kid, "use": "sig", "alg": "ES256"}
    return key, {"keys": [jwk]}


def hand_over_files(folder: Path, issuer: str) -> None:
    """What agents.md says others give you: the publisher's keys (to the administrator) and its
    software statement (shipped with the software); the workload platform's keys and a JWT-SVID."""
    now = int(time.time())
    vendor, vendor_jwks = signing_key("vendor-1")
    (folder / "vendor-jwks.json").write_text(json.dumps(vendor_jwks))
    (folder / "statement.jwt").write_text(pyjwt.encode({
        "iss": "https://vendor.example", "iat": now, "software_id": "nightly-report-agent",
        "software_version": "1.4.0", "client_name": "Vendor report agent", "scope": "read",
        "grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt"},
        vendor, algorithm="ES256", headers={"kid": "vendor-1"}) + "\n")
    spire, spire_jwks = signing_key("spire-1")
    (folder / "spire-jwks.json").write_text(json.dumps(spire_jwks))
    (folder / "svid.jwt").write_text(pyjwt.encode({
        "iss": "https://spire.example.org", "sub": "spiffe://example.org/ns/agents/sa/reporter",
        "aud": [issuer], "iat": now, "exp": now + 300}, spire, algorithm="ES256",
        headers={"kid": "spire-1"}) + "\n")


# ---- the tests -----------------------------------------------------------------------------

def test_readme_tour(server, tmp_path):
    shell = Shell(tmp_path, environment(server, ISSUER=server.url))
    try:
        outputs = run_page(fenced_blocks(ROOT / "README.md", section="A five-minute tour"), shell, {})
    finally:
        shell.close()
    text = "".join(out for _, out in outputs)
    assert '"status": "pending"' in text
    assert "at+jwt" in text and "valid for" in text
    assert "client.approved" in text and "token.issued" in text


def test_agent_and_relying_service_guides(server, tmp_path, monkeypatch):
    agent_dir, service_dir = tmp_path / "agent", tmp_path / "service"
    agent_dir.mkdir()
    service_dir.mkdir()
    hand_over_files(agent_dir, server.url)

    # The agent's page, in the agent's folder.
    monkeypatch.setenv("ISSUER", server.url)
    monkeypatch.setenv("API", API)
    monkeypatch.chdir(agent_dir)
    agent: dict = {}
    shell = Shell(agent_dir, environment(server, ISSUER=server.url, API=API))
    try:
        outputs = run_page(fenced_blocks(ROOT / "docs" / "agents.md"), shell, agent)
    finally:
        shell.close()
    text = "".join(out for _, out in outputs)
    assert text.count('"pending"') >= 2 and "active" in text  # pending, then approved
    assert agent["held"]["scope"] == "read"
    assert agent["task"]["authorization_details"][0]["intent"] == "summarize-reports"
    workload = pyjwt.decode(agent["as_workload"]["access_token"], options={"verify_signature": False})
    assert workload["sub"] == "spiffe://example.org/ns/agents/sa/reporter"

    # The relying service's page, in its own folder, with a token the agent sent it.
    token = agent["post"]("/token", grant_type="client_credentials", resource=API)["access_token"]
    monkeypatch.setenv("TOKEN", token)
    monkeypatch.chdir(service_dir)
    service: dict = {}
    shell = Shell(service_dir, environment(server, ISSUER=server.url, API=API, TOKEN=token))
    try:
        outputs = run_page(fenced_blocks(ROOT / "docs" / "relying-services.md"), shell, service)
    finally:
        shell.close()
    assert service["claims"]["client_id"] == agent["CLIENT_ID"]
    assert '"active": true' in outputs[-1][1]

    # What the page says of `active: false`: a revoked token, for one.
    agent["post"]("/revoke", token=token)
    credentials = json.loads((service_dir / "service.json").read_text())
    answer = requests.post(server.url + "/introspect", data={"token": token}, timeout=10,
                           auth=(credentials["client_id"], credentials["client_secret"])).json()
    assert answer == {"active": False}
