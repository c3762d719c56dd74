"""The table on the terminal and the JSON in bench/results/."""
from __future__ import annotations

import json
from pathlib import Path
from statistics import median

HEADLINE = ("cc_basic", "cc_jwt")


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def summarise(rounds: list[dict]) -> dict:
    """A workload's row from its rounds (``{"ostiary": run, "peer": run or None}`` each): each
    side's median run figures, and the median of the ratios taken round by round (each from two
    runs a few seconds apart), which is the figure that compares."""
    summary = {"rounds": rounds}
    for side in ("ostiary", "peer"):
        runs = [r[side] for r in rounds]
        summary[side] = _combined(runs) if runs and None not in runs else None
    rps, p99 = _round_ratios(rounds, "rps"), _round_ratios(rounds, "p99_ms")
    summary["rps_ratio"] = round(median(rps), 3) if rps else None
    summary["rps_ratio_range"] = [min(rps), max(rps)] if rps else None
    summary["p99_ratio"] = round(median(p99), 3) if p99 else None
    return summary


def _round_ratios(rounds: list[dict], field: str) -> list[float]:
    """Ostiary/peer for ``field``, round by round (none where the peer has no such workload)."""
    return [ratio(r["ostiary"][field], r["peer"][field]) for r in rounds if r["ostiary"] and r["peer"]]


def _combined(runs: list[dict]) -> dict:
    """One side's runs of a workload: median rate and latencies, total counts, peak memory."""
    out = {key: median(run[key] for run in runs) for key in ("rps", "p50_ms", "p90_ms", "p99_ms", "max_ms")}
    out.update({key: sum(run[key] for run in runs)
                for key in ("requests", "errors", "errors_status", "errors_socket", "seconds")})
    out.update({key: max(run[key] for run in runs) for key in ("rss_mb", "pss_mb", "processes")})
    return out


def headline(rows: list[dict]) -> dict:
    """Ostiary/peer throughput and p99 ratios for client_credentials, per backend: the medians of
    the round-by-round ratios, and the range they spanned."""
    out = {}
    for row in rows:
        if row["workload"] in HEADLINE and row.get("peer") and row.get("ostiary"):
            out[f"{row['backend']}/{row['workload']}"] = {
                "throughput_ratio": row["rps_ratio"], "p99_ratio": row["p99_ratio"],
                "throughput_ratio_range": row["rps_ratio_range"],
            }
    return out


def table(rows: list[dict]) -> str:
    head = (f"{'backend':<10} {'workload':<11} {'ostiary/s':>9} {'peer/s':>8} {'ratio':>6} {'rounds':>11} "
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
            f"{_spread(row['rps_ratio_range']):>11} "
            f"{cell(o, 'p50_ms', '7.1f'):>7} {cell(o, 'p99_ms', '7.1f'):>7} "
            f"{cell(p, 'p50_ms', '7.1f'):>7} {cell(p, 'p99_ms', '7.1f'):>7} "
            f"{cell(o, 'pss_mb', '6.0f'):>6} {cell(p, 'pss_mb', '6.0f'):>6} {errors:>9}")
    lines.append("ratio = median of the rounds' Ostiary/peer ratios (rounds: their range); "
                 "rates and latencies = each side's median run; "
                 "latencies in ms; MB = peak PSS of the server's process tree (RSS in the JSON); "
                 "errors = ostiary/peer non-2xx or socket errors")
    return "\n".join(lines)


def _spread(low_high: list[float] | None) -> str:
    return f"{low_high[0]:.2f}-{low_high[1]:.2f}" if low_high else "n/a"


def write(results: dict, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"bench-{results['started'].replace(':', '').replace('-', '')}.json"
    text = json.dumps(results, indent=2, sort_keys=True)
    path.write_text(text)
    (directory / "latest.json").write_text(text)
    return path
