"""deploy/prometheus/fleet's rules and alerts: promtool checks them and runs their unit tests,
and the unit tests notice each alert broken (never firing, another severity, `for:` longer or
shorter, a threshold made inclusive)."""

from __future__ import annotations

import copy
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.tools import describe, find_tool, run
from tests.support import fleet

UNIT_TESTS = fleet.FLEET / "tests" / "fleet.test.yml"


def promtool(*args: str) -> tuple[int, str]:
    proc = run([find_tool("promtool"), *args])
    return proc.returncode, describe(proc)


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(fleet.ALERTS.read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


@pytest.mark.parametrize("path", [fleet.RULES, fleet.ALERTS], ids=lambda p: p.name)
def test_promtool_check_rules(path: Path) -> None:
    status, out = promtool("check", "rules", str(path))
    assert status == 0 and "SUCCESS" in out, out


def test_unit_tests_pass() -> None:
    status, out = promtool("test", "rules", str(UNIT_TESTS))
    assert status == 0 and "SUCCESS" in out, out


def test_every_rule_and_alert_is_tested() -> None:
    doc = yaml.safe_load(UNIT_TESTS.read_text())
    text = UNIT_TESTS.read_text()
    records = [r["record"] for g in yaml.safe_load(fleet.RULES.read_text())["groups"]
               for r in g["rules"]]  # fmt: skip
    assert [r for r in records if r not in text] == [], "recording rules no test evaluates"
    firing: set[str] = set()
    silent: set[str] = set()
    for case in doc["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {r["alert"] for r in alert_rules()}
    assert names - firing == set() and names - silent == set()


def test_no_rule_keeps_a_per_session_or_per_user_label() -> None:
    # Every aggregation names what it keeps; none of those may identify a session or a user.
    text = fleet.RULES.read_text() + fleet.ALERTS.read_text()
    kept = {label.strip() for group in re.findall(r"\bby \(([^)]*)\)", text)
            for label in group.split(",")}  # fmt: skip
    assert kept & fleet.PRIVATE_LABELS == set()
    assert kept <= {"site", "pool", "kiosk", "job", "instance", "seat", "class", "type"}


def _mutations(rule: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    silent = copy.deepcopy(rule)
    silent["expr"] = f"({rule['expr']}) unless on () vector(1)"
    out["never fires"] = silent
    severity = copy.deepcopy(rule)
    severity["labels"]["severity"] = "page"
    out["other severity"] = severity
    minutes = int(re.fullmatch(r"(\d+)m", rule["for"]).group(1))  # type: ignore[union-attr]
    for what, value in (("longer for", f"{minutes * 2}m"), ("shorter for", f"{minutes * 30}s")):
        changed = copy.deepcopy(rule)
        changed["for"] = value
        out[what] = changed
    if re.fullmatch(r"\S+ > [0-9.]+", rule["expr"].strip()):  # the share alerts' thresholds
        inclusive = copy.deepcopy(rule)
        inclusive["expr"] = rule["expr"].replace(" > ", " >= ")
        out["inclusive threshold"] = inclusive
    return out


def _lay_out(base: Path, alerts: list[dict[str, Any]]) -> Path:
    (base / "tests").mkdir(parents=True)
    shutil.copy2(fleet.RULES, base / fleet.RULES.name)
    doc = yaml.safe_load(fleet.ALERTS.read_text())
    doc["groups"][0]["rules"] = alerts
    (base / fleet.ALERTS.name).write_text(yaml.safe_dump(doc, sort_keys=False))
    shutil.copy2(UNIT_TESTS, base / "tests" / UNIT_TESTS.name)
    return base / "tests" / UNIT_TESTS.name


def test_unit_tests_catch_each_alert_broken(tmp_path: Path) -> None:
    rules = alert_rules()
    control = _lay_out(tmp_path / "control", rules)
    mutants: list[tuple[str, Path]] = []
    for i, rule in enumerate(rules):
        for j, (what, mutant) in enumerate(_mutations(rule).items()):
            changed = [mutant if k == i else r for k, r in enumerate(rules)]
            mutants.append((f"{rule['alert']}: {what}", _lay_out(tmp_path / f"m{i}-{j}", changed)))
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda p: promtool("test", "rules", str(p)),
                                [control] + [p for _, p in mutants]))  # fmt: skip
    assert results[0][0] == 0, f"the round trip alone fails:\n{results[0][1]}"
    survivors = [what for (what, _), (status, _out) in zip(mutants, results[1:], strict=True)
                 if status == 0]  # fmt: skip
    assert survivors == [], "mutations the unit tests did not notice"
