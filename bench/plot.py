"""PNG plots of one bench run's rows (matplotlib, headless).

    python3 -m bench.run --plot DIR          # measure, then plot into DIR
    python3 -m bench.plot rows.json DIR      # plot rows written earlier by --json

Writes ``refresh.png`` (refresh cost vs N beside the C floor, log-log), ``scrape.png`` (scrape
p50/p99 vs N, default flags and --collector.session-info), ``rss.png`` (resident memory vs N)
and, when the run had ``--real``, ``real.png`` (node_exporter vs ours per scrape). A figure
with no measured rows is skipped.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

Rows = Sequence[Mapping[str, Any]]

REFRESH = (
    ("C floor: full pass", "C floor (same calls, gcc -O2)"),
    ("full refresh, cold cache (start-up)", "cold refresh (start-up)"),
    ("full refresh", "full refresh (resync)"),
    ("refresh after one session changed, published", "one change, published"),
    ("refresh after one session changed", "one change, refresher only"),
)
SCRAPE = (
    ("scrape p50, default flags, 4 clients", "p50, default flags"),
    ("scrape p99, default flags, 4 clients", "p99, default flags"),
    ("scrape p50, --collector.session-info, 4 clients", "p50, --collector.session-info"),
    ("scrape p99, --collector.session-info, 4 clients", "p99, --collector.session-info"),
)
REAL = (
    ("node_exporter --collector.logind, p50 per scrape", "node_exporter --collector.logind"),
    ("ours, real logind, p50 per scrape", "login-exporter"),
)


def _series(rows: Rows, figure: str) -> tuple[list[int], list[float]]:
    points = sorted(
        (int(str(row["n"]).replace(",", "")), float(row["value"]))
        for row in rows
        if row["figure"] == figure and row["value"] is not None and str(row["n"])[:1].isdigit()
    )
    return [n for n, _ in points], [v for _, v in points]


def _plot(
    rows: Rows, lines: Iterable[tuple[str, str]], path: Path, title: str, ylabel: str,
    *, log_y: bool = True, target: tuple[float, str] | None = None,
) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(7, 4.2), dpi=110)
    drawn = False
    for name, label in lines:
        ns, values = _series(rows, name)
        if ns:
            axes.plot(ns, values, marker="o", label=label)
            drawn = True
    if not drawn:
        pyplot.close(figure)
        return False
    if target is not None:
        axes.axhline(target[0], color="grey", linestyle="--", linewidth=1, label=target[1])
    axes.set_xscale("log")
    if log_y:
        axes.set_yscale("log")
    else:
        axes.set_ylim(bottom=0)  # a linear scale starts at zero, so small steps look small
    axes.set_xlabel("N (sessions)")
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    pyplot.close(figure)
    return True


def plot(rows: Rows, directory: Path) -> list[Path]:
    """Write the PNGs for ``rows`` into ``directory`` (created). Returns the files written.

    Raises ImportError when matplotlib is not installed.
    """
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    plans: list[tuple[str, Iterable[tuple[str, str]], str, str, dict[str, Any]]] = [
        ("refresh.png", REFRESH, "Refresh cost vs N, beside the C floor", "ms", {}),
        ("scrape.png", SCRAPE, "Scrape latency, wrk -t2 -c4", "ms",
         {"target": (2.0, "p99 target, default flags (2 ms)")}),
        ("rss.png", (("RSS", "resident memory after the scrape load"),),
         "Resident memory, default flags", "MB",
         {"log_y": False, "target": (30.0, "target at N = 10,000 (30 MB)")}),
        ("real.png", REAL, "Per scrape against a real logind (--real)", "ms p50", {}),
    ]  # fmt: skip
    for name, lines, title, unit, options in plans:
        path = directory / name
        if _plot(rows, lines, path, title, unit, **options):
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """Plot a --json file's rows. Returns 0, or 2 when the file cannot be read."""
    parser = argparse.ArgumentParser(prog="python3 -m bench.plot")
    parser.add_argument("rows", type=Path, help="a file written by python3 -m bench.run --json")
    parser.add_argument("directory", type=Path)
    args = parser.parse_args(argv)
    try:
        rows = json.loads(args.rows.read_text())["rows"]
    except (OSError, ValueError, KeyError) as exc:
        print(f"bench.plot: cannot read {args.rows}: {exc}", file=sys.stderr)
        return 2
    for path in plot(rows, args.directory):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
