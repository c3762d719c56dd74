"""Gunicorn settings for production: ``gunicorn -c config/gunicorn.conf.py wsgi:app``.

Every value can be overridden on the command line or with GUNICORN_CMD_ARGS.
"""
import multiprocessing
import os

bind = os.environ.get("OSTIARY_BIND", "127.0.0.1:8000")
# One process per core, several threads each: the token requests a process has in flight
# share one write transaction (app.oauth.issuance), so threads, not processes, make the
# groups; more processes than cores only queue more groups on the one audit-head lock.
workers = int(os.environ.get("OSTIARY_WORKERS", multiprocessing.cpu_count()))
worker_class = "gthread"
threads = int(os.environ.get("OSTIARY_THREADS", 8))
# Load the app once in the master: start-up checks run once and stop gunicorn
# with one clear line, and the decrypted signing key is shared by the workers.
preload_app = True
timeout = 30
graceful_timeout = 10
keepalive = 5
accesslog = os.environ.get("OSTIARY_ACCESS_LOG")  # "-" for stdout; off by default
forwarded_allow_ips = os.environ.get("OSTIARY_FORWARDED_ALLOW_IPS", "127.0.0.1")
# Behind N reverse proxies (TLS termination), take the client address and scheme from the
# last N X-Forwarded-For/-Proto entries, so rate limits, pending caps and the audit trail see
# the client and not the proxy. Leave 0 when clients can reach gunicorn directly: the
# headers would then be the client's to forge.
proxy_hops = int(os.environ.get("OSTIARY_PROXY_HOPS", 0))
limit_request_line = 8190


def post_fork(server, worker):
    # Connections opened by the master must not be shared with the forked workers.
    import wsgi
    from app.extensions import db
    with wsgi.app.app_context():
        db.engine.dispose(close=False)


def post_worker_init(worker):
    if proxy_hops:
        from werkzeug.middleware.proxy_fix import ProxyFix
        worker.wsgi = ProxyFix(worker.wsgi, x_for=proxy_hops, x_proto=proxy_hops)
