"""The WSGI application: ``gunicorn -c config/gunicorn.conf.py wsgi:app`` (or any WSGI server)."""
import sys

from app import StartupError, create_app

try:
    app = create_app()
except StartupError as exc:
    print(f"ostiary: error: {exc}", file=sys.stderr)
    raise SystemExit(1) from None
