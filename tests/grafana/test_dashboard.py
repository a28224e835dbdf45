"""The committed dashboard JSON is exactly what grafana/dashboard.py generates, and its queries
follow the dashboard's rules (every selector filtered by $job and $instance)."""

from __future__ import annotations

import difflib
import subprocess
import sys
from pathlib import Path

from tests.grafana import support

REGENERATE = "run `python3 grafana/dashboard.py` and commit grafana/login-exporter.json"


def test_committed_dashboard_matches_generator(tmp_path: Path) -> None:
    out = tmp_path / "login-exporter.json"
    subprocess.run(
        [sys.executable, str(support.GENERATOR), "--output", str(out)],
        check=True,
        cwd=support.REPO,
        timeout=60,
    )
    generated = out.read_text(encoding="utf-8")
    committed = support.DASHBOARD.read_text(encoding="utf-8") if support.DASHBOARD.exists() else ""
    if generated != committed:
        diff = "".join(
            difflib.unified_diff(
                committed.splitlines(keepends=True),
                generated.splitlines(keepends=True),
                "committed",
                "generated",
                n=1,
            )
        )
        lines = diff.splitlines()
        shown = "\n".join(lines[:60]) + (f"\n... {len(lines) - 60} more" if len(lines) > 60 else "")
        raise AssertionError(f"grafana/login-exporter.json is stale: {REGENERATE}\n{shown}")


def test_every_query_filters_by_job_and_instance() -> None:
    targets = support.targets(support.load())
    assert len(targets) >= 30, "the dashboard lost most of its panels"
    problems = [f"{t}: {p}" for t in targets for p in support.unfiltered_selectors(t.expr)]
    assert not problems, "\n".join(problems)


def test_selector_check_catches_a_missing_filter() -> None:
    assert support.unfiltered_selectors('rate(logind_x{job=~"$job"}[1m]) / up') == [
        'logind_x lacks instance=~"$instance"',
        "up has no label selector",
    ]


def test_variables_are_datasource_job_and_instance() -> None:
    dashboard = support.load()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert list(variables) == ["datasource", "job", "instance"]
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert support.variable_queries(dashboard) == {
        "job": "label_values(logind_up, job)",
        "instance": 'label_values(logind_up{job=~"$job"}, instance)',
    }
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert all(p["datasource"] == {"type": "prometheus", "uid": "${datasource}"} for p in panels)
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
