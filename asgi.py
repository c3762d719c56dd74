"""Production entry point: ``gunicorn -c config/gunicorn.conf.py asgi:app``."""
import os
import sys

from app import StartupError, create_app
from app.serving import Server

try:
    flask_app = create_app()
except StartupError as exc:
    print(f"ostiary: error: {exc}", file=sys.stderr)
    raise SystemExit(1) from None

app = Server(flask_app, threads=int(os.environ.get("OSTIARY_THREADS", 8)),
             proxy_hops=int(os.environ.get("OSTIARY_PROXY_HOPS", 0)))
