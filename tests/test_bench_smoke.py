"""A smoke run of the load benchmark: a few requests of every workload against Ostiary (SQLite and
PostgreSQL) and the peer. It checks that the harness works and that every request succeeded; it
asserts no timing."""
import json
import subprocess
import sys

import pytest

from bench.workloads import NAMES

from .conftest import BACKENDS, PG_ADMIN_URL
from .servers import ROOT

pytestmark = pytest.mark.e2e


def test_bench_smoke_run_measures_every_workload_without_errors(tmp_path):
    done = subprocess.run([sys.executable, "-m", "bench", "--smoke", "--out", str(tmp_path), "--pg", PG_ADMIN_URL],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "headline (Ostiary/peer)" in done.stdout
    results = json.loads((tmp_path / "latest.json").read_text())
    rows = {(row["backend"], row["workload"]): row for row in results["rows"]}
    assert set(rows) == {(b, n) for b in BACKENDS for n in NAMES}
    for (backend, name), row in rows.items():
        assert len(row["rounds"]) == 2  # --smoke: two rounds, each side going first once
        assert row["ostiary"]["requests"] > 0 and row["ostiary"]["errors"] == 0, (backend, name, row)
        assert row["ostiary"]["processes"] >= 2 and row["ostiary"]["rss_mb"] > 0
        if name == "exchange":  # oidc-provider has no RFC 8693
            assert row["peer"] is None
        else:
            assert row["peer"]["requests"] > 0 and row["peer"]["errors"] == 0, (backend, name, row)
    assert set(results["headline"]) == {f"{b}/{n}" for b in BACKENDS for n in ("cc_basic", "cc_jwt")}
    for backend, summary in results["audit"].items():
        assert summary["intact"], (backend, summary)
        by_type = summary["events_by_type"]
        issued = by_type.get("token.issued", 0) + by_type.get("token.exchanged", 0)
        assert issued == summary["issued_tokens"] > 0  # every issued token has its audit event
