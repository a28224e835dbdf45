"""deploy/prometheus: promtool checks the rules and scrape configs and runs the rule unit tests.

Beyond a green `promtool test rules`, every alert is mutated (its expression made silent, its
`for:` lengthened and shortened, its severity changed) and the unit tests must then fail: a
test file that still passed would not be pinning that alert.
"""

from __future__ import annotations

import copy
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.tools import DEPLOY, describe, find_tool, run

PROM = DEPLOY / "prometheus"
ALERTS = PROM / "login-exporter-alerts.yml"
RULES = PROM / "login-exporter-rules.yml"
UNIT_TESTS = PROM / "tests" / "login-exporter.test.yml"
# Per-site thresholds the unit tests load beside the shipped files (as README's "Kiosks" says).
SITE_THRESHOLDS = PROM / "tests" / "kiosk-site-thresholds.yml"
SCRAPE_CONFIGS = [PROM / "prometheus-static.yml", PROM / "prometheus-file-sd.yml"]
TARGET_LABELS = {"kiosk", "remote_logins", "greeter_idle", "machines"}


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


ALERT_NAMES = [r["alert"] for r in alert_rules()]


def promtool(*args: str, cwd: Path | None = None) -> tuple[int, str]:
    proc = run([find_tool("promtool"), *args], cwd=cwd)
    return proc.returncode, describe(proc)


def test_rule_files_pass_promtool_check_rules() -> None:
    for path in (RULES, ALERTS, SITE_THRESHOLDS):
        status, out = promtool("check", "rules", str(path))
        assert status == 0 and "SUCCESS" in out, out


@pytest.mark.parametrize("config", SCRAPE_CONFIGS, ids=lambda p: p.name)
def test_scrape_config_examples_pass_promtool_check_config(config: Path) -> None:
    # Also checks the rule files they load and, for file_sd, the target files in targets/.
    status, out = promtool("check", "config", config.name, cwd=PROM)
    assert status == 0 and "SUCCESS" in out, out


def test_file_sd_check_covers_the_target_files(tmp_path: Path) -> None:
    copy_dir = tmp_path / "prometheus"
    shutil.copytree(PROM, copy_dir)
    (copy_dir / "targets" / "login-exporter-broken.yml").write_text("- targets: ['not a host/x']\n")
    status, out = promtool("check", "config", "prometheus-file-sd.yml", cwd=copy_dir)
    assert status != 0, out


def test_rule_unit_tests_pass() -> None:
    status, out = promtool("test", "rules", str(UNIT_TESTS))
    assert status == 0 and "SUCCESS" in out, out


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    doc = yaml.safe_load(UNIT_TESTS.read_text())
    firing: set[str] = set()
    silent: set[str] = set()
    for case in doc["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    assert set(ALERT_NAMES) - firing == set(), "alerts never tested firing"
    assert set(ALERT_NAMES) - silent == set(), "alerts never tested silent"


def test_every_alert_has_a_severity_and_a_runbook_description() -> None:
    for rule in alert_rules():
        name = rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        assert rule["annotations"]["summary"], name
        description = rule["annotations"]["description"]
        assert len(description) > 200, f"{name}: description is no runbook"
        assert "Tune" in description or "tune" in description, f"{name}: says not how to tune"


def test_selector_labels_are_documented_in_both_scrape_configs() -> None:
    used = set(re.findall(r"\b(" + "|".join(TARGET_LABELS) + r')(?:!?=)"', ALERTS.read_text()))
    assert used == TARGET_LABELS
    for config in SCRAPE_CONFIGS:
        text = config.read_text()
        for label in TARGET_LABELS:
            assert label in text, f"{config.name} does not document {label}"


# -- mutations: the unit tests must notice each of these ---------------------------------------

def _duration_seconds(text: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([smh])", text))


def _mutations(rule: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    silent = copy.deepcopy(rule)
    silent["expr"] = f"({rule['expr']}) unless on () vector(1)"
    out["never fires"] = silent
    severity = copy.deepcopy(rule)
    severity["labels"]["severity"] = "page"
    out["other severity"] = severity
    hold = _duration_seconds(rule.get("for", "0s"))
    longer = copy.deepcopy(rule)
    longer["for"] = f"{max(2 * hold, 300)}s"
    out["longer for"] = longer
    if hold:
        shorter = copy.deepcopy(rule)
        shorter["for"] = f"{hold // 2}s"
        out["shorter for"] = shorter
    return out


def _lay_out(base: Path, alerts_doc: dict[str, Any], only: str | None = None) -> Path:
    """The rule files and unit tests under base; ``only``: just the test groups for that alert."""
    (base / "tests").mkdir(parents=True)
    shutil.copy2(RULES, base / RULES.name)
    shutil.copy2(SITE_THRESHOLDS, base / "tests" / SITE_THRESHOLDS.name)
    (base / ALERTS.name).write_text(yaml.safe_dump(alerts_doc, sort_keys=False))
    tests_doc = yaml.safe_load(UNIT_TESTS.read_text())
    if only is not None:  # the other groups cannot notice; leaving them out keeps this fast
        tests_doc["tests"] = [
            group
            for group in tests_doc["tests"]
            if any(c["alertname"] == only for c in group.get("alert_rule_test", []))
        ]
    test_file = base / "tests" / UNIT_TESTS.name
    test_file.write_text(yaml.safe_dump(tests_doc, sort_keys=False))
    return test_file


def _with_rule(name: str, replacement: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(ALERTS.read_text())
    for group in doc["groups"]:
        group["rules"] = [replacement if r.get("alert") == name else r for r in group["rules"]]
    return doc


def test_unit_tests_catch_broken_expressions_for_and_labels(tmp_path: Path) -> None:
    original = yaml.safe_load(ALERTS.read_text())
    controls: list[tuple[str, Path]] = []
    mutants: list[tuple[str, Path]] = []
    for i, rule in enumerate(alert_rules()):
        name = rule["alert"]
        # Control: the YAML round trip and the narrowing alone keep the tests green.
        controls.append((name, _lay_out(tmp_path / f"c{i}", original, only=name)))
        for j, (what, mutant) in enumerate(_mutations(rule).items()):
            test_file = _lay_out(tmp_path / f"m{i}-{j}", _with_rule(name, mutant), only=name)
            mutants.append((f"{name}: {what}", test_file))
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda job: promtool("test", "rules", str(job[1])),
                                controls + mutants))
    for (name, _), (status, out) in zip(controls, results, strict=False):
        assert status == 0, f"control for {name} fails:\n{out}"
    survivors = [
        what
        for (what, _), (status, _out) in zip(mutants, results[len(controls):], strict=True)
        if status == 0
    ]
    assert survivors == [], "mutations the unit tests did not notice"
