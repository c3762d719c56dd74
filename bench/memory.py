"""Memory of a server's process tree from /proc: RSS (shared pages counted per process) and PSS."""
from __future__ import annotations

from pathlib import Path

PROC = Path("/proc")


def children(pid: int) -> list[int]:
    found = []
    for task in (PROC / str(pid) / "task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        todo += children(current)
    return pids


def tree_memory(pid: int) -> dict:
    """Sum over the process and its descendants. PSS shares copy-on-write pages fairly,
    so it is the honest figure for gunicorn's preloaded workers; RSS overcounts them."""
    rss = pss = 0
    pids = tree(pid)
    for p in pids:
        try:
            for line in (PROC / str(p) / "smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
        except OSError:  # the process ended between listing and reading
            continue
    return {"rss_mb": round(rss / 1024, 1), "pss_mb": round(pss / 1024, 1), "processes": len(pids)}
