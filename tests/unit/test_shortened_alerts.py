"""tests/support/alerts.py: exactly what the shortened alert file changes, and nothing else."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.support import alerts


def _rules(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {alerts.rule_name(r): r for g in doc["groups"] for r in g["rules"]}


def _differences(before: dict[str, Any], after: dict[str, Any]) -> set[tuple[str, str, str, str]]:
    """(rule, field, before, after) for every field of every rule that differs."""
    old, new = _rules(before), _rules(after)
    assert old.keys() == new.keys()
    out = set()
    for name, rule in old.items():
        for field in rule.keys() | new[name].keys():
            if rule.get(field) != new[name].get(field):
                out.add((name, field, str(rule.get(field)), str(new[name].get(field))))
    return out


def test_only_for_and_the_listed_thresholds_change() -> None:
    shipped = alerts.shipped()
    short = alerts.shorten(shipped)
    expected = {(name, "for", rule["for"], alerts.FOR)
                for name, rule in _rules(shipped).items() if "for" in rule}  # fmt: skip
    for t in alerts.THRESHOLDS:
        expr = str(_rules(shipped)[t.rule]["expr"])
        expected.add((t.rule, "expr", expr, expr.replace(t.shipped, t.short)))
    assert _differences(shipped, short) == expected
    # The group layout and everything outside the rules stay as shipped.
    assert [(g["name"], len(g["rules"])) for g in short["groups"]] == [
        (g["name"], len(g["rules"])) for g in shipped["groups"]]
    assert {k: v for k, v in short.items() if k != "groups"} == {
        k: v for k, v in shipped.items() if k != "groups"}
    assert _rules(shipped) != _rules(short)  # the shipped document itself was not changed


def test_what_the_shortened_file_says() -> None:
    rules = _rules(alerts.shorten(alerts.shipped()))
    assert rules["kiosk:idle_threshold_seconds"]["expr"] == "vector(5)"
    assert rules["LogindRestarting"]["expr"] == (
        "logind_restarts_total - min_over_time(logind_restarts_total[45s]) > 3")
    assert "> 12" in rules["InhibitorBlockingForADay"]["expr"]
    assert "[3s]" in rules["RemoteSessionOnForbiddenHost"]["expr"]
    assert {r["for"] for r in rules.values() if "for" in r} == {"3s"}
    # Every alert that waits in the shipped file still waits (for: is never dropped).
    assert {n for n, r in _rules(alerts.shipped()).items() if "for" in r} == {
        n for n, r in rules.items() if "for" in r}


@pytest.mark.parametrize("edit", ["gone", "twice"])
def test_a_threshold_edited_in_the_shipped_file_is_refused(edit: str) -> None:
    doc = copy.deepcopy(alerts.shipped())
    rule = _rules(doc)["InhibitorBlockingForADay"]
    if edit == "gone":
        rule["expr"] = rule["expr"].replace("> 86400", "> 172800")
    else:
        rule["expr"] = f"{rule['expr']} > 86400"
    with pytest.raises(ValueError, match="InhibitorBlockingForADay: '> 86400' occurs"):
        alerts.shorten(doc)


def test_a_missing_rule_is_refused() -> None:
    doc = copy.deepcopy(alerts.shipped())
    for group in doc["groups"]:
        group["rules"] = [r for r in group["rules"] if r.get("alert") != "LogindRestarting"]
    with pytest.raises(ValueError, match="no rule LogindRestarting"):
        alerts.shorten(doc)
