"""Gunicorn settings for production: ``gunicorn -c config/gunicorn.conf.py asgi:app``.

The OSTIARY_* settings are read by ``app.settings``, as everywhere (a malformed one stops
gunicorn with one line); every value can also be overridden on the command line or with
GUNICORN_CMD_ARGS.
"""
import gc
import multiprocessing
import sys

from app.settings import SettingsError, check_workers, load

try:
    _settings = load()
except SettingsError as exc:
    print(f"ostiary: error: {exc}", file=sys.stderr)
    raise SystemExit(1) from None

bind = _settings["BIND"]
# One process per core, each an event loop (gunicorn's asgi worker, on uvloop): token requests
# run inline on the loop and the ones in flight share one write transaction
# (app.http.serving, app.oauth.group_commit); a process's work is CPU, so more processes than cores
# only take turns. Other requests run on OSTIARY_THREADS threads per process (asgi.py).
workers = _settings["WORKERS"] or multiprocessing.cpu_count()
worker_class = "asgi"
asgi_lifespan = "off"
# Load the app once in the master: start-up checks run once and stop gunicorn
# with one clear line, and the decrypted signing key is shared by the workers.
preload_app = True
timeout = 30
graceful_timeout = 10
keepalive = 5
accesslog = _settings["ACCESS_LOG"] or None
forwarded_allow_ips = _settings["FORWARDED_ALLOW_IPS"]
limit_request_line = 8190


def post_fork(server, worker):
    # Connections opened by the master must not be shared with the forked workers; each worker
    # runs its own audit sequencer (app.audit.sequencer), started now rather than on its first
    # request, so that events a killed process left unsealed are sealed after a restart.
    import asgi
    from app.audit import sequencer
    from app.extensions import db
    with asgi.flask_app.app_context():
        db.engine.dispose(close=False)
    sequencer.start(asgi.flask_app)


def pre_fork(server, worker):
    # The app loaded in the master is long-lived: out of the collector's sight, a worker's
    # full collections no longer walk it (they stalled a worker's loop for 75-80 ms, the
    # token endpoint's p99), and its pages stay shared with the master (Python's gc docs).
    gc.freeze()


def nworkers_changed(server, new_value, old_value):
    # The worker count is known here, before the app is loaded (at start-up old_value is None):
    # per-process rate-limit storage under several workers is refused with one line, as the
    # app's own start-up checks are (asgi.py). A later change (TTIN) cannot be refused without
    # stopping the running server, so it is logged as an error instead.
    try:
        check_workers(_settings, new_value)
    except SettingsError as exc:
        if old_value is not None:
            server.log.error("ostiary: %s", exc)
            return
        print(f"ostiary: error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
