"""The benchmarks' fast line scan agrees with prometheus_client's parser (tests/support)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from tests.support.exposition import Exposition, parse_samples, samples, total


def _exposition() -> str:
    registry = CollectorRegistry()
    sessions = Gauge("logind_sessions", "s", ["seat", "state"], registry=registry)
    sessions.labels("seat0", "active").set(3)
    sessions.labels("seat0", "online").set(2)
    sessions.labels('odd "seat"\\', "online").set(5)  # escaped quote and backslash
    # A name that starts with the other: the scan must not add it in.
    Counter("logind_sessions_started", "c", registry=registry).inc(7)
    return generate_latest(registry).decode()


def test_total_agrees_with_the_full_parser() -> None:
    text = _exposition()
    parsed = parse_samples(text)
    for want in ({}, {"state": "online"}, {"seat": "seat0"}, {"seat": 'odd "seat"\\'}):
        expected = sum(
            value for (name, labels), value in parsed.items()
            if name == "logind_sessions" and set(want.items()) <= labels
        )  # fmt: skip
        # The scan leaves label values escaped as the text has them.
        escaped = {k: v.replace("\\", "\\\\").replace('"', '\\"') for k, v in want.items()}
        assert total(text, "logind_sessions", **escaped) == expected, want
    assert total(text, "logind_sessions") == 10
    assert [value for _, value in samples(text, "logind_sessions_started_total")] == [7.0]


def test_exposition_reads_values_and_absent_series() -> None:
    exposition = Exposition.parse(_exposition())
    assert exposition.get("logind_sessions", seat="seat0", state="active") == 3
    assert exposition.get("logind_sessions", seat="seat9", state="active") is None
    assert exposition.value("logind_sessions", seat="seat9", state="active") == 0.0
    assert exposition.nonzero("logind_sessions", ["state"]) == {("active",): 3, ("online",): 7}
