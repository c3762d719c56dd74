"""One measured run: wrk with the prepared-requests Lua script, and the server's memory meanwhile."""
from __future__ import annotations

import json
import logging
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from .memory import tree_memory

log = logging.getLogger(__name__)

SCRIPT = Path(__file__).resolve().parent / "wrk" / "requests.lua"


@dataclass
class Workload:
    """The same request shape for any server: what to send and what answer means success."""

    method: str
    path: str
    headers: dict = field(default_factory=dict)
    bodies: list[str] | None = None  # one per request (cycled); None: no body
    expect: int = 200


def ensure_wrk() -> str:
    """wrk from Debian; installed on first use where we are root (the bench's machines)."""
    found = shutil.which("wrk")
    if found:
        return found
    log.warning("wrk is missing; installing it with apt-get")
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, stdout=subprocess.DEVNULL)
    return shutil.which("wrk")


def run(base_url: str, workload: Workload, *, pid: int, seconds: float, connections: int,
        threads: int = 2) -> dict:
    """Drive ``workload`` at ``base_url`` for ``seconds`` over ``connections`` keep-alive connections."""
    with tempfile.TemporaryDirectory(prefix="ostiary-bench-") as tmp:
        body_file = "-"
        if workload.bodies is not None:
            body_file = str(Path(tmp) / "bodies.txt")
            Path(body_file).write_text("\n".join(workload.bodies) + "\n")
        headers = [f"{name}: {value}" for name, value in workload.headers.items()]
        threads = min(threads, connections)
        command = [ensure_wrk(), f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
                   "--timeout", "10s", "-s", str(SCRIPT), base_url,
                   "--", workload.method, workload.path, body_file, str(threads), *headers]
        sampler = _MemorySampler(pid)
        sampler.start()
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
        finally:
            sampler.stop()
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    stats = json.loads(line[len("BENCH "):])
    duration = stats["duration_us"] / 1e6
    ok = stats["requests"] - stats["errors_status"]
    return {
        "requests": stats["requests"],
        "errors": stats["errors_status"] + stats["errors_socket"],
        "errors_status": stats["errors_status"], "errors_socket": stats["errors_socket"],
        "rps": round(ok / duration, 1) if duration else 0.0,
        "p50_ms": stats["p50_us"] / 1000, "p90_ms": stats["p90_us"] / 1000,
        "p99_ms": stats["p99_us"] / 1000, "max_ms": stats["max_us"] / 1000,
        "seconds": round(duration, 2),
        **sampler.peak,
    }


class _MemorySampler(threading.Thread):
    """Peak memory of the server's process tree, sampled twice a second while wrk runs."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = {"rss_mb": 0.0, "pss_mb": 0.0, "processes": 0}
        self._done = threading.Event()

    def run(self):
        while True:
            sample = tree_memory(self.pid)
            if sample["rss_mb"] > self.peak["rss_mb"]:
                self.peak = sample
            if self._done.wait(0.5):
                return

    def stop(self):
        self._done.set()
        self.join()
