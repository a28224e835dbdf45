"""The bus families against the real logind on the container's own system bus (systemd 252).

Each step is made the way a desktop or an admin makes it (busctl as the session's own user,
loginctl, systemd-inhibit, shutdown), then the exporter must show what `busctl get-property`
answers within 1 s: no scrape triggers a read and nothing signals the exporter. The tests that
restart or stop logind and the bus come last and leave both running.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import pytest

from tests.e2e.bus_truth import BusTruth, as_user, assert_bus_agrees, session_path
from tests.e2e.checks import assert_agrees
from tests.e2e.container import Container
from tests.e2e.scenario import (
    EXPORTER_PORT,
    SPARE_EXPORTER_PORT,
    Scene,
    Service,
    exporter_service,
    scrape,
    unique,
    wait_until,
)
from tests.grafana import support as grafana
from tests.support.prometheus import JOB, Prometheus

pytestmark = pytest.mark.e2e

RECONNECT = 6.0  # back-off capped at 5 s, plus the reading


@pytest.fixture(scope="module")
def truth(container: Container) -> BusTruth:
    return BusTruth(container)


def _end(scene: Scene, sid: str) -> None:
    """End a session for good, so later tests find seat0 as they expect it."""
    scene.c.run(["systemctl", "stop", f"session-{sid}.scope"], check=False)
    scene.wait_session_gone(sid)


@pytest.fixture
def desk(scene: Scene) -> Iterator[tuple[str, str]]:
    """A graphical session on seat0 (idle hints need a graphical session): (user, path);
    ended afterwards."""
    user = scene.add_user("bus")
    sid = scene.pam_session(user, session_type="x11", session_class="user", seat="seat0")
    try:
        yield user, session_path(scene.c, sid)
    finally:
        _end(scene, sid)


def step(container: Container, *cmd: str) -> float:
    """Run a command inside; return time.monotonic() when it finished."""
    container.run(list(cmd))
    return time.monotonic()


def test_new_session_is_read_when_it_appears(scene: Scene, truth: BusTruth,
                                             exporter: Service) -> None:
    assert_bus_agrees(truth, EXPORTER_PORT, within=5)
    user = scene.add_user("bus")
    sid = scene.pam_session(user, session_type="wayland", session_class="greeter", seat="seat0")
    try:
        exp = assert_bus_agrees(truth, EXPORTER_PORT, since=time.monotonic())
        assert exp.get("logind_sessions_idle", seat="seat0", remote="false", type="wayland",
                       **{"class": "greeter"}) == 0.0
    finally:
        _end(scene, sid)
    assert_bus_agrees(truth, EXPORTER_PORT, since=time.monotonic())  # and when it goes


def test_idle_and_locked_hints_set_by_the_session_owner(
    container: Container, truth: BusTruth, desk: tuple[str, str], exporter: Service
) -> None:
    user, path = desk
    assert_bus_agrees(truth, EXPORTER_PORT, within=5)
    key = {"seat": "seat0", "remote": "false", "type": "x11", "class": "user"}
    before = scrape(EXPORTER_PORT)

    as_user(container, user, path, "SetIdleHint", True)
    exp = assert_bus_agrees(truth, EXPORTER_PORT, since=time.monotonic())
    assert exp.value("logind_sessions_idle", **key) == before.value(
        "logind_sessions_idle", **key) + 1

    as_user(container, user, path, "SetLockedHint", True)
    exp = assert_bus_agrees(truth, EXPORTER_PORT, since=time.monotonic())
    assert exp.value("logind_sessions_locked", **key) == before.value(
        "logind_sessions_locked", **key) + 1

    as_user(container, user, path, "SetIdleHint", False)
    assert_bus_agrees(truth, EXPORTER_PORT, since=time.monotonic())
    as_user(container, user, path, "SetLockedHint", False)
    exp = assert_bus_agrees(truth, EXPORTER_PORT, since=time.monotonic())
    assert exp.value("logind_sessions_locked", **key) == before.value(
        "logind_sessions_locked", **key)


def test_lock_and_unlock_session(container: Container, truth: BusTruth,
                                 desk: tuple[str, str], exporter: Service) -> None:
    # loginctl lock-session only asks the session to lock (the Lock signal); the hint is the
    # session's to set. Whatever logind then says, the exporter says the same.
    _, path = desk
    sid = container.run(["busctl", "get-property", "org.freedesktop.login1", path,
                         "org.freedesktop.login1.Session", "Id"]).stdout.split('"')[1]
    assert_bus_agrees(truth, EXPORTER_PORT, since=step(container, "loginctl", "lock-session",
                                                        sid))
    assert_bus_agrees(truth, EXPORTER_PORT, since=step(container, "loginctl", "unlock-session",
                                                        sid))


@pytest.fixture
def inhibitors(container: Container) -> Iterator[list[str]]:
    units: list[str] = []
    try:
        yield units
    finally:
        for unit in units:
            container.run(["systemctl", "stop", unit], check=False)


def test_inhibitors_delay_and_block(container: Container, truth: BusTruth,
                                    inhibitors: list[str], exporter: Service) -> None:
    assert_bus_agrees(truth, EXPORTER_PORT, within=5)
    for mode in ("delay", "block", "block"):  # the second block lock changes no property text
        unit = unique("e2e-inhibit-")
        inhibitors.append(unit)
        done = step(container, "systemd-run", "--quiet", f"--unit={unit}", "systemd-inhibit",
                    "--what=sleep:shutdown", f"--mode={mode}", "sleep", "600")
        wait_until(lambda: container.run(["systemd-inhibit", "--list", "--no-legend"])
                   .stdout.count("\n") >= len(inhibitors) or None, timeout=5,
                   what="the lock to be taken")
        exp = assert_bus_agrees(truth, EXPORTER_PORT, since=done)
    assert exp.value("logind_inhibitors", what="shutdown", mode="block") >= 2
    assert exp.value("logind_inhibitor_since_seconds", what="sleep", mode="delay") > 0
    for unit in list(inhibitors):
        assert_bus_agrees(truth, EXPORTER_PORT, since=step(container, "systemctl", "stop", unit))
        inhibitors.remove(unit)


def test_shutdown_scheduled_and_cancelled(container: Container, truth: BusTruth,
                                          exporter: Service) -> None:
    try:
        exp = assert_bus_agrees(truth, EXPORTER_PORT, since=step(container, "shutdown", "-h",
                                                                  "+60"))
        when = exp.value("logind_scheduled_shutdown_timestamp_seconds", type="poweroff")
        assert 3500 < when - time.time() < 3700
    finally:
        done = step(container, "shutdown", "-c")
    exp = assert_bus_agrees(truth, EXPORTER_PORT, since=done)
    assert exp.value("logind_scheduled_shutdown_timestamp_seconds", type="poweroff") == 0


def test_presence_dashboard_row_queries_return_data_on_real_prometheus(
    container: Container, desk: tuple[str, str], inhibitors: list[str], prometheus: Prometheus
) -> None:
    user, path = desk
    as_user(container, user, path, "SetIdleHint", True)
    unit = unique("e2e-inhibit-")
    inhibitors.append(unit)
    container.run(["systemd-run", "--quiet", f"--unit={unit}", "systemd-inhibit",
                   "--what=sleep:shutdown", "--mode=block", "sleep", "600"])
    container.run(["shutdown", "-r", "+90"])
    try:
        sel = f'{{job="{JOB}"}}'
        prometheus.wait(lambda: prometheus.total(f"logind_inhibitor_since_seconds{sel}") > 0
                        and prometheus.total(
                            f"logind_scheduled_shutdown_timestamp_seconds{sel}") > 0,
                        20, "a lock and a scheduled shutdown in Prometheus")
        dashboard = grafana.load()
        rows = grafana.targets_by_row(dashboard)
        targets = rows[grafana.PRESENCE_ROW]
        assert len(targets) >= 8
        variables = {"job": JOB, "instance": f"127.0.0.1:{EXPORTER_PORT}", "__rate_interval": "1m",
                     "__interval": "1m", "__range": "5m"}
        failures = []
        for target in targets:
            expr = grafana.substitute(target.expr, variables)
            now = time.time()
            if target.instant:
                data = prometheus.api("query", query=expr, time=f"{now:.3f}")
            else:
                data = prometheus.api("query_range", query=expr, start=f"{now - 30:.3f}",
                                      end=f"{now:.3f}", step="1")
            values = [float(v[1]) for r in data["result"]
                      for v in (r["values"] if "values" in r else [r["value"]])]
            if not any(math.isfinite(v) for v in values):
                failures.append(f"{target} -> {data['result']}")
        assert not failures, "\n".join(failures)
    finally:
        container.run(["shutdown", "-c"], check=False)
        as_user(container, user, path, "SetIdleHint", False)


def _logind_answers(container: Container) -> bool | None:
    r = container.run(["busctl", "get-property", "org.freedesktop.login1",
                       "/org/freedesktop/login1", "org.freedesktop.login1.Manager", "IdleHint"],
                      check=False)
    return True if r.returncode == 0 else None


def test_logind_restart(container: Container, scene: Scene, truth: BusTruth,
                        desk: tuple[str, str], exporter: Service) -> None:
    user, path = desk
    as_user(container, user, path, "SetLockedHint", True)
    assert_bus_agrees(truth, EXPORTER_PORT, since=time.monotonic())
    container.systemctl("restart", "systemd-logind")
    wait_until(lambda: _logind_answers(container), timeout=10, what="logind back on the bus")
    assert_bus_agrees(truth, EXPORTER_PORT, since=time.monotonic())
    # Signals of the new logind reach the exporter.
    as_user(container, user, path, "SetLockedHint", False)
    assert_bus_agrees(truth, EXPORTER_PORT, since=time.monotonic())
    assert_agrees(scene, EXPORTER_PORT)


def _bus_up(port: int, want: float) -> bool | None:
    return True if scrape(port).get("logind_dbus_up") == want else None


def _restore_bus(container: Container) -> None:
    """Start the bus and make sure logind is on it again. systemd 252 restarts logind when the
    bus comes back; 257 and 262 keep a logind that lost its bus running without it: an admin
    restarts it."""
    container.run(["systemctl", "start", "dbus.socket", "dbus.service"], check=False)
    container.run(["systemctl", "reset-failed", "systemd-logind"], check=False)
    container.run(["systemctl", "start", "systemd-logind"], check=False)
    try:
        wait_until(lambda: _logind_answers(container), timeout=5, what="logind back on the bus")
    except AssertionError:
        container.run(["systemctl", "restart", "systemd-logind"], check=False)
        wait_until(lambda: _logind_answers(container), timeout=20, what="logind back on the bus")


def test_bus_restart(container: Container, scene: Scene, truth: BusTruth,
                     exporter: Service) -> None:
    assert_bus_agrees(truth, EXPORTER_PORT, within=5)
    try:
        container.run(["systemctl", "restart", "dbus.service"])
        _restore_bus(container)
        # The exporter saw the connection drop (counted) and is exact again after reconnecting.
        assert_bus_agrees(truth, EXPORTER_PORT, within=RECONNECT)
        assert scrape(EXPORTER_PORT).value("logind_exporter_errors_total", kind="dbus") >= 1
    finally:
        _restore_bus(container)
    assert_agrees(scene, EXPORTER_PORT)
    assert exporter.is_active()


def test_exporter_started_before_the_bus(container: Container, scene: Scene,
                                         truth: BusTruth, exporter: Service) -> None:
    before = assert_agrees(scene, EXPORTER_PORT)  # loginctl needs the bus: ask it first
    keys = ("seat", "remote", "type", "class", "state")
    container.run(["systemctl", "stop", "dbus.socket", "dbus.service"])
    svc = exporter_service(container, SPARE_EXPORTER_PORT, "--collector.session-info")
    try:
        svc.start()
        wait_until(lambda: _bus_up(SPARE_EXPORTER_PORT, 0.0), timeout=20,
                   what="logind_dbus_up 0 without a bus")
        # Everything sd-login knows is served meanwhile; what only the bus knows is absent
        # (unknown, not 0).
        exp = scrape(SPARE_EXPORTER_PORT)
        assert exp.get("logind_up") is not None  # 0 on 252: logind stops with its bus
        assert exp.nonzero("logind_sessions", keys) == before.nonzero("logind_sessions", keys)
        assert exp.get("logind_idle") is None
        assert exp.get("logind_inhibitors", what="sleep", mode="block") is None
        _restore_bus(container)
        assert_bus_agrees(truth, SPARE_EXPORTER_PORT, within=RECONNECT)
        assert_agrees(scene, SPARE_EXPORTER_PORT)
        assert svc.is_active()
    finally:
        _restore_bus(container)
        svc.stop()
