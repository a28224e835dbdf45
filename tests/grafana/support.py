"""Read panel queries out of the committed dashboard JSON (grafana/login-exporter.json)."""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.prometheus import Prometheus

REPO = Path(__file__).resolve().parents[2]
GENERATOR = REPO / "grafana" / "dashboard.py"
DASHBOARD = REPO / "grafana" / "login-exporter.json"

# Metric names the dashboard queries; each occurrence must carry both template filters.
METRIC = re.compile(r"\b(?:logind_\w+|process_\w+|up)\b")
STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
REQUIRED_MATCHERS = ('job=~"$job"', 'instance=~"$instance"')
# The row whose queries need logind on a system bus (evaluated by tests/e2e/test_dbus.py).
PRESENCE_ROW = "Presence and power"
LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.*),\s*(?P<label>[a-zA-Z_]\w*)\)$")


@dataclass(frozen=True)
class Target:
    """One panel query: where it is and what it asks."""

    panel: str
    ref: str
    expr: str
    instant: bool

    def __str__(self) -> str:
        return f"panel {self.panel!r} target {self.ref}: {self.expr}"


def load(path: Path = DASHBOARD) -> dict[str, Any]:
    """Return the dashboard JSON as a dict. Raises OSError or ValueError."""
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def targets(dashboard: dict[str, Any]) -> list[Target]:
    """Return every Prometheus target of every panel (rows' nested panels included)."""
    found: list[Target] = []
    panels: list[dict[str, Any]] = list(dashboard.get("panels", []))
    while panels:
        panel = panels.pop(0)
        panels.extend(panel.get("panels", []))
        for target in panel.get("targets", []):
            found.append(
                Target(
                    panel=str(panel.get("title", panel.get("id"))),
                    ref=str(target.get("refId", "?")),
                    expr=str(target["expr"]),
                    instant=bool(target.get("instant", False)),
                )
            )
    return found


def targets_by_row(dashboard: dict[str, Any]) -> dict[str, list[Target]]:
    """Return row title -> the targets of the panels under that row ("" before the first)."""
    rows: dict[str, list[Target]] = {}
    title = ""
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            title = str(panel.get("title", ""))
        rows.setdefault(title, []).extend(targets({"panels": [panel]}))
    return rows


def variable_queries(dashboard: dict[str, Any]) -> dict[str, str]:
    """Return name -> query of the dashboard's query-type template variables."""
    return {
        str(v["name"]): str(v["query"])
        for v in dashboard.get("templating", {}).get("list", [])
        if v.get("type") == "query"
    }


def substitute(expr: str, variables: dict[str, str]) -> str:
    """Replace ``$name`` / ``${name}`` as Grafana would, longest names first."""
    for name in sorted(variables, key=len, reverse=True):
        expr = expr.replace("${" + name + "}", variables[name]).replace("$" + name, variables[name])
    return expr


def unfiltered_selectors(expr: str) -> list[str]:
    """Return what is wrong with the metric selectors of ``expr`` (empty when every metric
    name is followed by ``{...}`` holding both the job and the instance filter)."""
    problems: list[str] = []
    # Blank out string literals (label values) without moving anything.
    masked = STRING.sub(lambda m: '"' + " " * (len(m.group()) - 2) + '"', expr)
    for match in METRIC.finditer(masked):
        rest = expr[match.end() :]
        if not rest.startswith("{"):
            problems.append(f"{match.group()} has no label selector")
            continue
        matchers = rest[1 : rest.index("}")]
        problems += [f"{match.group()} lacks {m}" for m in REQUIRED_MATCHERS if m not in matchers]
    return problems


def evaluate(prom: Prometheus, target: Target, variables: dict[str, str],
             window: float = 30.0) -> dict[str, Any]:
    """Run the target's query as Grafana would: an instant query now, or a range query over the
    last ``window`` seconds at a 1 s step, with ``variables`` put in.

    Returns the answer's ``data``; raises AssertionError when a variable is left or
    Prometheus refuses the query.
    """
    expr = substitute(target.expr, variables)
    if "$" in expr:
        raise AssertionError(f"unsubstituted variable in {expr}")
    now = time.time()
    if target.instant:
        data: dict[str, Any] = prom.api("query", query=expr, time=f"{now:.3f}")
    else:
        data = prom.api("query_range", query=expr, start=f"{now - window:.3f}",
                        end=f"{now:.3f}", step="1")
    return data


def finite_values(data: dict[str, Any]) -> list[float]:
    """Return the finite sample values of a query or query_range answer."""
    if data["resultType"] == "vector":
        raw = [s["value"][1] for s in data["result"]]
    elif data["resultType"] == "matrix":
        raw = [v[1] for s in data["result"] for v in s["values"]]
    elif data["resultType"] == "scalar":
        raw = [data["result"][1]]
    else:
        raw = []
    return [x for x in (float(r) for r in raw) if math.isfinite(x)]


def last_by(data: dict[str, Any], label: str) -> dict[str, float]:
    """Return label value -> the latest finite value of each series in an answer."""
    out: dict[str, float] = {}
    for series in data["result"]:
        points = series["values"] if "values" in series else [series["value"]]
        finite = [float(v) for _, v in points if math.isfinite(float(v))]
        if finite:
            out[str(series["metric"].get(label, ""))] = finite[-1]
    return out
