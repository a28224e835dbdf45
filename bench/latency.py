"""Scrape latency under 4 concurrent clients: wrk when installed, else a Python client pool."""

from __future__ import annotations

import http.client
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}
_PCT = re.compile(r"^\s*(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_NON2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")


@dataclass(frozen=True)
class Latency:
    """p50 and p99 in seconds, throughput in requests per second, and the tool that measured."""

    p50: float
    p99: float
    rps: float
    tool: str
    errors: int


def measure(host: str, port: int, path: str, seconds: float, clients: int = 4) -> Latency:
    """Load ``path`` with ``clients`` kept-alive connections for ``seconds``.

    Uses `wrk -t2 -c<clients> --latency` when wrk is installed, else a thread pool of
    http.client connections. Raises RuntimeError when wrk fails or nothing succeeded.
    """
    if shutil.which("wrk"):
        return _wrk(f"http://{host}:{port}{path}", seconds, clients)
    return _pool(host, port, path, seconds, clients)


def _wrk(url: str, seconds: float, clients: int) -> Latency:
    threads = min(2, clients)
    cmd = ["wrk", f"-t{threads}", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--latency", url]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed: {done.stderr.strip()[:200]}")
    pct = {int(p): float(v) * _UNITS[u] for p, v, u in _PCT.findall(done.stdout)}
    rps = _RPS.search(done.stdout)
    if 50 not in pct or 99 not in pct or rps is None:
        raise RuntimeError(f"unexpected wrk output: {done.stdout[-300:]}")
    bad = _NON2XX.search(done.stdout)
    return Latency(pct[50], pct[99], float(rps.group(1)), "wrk", int(bad.group(1)) if bad else 0)


def _pool(host: str, port: int, path: str, seconds: float, clients: int) -> Latency:
    timings: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def client() -> None:
        conn = http.client.HTTPConnection(host, port, timeout=10)
        mine: list[float] = []
        failed = 0
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            try:
                conn.request("GET", path)
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    failed += 1
            except (OSError, http.client.HTTPException):
                failed += 1
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=10)
                continue
            mine.append(time.perf_counter() - t0)
        conn.close()
        with lock:
            timings.extend(mine)
            errors[0] += failed

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if not timings:
        raise RuntimeError("no successful request")
    timings.sort()
    return Latency(
        percentile(timings, 50), percentile(timings, 99), len(timings) / seconds,
        "python pool", errors[0],
    )


def percentile(ordered: list[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending list. Raises ValueError when it is empty."""
    if not ordered:
        raise ValueError("no values")
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]
