"""Production entry point: ``gunicorn -c config/gunicorn.conf.py asgi:app``."""
import sys

from app import StartupError, create_app
from app.http.serving import Server

try:
    flask_app = create_app()
except StartupError as exc:
    print(f"ostiary: error: {exc}", file=sys.stderr)
    raise SystemExit(1) from None

app = Server(flask_app, threads=flask_app.config["THREADS"], proxy_hops=flask_app.config["PROXY_HOPS"])
