"""A real Prometheus (on the host) scraping the exporter in the container.

PromQL answers must equal what loginctl says, and every expression shipped in
deploy/prometheus/*.yml (rules) and grafana/**/*.json (dashboards) must parse and return data.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.checks import assert_agrees
from tests.e2e.container import REPO_ROOT
from tests.e2e.scenario import EXPORTER_PORT, Scene, Service, wait_until
from tests.support.prometheus import Prometheus

pytestmark = pytest.mark.e2e

RULES_DIR = REPO_ROOT / "deploy" / "prometheus"
GRAFANA_DIR = REPO_ROOT / "grafana"
FLEET_DIR = RULES_DIR / "fleet"
FLEET_DASHBOARD = "login-exporter-fleet.json"


def scalar(result: list[dict[str, Any]]) -> float | None:
    if not result:
        return None
    return float(result[0]["value"][1])


def test_promql_answers_match_loginctl(scene: Scene, exporter: Service,
                                       prometheus: Prometheus) -> None:
    user = scene.add_user("p")
    made = [scene.pam_session(user), scene.remote_session(user),
            scene.pam_session(user, session_type="x11", session_class="user", seat="seat0")]
    scene.register_machine(f"{user}-vm", "vm")
    assert_agrees(scene, EXPORTER_PORT)
    def expected() -> dict[str, float]:
        # Re-read each time: users of earlier tests may still be closing meanwhile.
        sessions = scene.truth.sessions()
        machines = scene.truth.machines()
        vms = float(sum(m.machine_class == "vm" for m in machines))
        return {
            'sum(logind_sessions{job="login-exporter"})': float(len(sessions)),
            'sum(logind_sessions{job="login-exporter", remote="true"})': float(
                sum(s.remote for s in sessions)),
            'sum(logind_sessions{job="login-exporter", seat="seat0"})': float(
                sum(s.seat == "seat0" for s in sessions)),
            'logind_up{job="login-exporter"}': 1.0,
            'logind_seat_present{job="login-exporter", seat="seat0"}': 1.0,
            'sum(logind_machines{job="login-exporter", class="vm"})': vms,
            'count(logind_machine_info{job="login-exporter", class="vm"})': vms,
            'sum(logind_users{job="login-exporter", state="active"})': float(
                scene.truth.user_file_states()["active"]),
            'up{job="login-exporter"}': 1.0,
        }  # fmt: skip

    def answers() -> dict[str, float | None]:
        return {q: scalar(prometheus.query(q)) for q in expected()}

    # Scraped every second; poll until the newest sample holds the new numbers.
    deadline = time.monotonic() + 15
    got, want = answers(), expected()
    while got != want and time.monotonic() < deadline:
        time.sleep(0.5)
        got, want = answers(), expected()
    assert got == want
    for sid in made:
        scene.terminate(sid)
    scene.terminate_machine(f"{user}-vm")


# -- shipped expressions -----------------------------------------------------------------------


def rule_files() -> list[Path]:
    """deploy/prometheus files holding rule groups (scrape configs and promtool tests skipped).

    The fleet's (deploy/prometheus/fleet) read what the fleet rules record at a central store:
    tests/fleet evaluates them there.
    """
    if not RULES_DIR.is_dir():
        return []
    out = []
    for p in sorted([*RULES_DIR.rglob("*.yml"), *RULES_DIR.rglob("*.yaml")]):
        if p.is_relative_to(FLEET_DIR):
            continue
        doc = yaml.safe_load(p.read_text())
        if isinstance(doc, dict) and isinstance(doc.get("groups"), list):
            out.append(p)
    return out


def rule_exprs() -> list[tuple[str, str, str]]:
    """(where, kind, expr) for every rule in rule_files()."""
    out = []
    for p in rule_files():
        for group in yaml.safe_load(p.read_text())["groups"]:
            for rule in group.get("rules", []):
                kind = "alert" if "alert" in rule else "record"
                name = rule.get("alert") or rule.get("record")
                out.append((f"{p.relative_to(REPO_ROOT)}:{name}", kind, str(rule["expr"])))
    return out


def _walk_exprs(node: Any, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        expr = node.get("expr")
        if isinstance(expr, str) and expr.strip():
            yield where + f":{node.get('refId', '?')}", expr
        title = node.get("title")
        for k, v in node.items():
            yield from _walk_exprs(v, f"{where}/{title}" if isinstance(title, str) and
                                   k in ("targets",) else where)
    elif isinstance(node, list):
        for v in node:
            yield from _walk_exprs(v, where)


def dashboard_exprs() -> list[tuple[str, str]]:
    """(where, expr) for every panel query in grafana/**/*.json but the fleet dashboard's (on
    the fleet's recorded series: tests/fleet/test_fleet_dashboard.py)."""
    if not GRAFANA_DIR.is_dir():
        return []
    out: list[tuple[str, str]] = []
    for p in sorted(GRAFANA_DIR.rglob("*.json")):
        if p.name == FLEET_DASHBOARD:
            continue
        try:
            doc = json.loads(p.read_text())
        except json.JSONDecodeError:
            continue
        out.extend(_walk_exprs(doc, str(p.relative_to(REPO_ROOT))))
    return out


_GRAFANA_VARS = {
    "$__rate_interval": "1m", "${__rate_interval}": "1m", "$__interval": "1m",
    "${__interval}": "1m", "$__range": "5m", "${__range}": "5m",
}


def grafana_to_promql(expr: str) -> str:
    """Substitute Grafana's built-in and template variables so Prometheus can run the query."""
    for k, v in _GRAFANA_VARS.items():
        expr = expr.replace(k, v)
    # Template variables in matchers: {job="$job"} / {instance=~"$instance"} -> match anything.
    expr = re.sub(r'=~?\s*"\$\{?\w+(:\w+)?\}?"', '=~".*"', expr)
    return expr


_KEYWORDS = frozenset({
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
    "unless", "offset", "inf", "nan", "atan2",
    # aggregation operators, which may be followed by "by (...)" before their "(":
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile",
})
_LABEL_LIST_AFTER = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})


def selectors(expr: str) -> list[str]:
    """Every vector selector in a PromQL expression (``name{...}`` with its ``[range]``).

    When an alert's condition is false in the scenario, each selector must still return data:
    that proves every metric name and label matcher it relies on exists.
    """
    out: list[str] = []
    i, n = 0, len(expr)

    def skip_string(j: int) -> int:
        q = expr[j]
        j += 1
        while j < n and expr[j] != q:
            j += 2 if expr[j] == "\\" else 1
        return j + 1

    def group(j: int, open_: str, close: str) -> int:
        depth = 0
        while j < n:
            if expr[j] in "\"'`":
                j = skip_string(j)
                continue
            if expr[j] == open_:
                depth += 1
            elif expr[j] == close:
                depth -= 1
                if depth == 0:
                    return j + 1
            j += 1
        return j

    while i < n:
        ch = expr[i]
        if ch in "\"'`":
            i = skip_string(i)
        elif ch == "#":
            while i < n and expr[i] != "\n":
                i += 1
        elif ch.isalpha() or ch in "_:":
            j = i
            while j < n and (expr[j].isalnum() or expr[j] in "_:"):
                j += 1
            word = expr[i:j]
            k = j
            while k < n and expr[k].isspace():
                k += 1
            if word in _LABEL_LIST_AFTER and k < n and expr[k] == "(":
                i = group(k, "(", ")")
            elif word.lower() in _KEYWORDS or (k < n and expr[k] == "("):
                i = j
            else:
                end = group(k, "{", "}") if k < n and expr[k] == "{" else j
                m = end
                while m < n and expr[m].isspace():
                    m += 1
                if m < n and expr[m] == "[":
                    end = group(m, "[", "]")
                out.append(expr[i:end])
                i = end
        elif ch.isdigit():
            while i < n and (expr[i].isalnum() or expr[i] in "."):
                i += 1
        elif ch == "[":
            i = group(i, "[", "]")  # a subquery's or range's duration
        else:
            i += 1
    return out


@pytest.fixture
def busy_scene(scene: Scene, exporter: Service) -> Iterator[None]:
    """Something of everything, so that rules about sessions, machines and users have data.

    Built for the alerts (with the labelled job's kiosk="true", remote_logins="forbidden"):
    a remote session (RemoteSessionOnForbiddenHost) and a greeter in front on seat0
    (KioskSeatWithoutUserSession) make them fire; the rest must at least find their data.
    """
    user = scene.add_user("q")
    made = [scene.pam_session(user), scene.remote_session(user),
            scene.pam_session(user, session_type="x11", session_class="user", seat="seat0"),
            scene.closing_session(scene.add_user("qc")),
            scene.pam_session(scene.add_user("qg"), session_type="x11",
                              session_class="greeter", seat="seat0")]
    scene.register_machine(f"{user}-vm", "vm")
    scene.register_machine(f"{user}-ct", "container")
    gone = scene.pam_session(user)
    scene.terminate(gone)  # so counters and the duration histogram have moved
    scene.wait_session_gone(gone)
    assert_agrees(scene, EXPORTER_PORT)
    yield
    for sid in made:
        scene.stop_scope(sid)
    scene.terminate_machine(f"{user}-vm")
    scene.terminate_machine(f"{user}-ct")


def _missing(prometheus: Prometheus, expr: str, alert: bool) -> str | None:
    """None when ``expr`` (or, for an alert, each of its selectors) returns data."""
    if prometheus.query(expr):
        return None
    if not alert:
        return "returned no data"
    empty = [sel for sel in selectors(expr) if not prometheus.query(sel)]
    if empty:
        return f"condition false and these selectors return no data: {empty}"
    return None


def test_every_shipped_rule_and_dashboard_expression_parses_and_returns_data(
    busy_scene: None, prometheus: Prometheus
) -> None:
    """deploy/prometheus/*.yml rules and grafana/**/*.json panel queries, against this
    Prometheus in busy_scene. Fails (does not skip) when any expression returns nothing."""
    rules = rule_exprs()
    panels = dashboard_exprs()
    if not rules and not panels:
        pytest.skip("no rule files in deploy/prometheus and no dashboards in grafana yet")
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing (Debian package prometheus)"
    files = rule_files()
    if files:
        r = subprocess.run([promtool, "check", "rules", *map(str, files)],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
        # The same rules, evaluated every second instead of every minute.
        fast = []
        for p in files:
            doc = yaml.safe_load(p.read_text())
            for g in doc["groups"]:
                g["interval"] = "1s"
            copy = prometheus.dir / p.name
            copy.write_text(yaml.safe_dump(doc))
            fast.append(copy)
        prometheus.rule_files = fast
        prometheus.reload()

    # Range functions need a few samples: wait until the exporter has been scraped for 5 s.
    wait_until(lambda: prometheus.query("count_over_time(logind_up[1m]) >= 5") or None,
               timeout=20, interval=0.5, what="five samples in Prometheus")
    todo = [(where, expr, kind == "alert") for where, kind, expr in rules]
    todo += [(where, grafana_to_promql(expr), False) for where, expr in panels]
    # Recording rules feed each other (evaluated every second here): poll a little.
    deadline = time.monotonic() + 20
    while True:
        failures = [f"{where}: {expr!r}: {why}" for where, expr, alert in todo
                    if (why := _missing(prometheus, expr, alert)) is not None]
        if not failures or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert not failures, "\n".join(failures)
    if files:
        # Prometheus itself loaded and evaluated every group without an error.
        groups = prometheus.rules()
        bad = [(g["name"], r["name"], r.get("lastError")) for g in groups for r in g["rules"]
               if r.get("health") == "err"]
        assert not bad, bad


def test_selectors_finds_every_vector_selector() -> None:
    assert selectors("absent(up{job=\"x\"})") == ['up{job="x"}']
    assert selectors('sum without (a, b) (rate(x_total{a="b>c"}[5m])) > bool 3') == [
        'x_total{a="b>c"}[5m]']
    assert selectors("(a == 0 or on (job) b:rec > 0) and on (job) c == 1") == ["a", "b:rec", "c"]
    assert selectors("max_over_time(up[1h]) == 1 unless on (s) up offset 5m") == [
        "up[1h]", "up"]
    assert grafana_to_promql('rate(x{job="$job"}[$__rate_interval])') == 'rate(x{job=~".*"}[1m])'
