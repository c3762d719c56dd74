"""The benchmark's summary of its rounds (bench/report.py): plain figures in, no servers."""
from bench import report


def _run(rps, p99, *, errors=0, pss=100.0):
    return {"rps": rps, "p50_ms": p99 / 3, "p90_ms": p99 / 2, "p99_ms": p99, "max_ms": p99 * 2,
            "requests": int(rps * 5), "errors": errors, "errors_status": errors, "errors_socket": 0,
            "seconds": 5.0, "rss_mb": pss * 1.5, "pss_mb": pss, "processes": 3}


def test_the_ratio_is_the_median_of_the_rounds_ratios_not_of_the_medians():
    # Each side's median run is 1000/s, a ratio of 1.0; round by round, with the peer slowed by
    # a burst of load in round 2, Ostiary was at 0.5, 2.2 and 0.9 of the peer's rate.
    rounds = [{"ostiary": _run(1000, 10), "peer": _run(2000, 5)},
              {"ostiary": _run(1100, 12), "peer": _run(500, 30)},
              {"ostiary": _run(900, 11), "peer": _run(1000, 11)}]
    row = report.summarise(rounds)
    assert row["rps_ratio"] == 0.9  # the median of 0.5, 2.2 and 0.9
    assert row["p99_ratio"] == 1.0  # the median of 2.0, 0.4 and 1.0
    assert row["ostiary"]["rps"] == 1000 and row["peer"]["rps"] == 1000
    assert row["ostiary"]["requests"] == 15000 and row["ostiary"]["pss_mb"] == 100.0
    headline = report.headline([{"backend": "sqlite", "workload": "cc_basic", **row}])
    assert headline == {"sqlite/cc_basic": {"throughput_ratio": 0.9, "p99_ratio": 1.0,
                                            "throughput_ratio_range": [0.5, 2.2]}}
    assert "0.50-2.20" in report.table([{"backend": "sqlite", "workload": "cc_basic", **row}])


def test_errors_add_up_and_memory_is_the_peak():
    rounds = [{"ostiary": _run(100, 5, errors=2, pss=90.0), "peer": _run(100, 5)},
              {"ostiary": _run(100, 5, errors=1, pss=120.0), "peer": _run(100, 5)}]
    row = report.summarise(rounds)
    assert row["ostiary"]["errors"] == 3 and row["ostiary"]["pss_mb"] == 120.0


def test_a_workload_the_peer_lacks_has_no_ratio():
    row = report.summarise([{"ostiary": _run(800, 20), "peer": None}] * 2)
    assert row["peer"] is None and row["rps_ratio"] is None and row["p99_ratio"] is None
    assert report.headline([{"backend": "postgresql", "workload": "exchange", **row}]) == {}
    assert "n/a" in report.table([{"backend": "postgresql", "workload": "exchange", **row}])
