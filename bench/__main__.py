"""``python -m bench`` (``make bench``): Ostiary against oidc-provider, side by side, with wrk.

For each backend (SQLite, then PostgreSQL in a fresh database) it starts Ostiary
under gunicorn, and for each workload it measures Ostiary and then the peer,
one right after the other, so that the ratio compares runs taken under the
same machine load. Every run is bounded by time; every request goes to loopback.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import requests

from . import load, ostiary, peer, report
from .workloads import NAMES, SCOPE, build

log = logging.getLogger("bench")

RESULTS = Path(__file__).resolve().parent / "results"
REGISTRATION = {"client_name": "bench agent", "grant_types": ["client_credentials"], "response_types": [],
                "redirect_uris": [], "token_endpoint_auth_method": "client_secret_basic", "scope": SCOPE}
# An upper bound on private_key_jwt requests per second on these machines: the
# pool of unique assertions must outlast the run (a replayed jti is refused).
MAX_RATE = 6000


def parse(argv):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5, help="measured seconds per run (default 5)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="runs of each side per workload, alternating which goes first (default 3)")
    parser.add_argument("--warmup", type=float, default=2, help="unmeasured seconds before a workload's first run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--workloads", default=",".join(NAMES))
    parser.add_argument("--no-peer", action="store_true", help="measure Ostiary only")
    parser.add_argument("--smoke", action="store_true", help="a few requests per workload, for tests")
    parser.add_argument("--pg", default=os.environ.get("OSTIARY_BENCH_PG",
                                                       "postgresql://postgres@127.0.0.1:5432/test"),
                        help="PostgreSQL admin URL; the bench creates and drops its own database")
    parser.add_argument("--redis", default=os.environ.get("OSTIARY_BENCH_REDIS", "redis://127.0.0.1:6379/0"),
                        help="Redis URL for the rate limits (the bench's keys have a prefix of their own)")
    parser.add_argument("--server-command", type=shlex.split,
                        help="serve Ostiary with this command instead of the shipped gunicorn "
                             "configuration ($OSTIARY_BIND and $OSTIARY_PORT are replaced by the address and port to bind)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--workdir", type=Path, help="keep instance folders and server logs here")
    args = parser.parse_args(argv)
    if args.smoke:
        args.seconds, args.rounds, args.warmup, args.connections = 1, 2, 0, 2
    return args


def token_for(base: str, metadata: dict, workload) -> str:
    answer = requests.post(base + workload.path, headers=workload.headers, data=workload.bodies[0], timeout=10)
    answer.raise_for_status()
    return answer.json()["access_token"]


def probe(base: str, workload) -> None:
    """One request before the run: a workload that fails is a bug in the bench, not a figure."""
    body = workload.bodies[0] if workload.bodies else None
    answer = requests.request(workload.method, base + workload.path, headers=workload.headers, data=body,
                              timeout=10)
    if answer.status_code != workload.expect:
        raise RuntimeError(f"{workload.method} {workload.path} answered {answer.status_code}, "
                           f"expected {workload.expect}: {answer.text[:300]}")
    if workload.bodies and len(workload.bodies) > 1:
        workload.bodies = workload.bodies[1:]  # that assertion's jti is spent


class Side:
    """One server under test, able to build each workload afresh (fresh assertions every run)."""

    def __init__(self, name, base, pid, clients, introspect_extra=None, exchange_extra=None):
        self.name, self.base, self.pid, self.clients = name, base, pid, clients
        discovery = "/.well-known/openid-configuration" if name == "peer" else \
            "/.well-known/oauth-authorization-server"
        self.metadata = requests.get(base + discovery, timeout=10).json()
        self.exchange_extra = exchange_extra
        cc = build("cc_basic", self.metadata, clients, pool=1, access_token="", registration=REGISTRATION)
        self.access_token = token_for(base, self.metadata, cc)
        self.introspected = self.access_token
        if introspect_extra:
            cc.bodies = [cc.bodies[0] + "&" + introspect_extra]
            self.introspected = token_for(base, self.metadata, cc)

    def workload(self, name: str, pool: int):
        return build(name, self.metadata, self.clients, pool=pool, access_token=self.access_token,
                     registration=REGISTRATION, exchange_extra=self.exchange_extra,
                     introspected=self.introspected)

    def measure(self, name: str, args, *, first: bool) -> dict | None:
        """One run of workload ``name``; the first of a workload is preceded by its warm-up."""
        if self.workload(name, 1) is None:
            return None
        if first and args.warmup:
            warm = self.workload(name, int(args.warmup * MAX_RATE) + 2)
            probe(self.base, warm)
            load.run(self.base, warm, pid=self.pid, seconds=args.warmup, connections=args.connections)
        work = self.workload(name, int(args.seconds * MAX_RATE) + 2)
        probe(self.base, work)
        result = load.run(self.base, work, pid=self.pid, seconds=args.seconds, connections=args.connections)
        log.info("%-8s %-10s %8.0f/s p50 %.1f ms p99 %.1f ms errors %d", self.name, name, result["rps"],
                 result["p50_ms"], result["p99_ms"], result["errors"])
        return result


def compare(name: str, ours: Side, other: Side | None, args) -> list[dict]:
    """``args.rounds`` runs of each side, one straight after the other, the first of each pair
    alternating: a burst of load from the machine's other tenants, or a drift, then falls
    on both sides in turn rather than on one run of one side."""
    rounds = []
    for n in range(args.rounds):
        sides = [side for side in ([ours, other] if n % 2 == 0 else [other, ours]) if side is not None]
        runs = {side.name: side.measure(name, args, first=n == 0) for side in sides}
        rounds.append({"ostiary": runs["ostiary"], "peer": runs.get("peer")})
    return rounds


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    # A terminated bench still stops its servers and drops its database (the with-blocks unwind).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args = parse(argv)
    load.ensure_wrk()
    names = [n for n in args.workloads.split(",") if n]
    results = {"started": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
               "command": "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:]),
               "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                           "node": _version(["node", "--version"]), "wrk": _version(["wrk", "-v"])},
               "settings": {"seconds": args.seconds, "rounds": args.rounds, "warmup": args.warmup,
                            "connections": args.connections,
                            "server": (" ".join(args.server_command) if args.server_command
                                       else "config/gunicorn.conf.py defaults"),
                            "GUNICORN_CMD_ARGS": os.environ.get("GUNICORN_CMD_ARGS")},
               "rows": [], "audit": {}}
    with contextlib.ExitStack() as stack:
        workdir = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ostiary-bench-")))
        workdir.mkdir(parents=True, exist_ok=True)
        other = None
        if not args.no_peer:
            base, pid, clients = stack.enter_context(peer.start(workdir))
            other = Side("peer", base, pid, clients, introspect_extra=f"resource={peer.OPAQUE_AUDIENCE}")
            results["peer"] = {"package": "oidc-provider", "version": peer.version(),
                               "notes": "single node process, in-memory storage, audits nothing; "
                                        "introspects an opaque token (it refuses to introspect its JWTs); "
                                        "no RFC 8693 token exchange"}
        for backend in [b for b in args.backends.split(",") if b]:
            started = time.monotonic()
            with ostiary.start(backend, workdir, args.pg, args.redis,
                               command=args.server_command) as (base, pid, clients, env):
                ours = Side("ostiary", base, pid, clients, exchange_extra=ostiary.EXCHANGE_EXTRA)
                for name in names:
                    results["rows"].append({"backend": backend, "workload": name,
                                            **report.summarise(compare(name, ours, other, args))})
                results["audit"][backend] = ostiary.audit_summary(env)
            log.info("%s done in %.0f s; audit trail: %s", backend, time.monotonic() - started,
                     results["audit"][backend])
    results["headline"] = report.headline(results["rows"])
    print(report.table(results["rows"]))
    print("headline (Ostiary/peer):", results["headline"])
    print("written to", report.write(results, args.out))
    return 0


def _version(command) -> str | None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except OSError:
        return None
    return (done.stdout or done.stderr).splitlines()[0].strip() if (done.stdout or done.stderr) else None


if __name__ == "__main__":
    sys.exit(main())
