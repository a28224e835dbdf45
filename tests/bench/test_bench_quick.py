"""The benchmark's quick mode runs end to end and prints its one table (timings never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.table import COLUMNS

REPO = Path(__file__).resolve().parent.parent.parent
TIME_UNITS = {"ms", "µs", "s", "MB", "cores"}
ALWAYS = ("C floor: full pass", "sdlogin getters, full pass, no cache", "list functions, ours")
NEEDS_STATE = ("full refresh", "refresh after one session changed")
NEEDS_EXPORTER = (
    "scrape p50, default flags, 4 clients",
    "scrape p99, default flags, 4 clients",
    "scrape p50, --collector.session-info, 4 clients",
    "scrape p99, --collector.session-info, 4 clients",
    "RSS",
    "change -> visible on /metrics, p99",
    "start -> /-/ready",
    "idle 3 s: wake-ups",
    "idle 3 s: CPU",
    "storm: refreshes",
    "storm: CPU",
    "storm: final numbers off by",
)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[dict[str, Any]]]:
    out = tmp_path_factory.mktemp("bench") / "rows.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows: list[dict[str, Any]] = json.loads(out.read_text())["rows"]
    return done.stdout, rows


def _table_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("|")]


def test_quick_mode_prints_exactly_one_table_with_fixed_columns(
    quick_run: tuple[str, list[dict[str, Any]]],
) -> None:
    stdout, rows = quick_run
    lines = _table_lines(stdout)
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header == list(COLUMNS)
    assert set(lines[1]) <= set("|-")
    body = lines[2:]
    assert len(body) == len(rows)
    for line in body:
        assert line.count("|") == len(COLUMNS) + 1, line
    # one contiguous table: no table line after a non-table line once the table started
    start = stdout.splitlines().index(lines[0])
    block = stdout.splitlines()[start : start + len(lines)]
    assert block == lines


def test_quick_mode_measures_at_n_10_and_100(quick_run: tuple[str, list[dict[str, Any]]]) -> None:
    _, rows = quick_run
    floors = {r["n"]: r for r in rows if r["figure"] == "C floor: full pass"}
    assert set(floors) == {"10", "100"}
    # the floor read back what the tree writer wrote (the note names the counts)
    assert all("4 seats" in r["note"] for r in floors.values())


def _numeric(rows: list[dict[str, Any]], figure: str) -> list[dict[str, Any]]:
    found = [r for r in rows if r["figure"] == figure]
    assert found, f"no row {figure!r}"
    for row in found:
        assert row["value"] is not None, f"{figure} at N={row['n']}: n/a ({row['note']})"
    return found


def test_figures_that_need_only_libsystemd_are_measured(
    quick_run: tuple[str, list[dict[str, Any]]],
) -> None:
    _, rows = quick_run
    for figure in ALWAYS:
        _numeric(rows, figure)
    notes = {r["n"]: r["note"] for r in _numeric(rows, "C floor: full pass")}
    # the floor read back the users and machines the tree writer wrote at each N
    assert "3 users, 1 machines" in notes["10"]
    assert "33 users, 3 machines" in notes["100"]


def test_exporter_figures_are_measured_once_the_exporter_exists(
    quick_run: tuple[str, list[dict[str, Any]]],
) -> None:
    _, rows = quick_run
    if not (REPO / "login_exporter" / "__main__.py").exists():
        pytest.skip("login_exporter/__main__.py not written yet")
    for figure in NEEDS_EXPORTER:
        _numeric(rows, figure)


def test_refresh_figures_are_measured_once_state_exists(
    quick_run: tuple[str, list[dict[str, Any]]],
) -> None:
    _, rows = quick_run
    if not (REPO / "login_exporter" / "state.py").exists():
        pytest.skip("login_exporter/state.py not written yet")
    for figure in NEEDS_STATE:
        for row in _numeric(rows, figure):
            assert row["ratio"] is not None and row["ratio"] > 0


def test_every_measured_figure_is_positive_and_times_nonzero(
    quick_run: tuple[str, list[dict[str, Any]]],
) -> None:
    _, rows = quick_run
    for row in rows:
        if row["value"] is None:
            assert row["note"], f"{row['figure']}: n/a without a reason"
            continue
        assert row["value"] >= 0, row
        if row["unit"] in TIME_UNITS and not row["figure"].startswith(("idle", "storm")):
            assert row["value"] > 0, row
        if row["ratio"] is not None:
            assert row["ratio"] > 0, row


def test_plots_of_the_quick_run_are_pngs(
    quick_run: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    from bench import plot

    _, rows = quick_run
    written = plot.plot(rows, tmp_path)
    assert {p.name for p in written} == {"refresh.png", "scrape.png", "rss.png"}  # no --real
    for path in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
