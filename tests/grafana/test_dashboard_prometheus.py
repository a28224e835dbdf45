"""Every panel query of the dashboard parses and returns data on a real Prometheus that scrapes
the real exporter, which reads the real-252 fixture tree plus some churn in a private
/run/systemd (sessions and machines come and go, so counters and histograms have data)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from tests.grafana import support
from tests.support.exporter import free_port, start_exporter
from tests.support.logind_state import LogindState
from tests.support.prometheus import JOB, Prometheus

# What Grafana would put in for a short time range on a 1s scrape interval.
GRAFANA_VARIABLES = {"__rate_interval": "1m", "__interval": "1m", "__range": "5m"}
FIRST_SAMPLE_TIMEOUT = 20.0  # the first scrape comes after Prometheus' ~5 s target batching
STEP_TIMEOUT = 8.0


@pytest.fixture
def stack(real_252: LogindState) -> Iterator[tuple[LogindState, Prometheus, str]]:
    """The exporter on real-252 plus a kiosk seat1, and a Prometheus scraping it every second."""
    real_252.seat("seat1", can_tty=False)  # a kiosk seat, nobody on it yet
    exporter = start_exporter(ready_path="/-/ready")
    instance = f"127.0.0.1:{exporter.port}"
    try:
        with Prometheus(free_port(), [instance]).start() as prom:
            prom.wait(lambda: prom.total(f'logind_up{{job="{JOB}"}}') == 1,
                      FIRST_SAMPLE_TIMEOUT, "the first scrape of the exporter")  # fmt: skip
            yield real_252, prom, instance
            assert exporter.process.poll() is None, "the exporter exited"
    finally:
        exporter.stop()


def _kiosk_login(state: LogindState, session: str, uid: int) -> None:
    """A kiosk user logs in on seat1 (x11, class user), as logind would record it."""
    state.user(uid, sessions=[session], seats=["seat1"])
    state.session(session, uid=uid, seat="seat1", type="x11", vtnr=7, is_display=True)
    state.seat("seat1", sessions=[(session, uid)], active=session, can_tty=False)


def _kiosk_logout(state: LogindState, session: str, uid: int) -> None:
    state.remove("sessions", session)
    state.remove("users", str(uid))
    state.seat("seat1", can_tty=False)


def test_every_panel_query_returns_data_on_real_prometheus(
    stack: tuple[LogindState, Prometheus, str],
) -> None:
    state, prom, instance = stack
    sel = f'{{job="{JOB}"}}'

    def reaches(expr: str, value: float) -> Callable[[], bool]:
        return lambda: prom.total(expr) >= value

    def _wait_for(what: str, check: Callable[[], bool], timeout: float) -> None:
        prom.wait(check, timeout, what)

    # Churn in three steps, each seen by Prometheus before the next, so every counter series
    # exists before it increases again and rate() / histogram_quantile() have real values.
    _kiosk_login(state, "201", 2001)
    state.machine("ct2", leader=901)
    # A torn seat file (2 sessions, 1 uid): sd_seat_get_sessions fails with EUCLEAN, which the
    # exporter counts in logind_exporter_errors_total{kind="read"}.
    state.seat("seat2", sessions=[("298", 2998), ("299", 2999)], uids=[2998])
    _wait_for("a login", reaches(f"logind_session_starts_total{sel}", 1), STEP_TIMEOUT)
    _wait_for("a machine start", reaches(f"logind_machine_starts_total{sel}", 1), STEP_TIMEOUT)
    _wait_for("a read error", reaches(f"logind_exporter_errors_total{sel}", 1), STEP_TIMEOUT)

    _kiosk_logout(state, "201", 2001)
    _kiosk_login(state, "202", 2002)
    state.remove_machine("ct2")
    state.machine("ct3", leader=902)
    _wait_for("a logout", reaches(f"logind_session_ends_total{sel}", 1), STEP_TIMEOUT)
    _wait_for("a second login", reaches(f"logind_session_starts_total{sel}", 2), STEP_TIMEOUT)
    _wait_for("a machine stop", reaches(f"logind_machine_stops_total{sel}", 1), STEP_TIMEOUT)

    _kiosk_logout(state, "202", 2002)
    state.remove_machine("ct3")
    _wait_for("a second logout", reaches(f"logind_session_ends_total{sel}", 2), STEP_TIMEOUT)
    _wait_for("a second machine stop", reaches(f"logind_machine_stops_total{sel}", 2), STEP_TIMEOUT)

    dashboard = support.load()
    variables = {"job": JOB, "instance": instance, **GRAFANA_VARIABLES}

    # The template variables list this job and this instance.
    for name, query in support.variable_queries(dashboard).items():
        match = support.LABEL_VALUES.match(query)
        assert match, f"variable {name}: not a label_values() query: {query}"
        selector = support.substitute(match["selector"], variables)
        values = prom.api(f"label/{match['label']}/values", **{"match[]": selector})
        assert variables[name] in values, f"variable {name}: {query} gave {values}"

    # The bus row needs logind on a system bus: tests/e2e/test_dbus.py evaluates it there.
    targets = [t for row, found in support.targets_by_row(dashboard).items()
               if row != support.PRESENCE_ROW for t in found]
    assert targets

    def evaluate(target: support.Target) -> str | None:
        """Return why the target fails, or None when it returns data."""
        try:
            data = support.evaluate(prom, target, variables)
        except AssertionError as e:
            return f"does not evaluate: {e}"
        if not data["result"]:
            return "returns no data"
        if not support.finite_values(data):
            return f"returns only NaN/Inf: {data['result']}"
        return None

    # Rates need two samples of each new series inside the window: poll briefly for stragglers.
    deadline = time.monotonic() + 10
    failures: dict[support.Target, str] = {}
    pending = list(targets)
    while True:
        failures = {t: why for t in pending if (why := evaluate(t)) is not None}
        unparsable = any(why.startswith("does not evaluate") for why in failures.values())
        if not failures or unparsable or time.monotonic() > deadline:
            break
        pending = list(failures)
        time.sleep(0.5)
    assert not failures, f"{len(failures)} of {len(targets)} dashboard queries fail:\n" + "\n".join(
        f"{t}\n    -> {why}" for t, why in failures.items()
    )
