"""``python -m bench.profile_token``: where one token request's time goes, without an HTTP server.

Makes a fresh database (SQLite or PostgreSQL) with the benchmark's clients, then
issues client_credentials tokens by calling the WSGI app with a prepared request, in
one thread: first to measure CPU per request, then under cProfile to split it up.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import logging
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

from . import ostiary
from .workloads import SCOPE, basic

PARTS = ("front.py:.*\\(__call__\\)|grants/base.py:.*\\(issue\\)|_write_group|trail.py:.*\\(append\\)|load_client"
         "|_by_secret|rfc9068.py:.*\\(mint\\)|do_ping")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_token", description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("-n", type=int, default=1000, help="requests per phase")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ostiary-profile-") as tmp, \
            ostiary.fresh_database(args.backend, Path(tmp), args.pg) as url:
        env = ostiary.environment(Path(tmp), 1, url, {})
        subprocess.run([str(ostiary.BIN / "ostiary"), "init"], cwd=ostiary.ROOT, env=env, check=True,
                       capture_output=True)
        clients = ostiary.make_clients(env)
        app = ostiary.app_for(env)
        logging.disable(logging.INFO)  # one log line per token would be measured too
        body = urlencode({"grant_type": "client_credentials", "scope": SCOPE}).encode()
        environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/token", "SCRIPT_NAME": "", "QUERY_STRING": "",
                   "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "1", "SERVER_PROTOCOL": "HTTP/1.1",
                   "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1:1", "wsgi.url_scheme": "http",
                   "CONTENT_TYPE": "application/x-www-form-urlencoded", "CONTENT_LENGTH": str(len(body)),
                   "HTTP_AUTHORIZATION": basic(clients.basic_id, clients.basic_secret),
                   "wsgi.errors": sys.stderr, "wsgi.version": (1, 0), "wsgi.multithread": True,
                   "wsgi.multiprocess": True, "wsgi.run_once": False}
        statuses = []

        def run(n):
            for _ in range(n):  # the WSGI app as gunicorn calls it, without the HTTP parsing
                b"".join(app(dict(environ, **{"wsgi.input": io.BytesIO(body)}),
                             lambda status, headers, exc_info=None: statuses.append(status)))
                assert statuses.pop().startswith("200")

        run(50)  # warm caches: compiled SQL, decrypted key
        cpu, wall = time.process_time(), time.perf_counter()
        run(args.n)
        print(f"{args.backend}: {(time.process_time() - cpu) / args.n * 1000:.2f} ms CPU and "
              f"{(time.perf_counter() - wall) / args.n * 1000:.2f} ms wall per token (one thread)")
        profile = cProfile.Profile()
        profile.runcall(run, args.n)
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(PARTS)
        print(out.getvalue())
        from app.extensions import db
        with app.app_context():
            db.engine.dispose()


if __name__ == "__main__":
    main()
