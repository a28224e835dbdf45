"""``python3 -m bench.fleet --quick`` runs the whole chain and prints its one table (figures are
checked for sense, never for speed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent


def test_quick_fleet_carries_every_host_and_prints_per_host_figures(tmp_path: Path) -> None:
    out = tmp_path / "fleet.json"
    done = subprocess.run([sys.executable, "-m", "bench.fleet", "--quick", "--json", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=240)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("|")]
    assert lines[0] == "| figure | N = 30 |" and len(lines) == 2 + 11, done.stdout
    (result,) = json.loads(out.read_text())["results"]
    assert result["hosts"] == 30 and result["not_scraped"] == 0
    per_host = result["per_host"]
    # Every identity's series reached the central store: the exporter's (less the Python
    # runtime's) and the scrape's own.
    for where in ("agent", "central"):
        assert 40 <= per_host[f"series at {where} / host"] < 100, per_host
    assert per_host["recorded series at central / host"] > 0
    assert per_host["samples/s / host"] > 0 and per_host["remote-write bytes/s / host"] > 0
    assert result["rule_eval_s"] > 0 and result["central_rss_mib"] > 0
