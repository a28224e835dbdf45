"""``python3 -m bench.web`` runs end to end and prints its figures (timings never asserted)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.support.addresses import outside_address

REPO = Path(__file__).resolve().parent.parent.parent


def test_web_bench_prints_scrape_latency_and_idle_wakeups() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.web", "--n", "10", "--repeats", "2", "--seconds", "1",
         "--idle", "1"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    for figure in ("p50", "p99"):
        match = re.search(rf"^scrape {figure} ms: median ([\d.]+)  runs ([\d.]+) ([\d.]+)$",
                          done.stdout, re.MULTILINE)  # fmt: skip
        assert match, done.stdout
        assert all(float(value) > 0 for value in match.groups())
    assert re.search(r"^scrapes/s: median [\d,]+; non-2xx: 0$", done.stdout, re.MULTILINE)
    assert re.search(r"^idle 1 s: \d+ context switches, \d+ ms CPU$", done.stdout, re.MULTILINE)


def test_web_bench_hold_prints_the_scrapes_from_another_address() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.web", "--hold", "--n", "10", "--seconds", "1"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    scrapes = r"\d+/[1-9]\d* answered 200 \([\d.]+ %\); p50 ms (n/a|[\d.]+), p99 ms (n/a|[\d.]+)"
    outside = re.escape(outside_address())
    for line in (rf"scrapes from {outside} alone: {scrapes} \(of the 200s\)",
                 r"held from 127\.0\.0\.1-8: \d+ of 512 connection slots; re-opened [\d,]+/s",
                 rf"scrapes from {outside} meanwhile: {scrapes} \(of the 200s\)"):  # fmt: skip
        assert re.search(f"^{line}$", done.stdout, re.MULTILINE), (line, done.stdout)
