"""Load benchmark: Ostiary under gunicorn against panva's oidc-provider, side by side, with wrk."""
