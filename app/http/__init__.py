"""HTTP plumbing beneath the areas: the ASGI server gunicorn runs (``serving``), error
responses outside Authlib's endpoints (``errors``), and the health check (``health``)."""
