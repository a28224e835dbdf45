"""The shipped alert file, shortened for tests that wait for alerts in real time.

deploy/prometheus/login-exporter-alerts.yml waits minutes (``for:``) and hours (thresholds)
before an alert fires. A test that makes the cause happen for real cannot wait that long, so it
loads this transformation of the file instead. What changes, and nothing else (the unit test
tests/unit/test_shortened_alerts.py compares every rule field by field):

- every ``for:`` becomes ``FOR`` (3 s; the shipped ones are 5 min to 1 h);
- each threshold in ``THRESHOLDS``: its text, as written in that rule's expression, replaced by
  a shorter one. The text must occur exactly once in the rule's expression (``ValueError``
  otherwise), so an edit of a shipped threshold fails here until this table follows it.

Expressions are otherwise untouched: every operator, matcher and label stays, and a rule not
listed keeps its expression byte for byte. Names, labels, annotations and group layout stay too.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
ALERTS = REPO_ROOT / "deploy" / "prometheus" / "login-exporter-alerts.yml"

FOR = "3s"


@dataclass(frozen=True)
class Threshold:
    """``shipped`` (text in the expression of the rule named ``rule``) becomes ``short``."""

    rule: str  # an alert's name, or a recording rule's
    shipped: str
    short: str
    meaning: str


THRESHOLDS = (
    Threshold("kiosk:idle_threshold_seconds", "vector(4 * 3600)", "vector(5)",
              "KioskSeatIdle's default: a kiosk seat idle for 4 h -> 5 s"),
    Threshold("InhibitorBlockingForADay", "> 86400", "> 12",
              "a shutdown or sleep block lock held for a day -> 12 s"),
    Threshold("RemoteSessionOnForbiddenHost", "[10m]", "[3s]",
              "how long a remote session that ended still alerts: 10 min -> 3 s"),
    Threshold("LogindRestarting", "[1h]", "[45s]",
              "the hour in which more than 3 logind restarts alert -> 45 s"),
)  # fmt: skip


def rule_name(rule: dict[str, Any]) -> str:
    """An alerting rule's ``alert`` or a recording rule's ``record``."""
    return str(rule.get("alert") or rule["record"])


def shorten(doc: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of the rule file ``doc`` (as yaml.safe_load gives it) with every ``for:``
    set to FOR and every threshold of THRESHOLDS replaced; ``doc`` is left as it was.

    Raises ValueError when a threshold's rule is missing, or its text does not occur exactly
    once in that rule's expression.
    """
    out = copy.deepcopy(doc)
    by_name = {rule_name(r): r for g in out["groups"] for r in g["rules"]}
    for threshold in THRESHOLDS:
        rule = by_name.get(threshold.rule)
        if rule is None:
            raise ValueError(f"no rule {threshold.rule} in the alert file")
        expr = str(rule["expr"])
        if expr.count(threshold.shipped) != 1:
            raise ValueError(f"{threshold.rule}: {threshold.shipped!r} occurs "
                             f"{expr.count(threshold.shipped)} times in its expression, not once:"
                             f" update tests/support/alerts.py THRESHOLDS")  # fmt: skip
        rule["expr"] = expr.replace(threshold.shipped, threshold.short)
    for rule in by_name.values():
        if "for" in rule:
            rule["for"] = FOR
    return out


def shipped() -> dict[str, Any]:
    """The shipped alert file, parsed."""
    doc: dict[str, Any] = yaml.safe_load(ALERTS.read_text())
    return doc


def write_shortened(directory: Path) -> Path:
    """Write the shortened alert file into ``directory``; return its path."""
    path = directory / ALERTS.name
    path.write_text(yaml.safe_dump(shorten(shipped()), sort_keys=False))
    return path
