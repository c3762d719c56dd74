"""``python -m bench.write_path``: audited token issuances per second that the PostgreSQL write
path sustains with 1, 2 and 4 concurrent writers, without HTTP, signing or request handling.

Each issuance is the write of a token request and nothing else: one transaction that inserts
an ``issued_token`` row and its ``token.issued`` audit event, committed before the next one
begins, written as the token endpoint's group commit writes a group of one (``app.db.dbapi``
transaction, ``app.oauth.group_commit``'s statements). The rows are built here, unsigned, so the CPU of parsing,
authenticating and signing (``bench.profile_token`` measures that) is set aside: what is left
is what concurrent writers contend for in the database.

Two modes, measured in the same run on the same machine, each on a fresh database:

    lockfree    the write as it is: writers share no lock; the events wait unsealed
                for the sequencer (``app.audit.sequencer``).
    head_lock   emulates the old design's one shared lock, for comparison: the same statements
                in one transaction, but first ``SELECT seq, hash FROM audit_head WHERE id = 1
                FOR UPDATE``, held until the commit, so writers take turns. It emulates the
                lock alone, not whatever else the old design did while holding it.

Writers are separate processes (spawned, each with its own app, engine and connection), so the
GIL does not cap them; they start together at a barrier and each issues for ``--seconds``.
Nothing seals while they write; after a mode's runs the sequencer seals everything in this
process, and ``app.audit.verify()`` must find the chain intact and holding every event written
(the setup's and the bench's).
"""
from __future__ import annotations

import argparse
import functools
import json
import logging
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from . import ostiary
from .workloads import AUDIENCE, SCOPE

RESULTS = Path(__file__).resolve().parent / "results"
MODES = ("lockfree", "head_lock")
WARMUP = 20  # unmeasured issuances per writer before the barrier: connection open, SQL compiled
BARRIER_SECONDS = 120  # a writer that never gets to the barrier (import error, no database) fails the run
@functools.cache  # one statement object: app.db.dbapi compiles it once
def _old_head_lock():
    from sqlalchemy import select

    from app.models import AuditHead
    head = AuditHead.__table__
    return select(head.c.seq, head.c.hash).where(head.c.id == 1).with_for_update()


def parse(argv):
    parser = argparse.ArgumentParser(prog="python -m bench.write_path", description=__doc__.splitlines()[0])
    parser.add_argument("--writers", default="1,2,4", help="writer process counts, one run each (default 1,2,4)")
    parser.add_argument("--seconds", type=float, default=5, help="measured seconds per run (default 5)")
    parser.add_argument("--modes", default=",".join(MODES), help=f"of {', '.join(MODES)} (default both)")
    parser.add_argument("--pg", default=os.environ.get("OSTIARY_BENCH_PG",
                                                       "postgresql://postgres@127.0.0.1:5432/test"),
                        help="PostgreSQL admin URL; the bench creates and drops its own databases")
    parser.add_argument("--smoke", action="store_true", help="0.5 s runs of 1 and 2 writers, for a quick check")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.seconds, args.writers = 0.5, "1,2"
    args.writers = [int(n) for n in args.writers.split(",") if n]
    args.modes = [m for m in args.modes.split(",") if m]
    unknown = set(args.modes) - set(MODES)
    if unknown:
        parser.error(f"unknown mode(s): {', '.join(sorted(unknown))}")
    return args


# --- in each writer process ---------------------------------------------------------------

def token_and_events(client_id: str) -> tuple[dict, list[dict]]:
    """What a client_credentials grant writes, built without signing (the row ``mint()`` gives)."""
    from app import audit
    from app.oauth import rfc9068
    from app.support import clock
    jti, issued_at = rfc9068.new_jti(), clock.now()
    row = {"jti": jti, "client_id": client_id, "subject": client_id, "scope": SCOPE, "audience": [AUDIENCE],
           "grant_type": "client_credentials", "parent_jti": None, "task_id": None,
           "issued_at": issued_at, "expires_at": clock.in_(300)}
    event = audit.values("token.issued", f"client:{client_id}", client_id=client_id, jti=jti, decision="allow",
                         data={"grant_type": "client_credentials", "scope": SCOPE, "aud": [AUDIENCE]})
    return row, [event]


def issue_lockfree(token: dict, events: list[dict]) -> None:
    from app import audit
    from app.db import dbapi
    from app.oauth.group_commit import INSERT_TOKEN
    with dbapi.transaction() as connection:
        connection.execute(INSERT_TOKEN, [token])
        audit.append(connection, events)


def issue_head_lock(token: dict, events: list[dict]) -> None:
    """The same write, with the old shared lock taken first and held until the commit."""
    from app import audit
    from app.db import dbapi
    from app.oauth.group_commit import INSERT_TOKEN
    with dbapi.transaction() as connection:
        connection.execute(_old_head_lock(), {}).first()
        connection.execute(INSERT_TOKEN, [token])
        audit.append(connection, events)


ISSUE = {"lockfree": issue_lockfree, "head_lock": issue_head_lock}


def writer(env: dict, mode: str, client_id: str, seconds: float, barrier, results, index: int) -> None:
    """One writer process: warm up, wait for the others, issue for ``seconds``, report."""
    try:
        logging.disable(logging.INFO)  # no log line per token in the measured loop
        from app.extensions import db
        app = ostiary.app_for(env)  # this process's own app, engine and connection pool
        issue = ISSUE[mode]
        with app.app_context():
            for _ in range(WARMUP):
                issue(*token_and_events(client_id))
            barrier.wait(BARRIER_SECONDS)
            latencies, started = [], time.perf_counter()
            deadline = started + seconds
            while True:
                token, events = token_and_events(client_id)  # outside the timing: not the database's
                begun = time.perf_counter()
                issue(token, events)
                done = time.perf_counter()
                latencies.append(done - begun)
                if done >= deadline:
                    break
            elapsed = time.perf_counter() - started
            db.session.remove()
            db.engine.dispose()
        results.put({"writer": index, "issued": len(latencies), "warmup": WARMUP, "elapsed": round(elapsed, 4),
                     **latency_summary(latencies)})
    except BaseException as exc:  # the parent must hear of it rather than wait for a result
        barrier.abort()
        results.put({"writer": index, "error": f"{type(exc).__name__}: {exc}"})


def latency_summary(latencies: list[float]) -> dict:
    ordered = sorted(latencies)
    return {"median_ms": round(statistics.median(ordered) * 1000, 3),
            "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 3),
            "max_ms": round(ordered[-1] * 1000, 3)}


# --- in the parent ------------------------------------------------------------------------

def run_writers(env: dict, mode: str, client_id: str, n: int, seconds: float) -> dict:
    """``n`` writer processes started together; their combined issuances per second."""
    context = multiprocessing.get_context("spawn")  # nothing of this process (engine, sockets) is inherited
    barrier, results = context.Barrier(n + 1), context.Queue()
    processes = [context.Process(target=writer, args=(env, mode, client_id, seconds, barrier, results, i),
                                 name=f"write-path-{mode}-{i}") for i in range(n)]
    for process in processes:
        process.start()
    try:
        barrier.wait(BARRIER_SECONDS)  # every writer warmed up: the measured seconds start now
    except Exception:
        pass  # a writer failed; its error is in the queue
    writers = sorted((results.get(timeout=BARRIER_SECONDS + seconds * 4) for _ in processes),
                     key=lambda w: w["writer"])
    for process in processes:
        process.join(30)
    errors = [w["error"] for w in writers if "error" in w]
    if errors:
        raise RuntimeError(f"{mode} with {n} writer(s) failed: {errors}")
    issued = sum(w["issued"] for w in writers)
    # Over the slowest writer's seconds: every writer started at the barrier, and the last
    # commit of each ends a little after its deadline.
    wall = max(w["elapsed"] for w in writers)
    return {"mode": mode, "writers": n, "issued": issued, "warmup": sum(w["warmup"] for w in writers),
            "seconds": round(wall, 3), "per_second": round(issued / wall, 1),
            "median_ms": [w["median_ms"] for w in writers], "p99_ms": [w["p99_ms"] for w in writers],
            "per_writer": writers}


def counts(env: dict) -> dict:
    """Rows in the tables the bench writes, all of them, sealed or not."""
    from sqlalchemy import func, select

    from app.extensions import db
    from app.models import AuditEvent, IssuedToken
    app = ostiary.app_for(env)
    with app.app_context():
        events = db.session.execute(select(func.count()).select_from(AuditEvent)).scalar_one()
        tokens = db.session.execute(select(func.count()).select_from(IssuedToken)).scalar_one()
        db.session.remove()
        db.engine.dispose()
    return {"events": events, "tokens": tokens}


def seal_and_verify(env: dict, expected_events: int) -> dict:
    """Seal what the writers left unsealed, then walk the whole chain."""
    from app import audit
    from app.audit import sequencer, trail
    from app.extensions import db
    app = ostiary.app_for(env)
    with app.app_context():
        started = time.perf_counter()
        sealed = sequencer.seal_all()
        seal_seconds = time.perf_counter() - started
        count, broken, why = audit.verify()
        waiting = trail.unsealed()[0]
        db.session.remove()
        db.engine.dispose()
    return {"sealed": sealed, "seal_seconds": round(seal_seconds, 2), "events": count,
            "expected_events": expected_events, "unsealed": waiting, "broken_at": broken, "why": why,
            "intact": broken is None and waiting == 0 and count == expected_events}


def measure_mode(mode: str, args) -> dict:
    """A fresh database for the mode; its writer counts one after another on it."""
    with tempfile.TemporaryDirectory(prefix="ostiary-write-path-") as tmp, \
            ostiary.fresh_database("postgresql", Path(tmp), args.pg) as url:
        env = ostiary.environment(Path(tmp), 1, url, {})
        init = subprocess.run([str(ostiary.BIN / "ostiary"), "init"], cwd=ostiary.ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        if init.returncode != 0:
            raise RuntimeError(f"ostiary init failed: {init.stderr}")
        client_id = ostiary.make_clients(env).basic_id  # the token rows' foreign key
        before = counts(env)  # the setup's events (key, registrations, approvals) are in the chain too
        runs = []
        for n in args.writers:
            runs.append(run_writers(env, mode, client_id, n, args.seconds))
            print(f"  {mode:<9} {n} writer(s): {runs[-1]['per_second']:8.1f}/s", file=sys.stderr, flush=True)
        written = sum(run["issued"] + run["warmup"] for run in runs)  # one event per issuance
        after = counts(env)
        audit = seal_and_verify(env, before["events"] + written)
        audit.update(setup_events=before["events"], bench_events=written,
                     tokens_written=after["tokens"] - before["tokens"])
        audit["intact"] = audit["intact"] and audit["tokens_written"] == written
    return {"mode": mode, "runs": runs, "audit": audit}


def table(modes: list[dict]) -> str:
    lines = [f"{'mode':<10} {'writers':>7} {'issued':>8} {'issuances/s':>12}  median ms per writer",
             "-" * 66]
    for mode in modes:
        for run in mode["runs"]:
            medians = " ".join(f"{m:.2f}" for m in run["median_ms"])
            lines.append(f"{run['mode']:<10} {run['writers']:>7} {run['issued']:>8} {run['per_second']:>12.1f}"
                         f"  {medians}")
    lines.append("")
    for mode in modes:
        a = mode["audit"]
        lines.append(f"{mode['mode']:<10} audit chain: {'intact' if a['intact'] else 'BROKEN'}, "
                     f"{a['events']} events verified = {a['setup_events']} setup + {a['bench_events']} "
                     f"issuances (sealed {a['sealed']} in {a['seal_seconds']} s)"
                     + ("" if a["broken_at"] is None else f"; broken at {a['broken_at']}: {a['why']}"))
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse(argv)
    started = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    results = {"started": started,
               "command": "python -m bench.write_path " + " ".join(argv if argv is not None else sys.argv[1:]),
               "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
               "settings": {"writers": args.writers, "seconds": args.seconds, "modes": args.modes,
                            "warmup_per_writer": WARMUP},
               "modes": [measure_mode(mode, args) for mode in args.modes]}
    print(table(results["modes"]))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"write-path-{started.replace(':', '').replace('-', '')}.json"
    path.write_text(json.dumps(results, indent=2, sort_keys=True))
    print("written to", path)
    return 0 if all(mode["audit"]["intact"] for mode in results["modes"]) else 1


if __name__ == "__main__":
    sys.exit(main())
