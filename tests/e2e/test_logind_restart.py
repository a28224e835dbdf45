"""Stopping, starting and restarting systemd-logind under a running exporter (never restarted
itself), on every release the suite boots.

logind_up follows systemd's invocation link of systemd-logind.service: 0 within a second of a
stop, 1 again at start, and each start after the exporter's first view is counted in
logind_restarts_total. A stopped logind leaves /run/systemd/{sessions,seats,users} in place, so
the sessions stay on /metrics (they still exist), and a session that ends meanwhile is counted
only when the new logind drops its file. While logind is stopped nothing here may talk to
org.freedesktop.login1 (loginctl, busctl): D-Bus activation would start it again.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest

from tests.e2e.checks import assert_agrees, wait_for_session
from tests.e2e.container import Container
from tests.e2e.scenario import EXPORTER_PORT, Exposition, Scene, Service, scrape, wait_until

pytestmark = pytest.mark.e2e

SESSION_KEYS = ("seat", "remote", "type", "class", "state")
VISIBLE = 1.0  # seconds from a change inside to /metrics, with no scrape or signal to help


def _logins(exposition: Exposition) -> Counter[tuple[str, ...]]:
    """Sessions by labels, without the service managers' own sessions (manager*)."""
    return Counter({k: v for k, v in exposition.nonzero("logind_sessions", SESSION_KEYS).items()
                    if not k[3].startswith("manager")})


def _visible(what: str, probe_value: str, want: float, started: float) -> Exposition:
    """Wait until /metrics shows ``probe_value`` == ``want``; fail when that took over VISIBLE
    seconds after ``started`` (time.monotonic())."""
    exp = wait_until(lambda: e if (e := scrape(EXPORTER_PORT)).value(probe_value) == want
                     else None, timeout=5, interval=0.01, what=what)
    took = time.monotonic() - started
    assert took <= VISIBLE, f"{what} took {took:.3f}s to reach /metrics"
    return exp


def _systemctl(container: Container, verb: str) -> float:
    """Run ``systemctl VERB systemd-logind`` inside; return when it returned (monotonic)."""
    container.systemctl(verb, "systemd-logind")
    return time.monotonic()


def test_numbers_are_right_after_logind_restart(scene: Scene, container: Container,
                                                exporter: Service) -> None:
    user = scene.add_user("rs")
    sessions = [scene.pam_session(user),
                scene.pam_session(user, session_type="x11", session_class="user", seat="seat0")]
    before = assert_agrees(scene, EXPORTER_PORT)
    restarts = before.value("logind_restarts_total")
    assert before.value("logind_exporter_liveness_rule", rule="unit") == 1

    done = _systemctl(container, "restart")
    _visible("logind_restarts_total + 1", "logind_restarts_total", restarts + 1, done)
    after = assert_agrees(scene, EXPORTER_PORT, timeout=10)
    assert after.value("logind_up") == 1
    # The login sessions survive; each user's service-manager session (class manager, 256+)
    # may be re-registered by the new logind, and assert_agrees already compared it.
    assert _logins(after) == _logins(before)
    assert exporter.is_active()

    # The monitor still sees changes made by the new logind.
    sid = scene.pam_session(scene.add_user("rs"))
    wait_for_session(EXPORTER_PORT, sid)
    assert_agrees(scene, EXPORTER_PORT)
    for session in [*sessions, sid]:
        scene.stop_scope(session)


def test_stop_drops_logind_up_keeps_sessions_and_start_counts_the_ended_one(
    scene: Scene, container: Container, exporter: Service
) -> None:
    user = scene.add_user("st")
    doomed = scene.pam_session(user)
    s = scene.truth.session(doomed)
    labels = {"seat": "", "remote": "false", "type": s.type, "class": s.session_class}
    ids_before = {t.id for t in scene.truth.sessions() if t.key[:4] == s.key[:4]}
    before = assert_agrees(scene, EXPORTER_PORT)
    restarts = before.value("logind_restarts_total")

    done = _systemctl(container, "stop")
    try:
        during = _visible("logind_up 0 after stop", "logind_up", 0, done)
        assert container.run(["systemctl", "is-active", "systemd-logind"],
                             check=False).stdout.strip() == "inactive"
        # Its files stay, so the sessions are still served: they still exist.
        assert during.nonzero("logind_sessions", SESSION_KEYS) == before.nonzero(
            "logind_sessions", SESSION_KEYS)
        # The session's processes go away while nobody is there to record it. (On 257 and
        # newer, pam_systemd closing the session D-Bus-activates logind again: then the
        # exporter must say so, and count that start.)
        container.run(["systemctl", "stop", f"session-{doomed}.scope"])
        activated = container.run(["systemctl", "is-active", "systemd-logind"],
                                  check=False).stdout.strip() == "active"
        during = _visible("logind_up after the scope stopped", "logind_up",
                          1 if activated else 0, time.monotonic())
        assert during.value("logind_restarts_total") == restarts + (1 if activated else 0)
        if not activated:
            assert container.run(["test", "-f", f"/run/systemd/sessions/{doomed}"]
                                 ).returncode == 0
            assert during.value("logind_session_ends_total", **labels) == before.value(
                "logind_session_ends_total", **labels)
        assert exporter.is_active()
    finally:
        done = _systemctl(container, "start")
    _visible("logind_up 1 after start", "logind_up", 1, done)
    assert scrape(EXPORTER_PORT).value("logind_restarts_total") == restarts + 1

    # logind finds the scope gone, drops the session and rewrites its files.
    wait_until(lambda: container.run(["test", "-e", f"/run/systemd/sessions/{doomed}"],
                                     check=False).returncode != 0 or None,
               timeout=10, what="logind to drop the dead session")
    after = assert_agrees(scene, EXPORTER_PORT, timeout=10)
    ids_after = {t.id for t in scene.truth.sessions() if t.key[:4] == s.key[:4]}
    ended = ids_before - ids_after
    assert doomed in ended
    # Every session of these labels the new logind no longer has was counted as ended once
    # (newer releases may also drop sessions they cannot re-attach after a restart).
    assert after.value("logind_session_ends_total", **labels) == before.value(
        "logind_session_ends_total", **labels) + len(ended)
    sid = scene.pam_session(user)
    wait_for_session(EXPORTER_PORT, sid)
    assert_agrees(scene, EXPORTER_PORT)
    scene.stop_scope(sid)
