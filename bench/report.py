"""The table on the terminal and the JSON in bench/results/."""
from __future__ import annotations

import json
from pathlib import Path

HEADLINE = ("cc_basic", "cc_jwt")


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def headline(rows: list[dict]) -> dict:
    """Ostiary/peer throughput and p99 ratios for client_credentials, per backend."""
    out = {}
    for row in rows:
        if row["workload"] in HEADLINE and row.get("peer") and row.get("ostiary"):
            out[f"{row['backend']}/{row['workload']}"] = {
                "throughput_ratio": row["rps_ratio"],
                "p99_ratio": ratio(row["ostiary"]["p99_ms"], row["peer"]["p99_ms"]),
            }
    return out


def table(rows: list[dict]) -> str:
    head = (f"{'backend':<10} {'workload':<11} {'ostiary/s':>9} {'peer/s':>8} {'ratio':>6} "
            f"{'o p50':>7} {'o p99':>7} {'p p50':>7} {'p p99':>7} {'o MB':>6} {'p MB':>6} {'errors':>9}")
    lines = [head, "-" * len(head)]

    def cell(side, key, fmt):
        return format(side[key], fmt) if side else "n/a"

    for row in rows:
        o, p = row.get("ostiary"), row.get("peer")
        errors = f"{o['errors'] if o else '-'}/{p['errors'] if p else '-'}"
        lines.append(
            f"{row['backend']:<10} {row['workload']:<11} {cell(o, 'rps', '9.0f'):>9} {cell(p, 'rps', '8.0f'):>8} "
            f"{(format(row['rps_ratio'], '.2f') if row['rps_ratio'] is not None else 'n/a'):>6} "
            f"{cell(o, 'p50_ms', '7.1f'):>7} {cell(o, 'p99_ms', '7.1f'):>7} "
            f"{cell(p, 'p50_ms', '7.1f'):>7} {cell(p, 'p99_ms', '7.1f'):>7} "
            f"{cell(o, 'pss_mb', '6.0f'):>6} {cell(p, 'pss_mb', '6.0f'):>6} {errors:>9}")
    lines.append("latencies in ms; MB = peak PSS of the server's process tree (RSS in the JSON); "
                 "errors = ostiary/peer non-2xx or socket errors")
    return "\n".join(lines)


def write(results: dict, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"bench-{results['started'].replace(':', '').replace('-', '')}.json"
    text = json.dumps(results, indent=2, sort_keys=True)
    path.write_text(text)
    (directory / "latest.json").write_text(text)
    return path
