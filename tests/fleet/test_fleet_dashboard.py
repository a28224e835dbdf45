"""The fleet dashboard (grafana/login-exporter-fleet.json): exactly what
grafana/fleet_dashboard.py generates, every selector filtered by site (and pool), and every
query answered on the real central Prometheus of tests/fleet, on the federation's and on
VictoriaMetrics (the rules recorded there by vmalert): with
finite values, except the presence row's, which need the exporters on logind's bus (their
rules' values are pinned by promtool) and must still be accepted."""

from __future__ import annotations

import math
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.grafana import support
from tests.support import fleet
from tests.support.prometheus import Prometheus

pytestmark = pytest.mark.private_mounts

GENERATOR = support.REPO / "grafana" / "fleet_dashboard.py"
DASHBOARD = support.REPO / "grafana" / "login-exporter-fleet.json"
PRESENCE_ROW = "Kiosk presence (needs the bus)"
RULE = re.compile(r"\b(site(?:_[a-z]+)*:[a-z_0-9]+:[a-z_0-9]+)\b")


def test_committed_dashboard_matches_generator(tmp_path: Path) -> None:
    out = tmp_path / "fleet.json"
    subprocess.run([sys.executable, str(GENERATOR), "--output", str(out)], check=True,
                   cwd=support.REPO, timeout=60)  # fmt: skip
    regenerate = "run `python3 grafana/fleet_dashboard.py` and commit its JSON"
    assert out.read_text() == DASHBOARD.read_text(), f"{DASHBOARD.name} is stale: {regenerate}"


def test_every_query_reads_fleet_rules_filtered_by_site() -> None:
    targets = support.targets(support.load(DASHBOARD))
    assert len(targets) >= 15
    recorded = {r["record"] for g in fleet.load("fleet-rules.yml")["groups"] for r in g["rules"]}
    for target in targets:
        names = RULE.findall(target.expr)
        assert names and set(names) <= recorded, target
        for name in names:
            rest = target.expr[target.expr.index(name) + len(name):]
            assert rest.startswith('{site=~"$site"'), target


def _finite(data: dict[str, Any]) -> list[float]:
    if data["resultType"] == "vector":
        raw = [s["value"][1] for s in data["result"]]
    elif data["resultType"] == "matrix":
        raw = [v[1] for s in data["result"] for v in s["values"]]
    else:
        raw = [data["result"][1]]
    return [x for x in map(float, raw) if math.isfinite(x)]


@pytest.mark.parametrize("store", ["central", "federation", "vm"])
def test_every_query_answers_on_the_real_central_prometheus(
    running_fleet: fleet.Fleet, store: str
) -> None:
    server: Prometheus | None = getattr(running_fleet, store)
    assert server is not None
    dashboard = support.load(DASHBOARD)
    # The variables as Grafana fills them: every value their label_values queries list.
    server.wait(lambda: server.query('site:logind_user_session_starts:rate5m{site="library"}'),
                60, "the login rate recorded")  # fmt: skip
    values: dict[str, str] = {}
    for name, query in support.variable_queries(dashboard).items():
        match = support.LABEL_VALUES.match(query)
        assert match, query
        selector = support.substitute(match["selector"], values)
        found = server.api(f"label/{match['label']}/values", **{"match[]": selector})
        assert found, f"variable {name}: {query} lists nothing"
        values[name] = "|".join(sorted(found))
    assert set(values["site"].split("|")) == {"library", "lab"}
    # Recorded series come from chained groups (per seat, then per site): under load the last
    # of them may lag the first by an evaluation or two, so look again for a while.
    deadline = time.monotonic() + 60
    while (failures := _without_data(server, dashboard, values)) and time.monotonic() < deadline:
        time.sleep(2)
    assert failures == [], "\n".join(failures)


def _without_data(server: Prometheus, dashboard: Any, values: dict[str, str]) -> list[str]:
    """Return the dashboard's targets (outside the presence row) without finite data now."""
    failures = []
    now = time.time()
    for row, found in support.targets_by_row(dashboard).items():
        for target in found:
            expr = support.substitute(target.expr, values)
            if target.instant:
                data = server.api("query", query=expr)
            else:
                data = server.api("query_range", query=expr, start=str(now - 30),
                                  end=str(now), step="5")  # fmt: skip
            if row != PRESENCE_ROW and not _finite(data):
                failures.append(f"{target} -> no data")
    return failures
