"""Restarting or stopping systemd-logind under a running exporter (never restarted itself).

What the exporter reports while logind is stopped (systemd 252): exactly what it reported
before the stop. A stopped logind leaves /run/systemd/{sessions,seats,users} in place, so
through sd-login it looks like a running logind whose state stopped changing: logind_up stays 1
and a session that ends meanwhile is still counted until logind starts again, cleans it up and
rewrites its files, which the monitor sees. While logind is stopped nothing here may talk to
org.freedesktop.login1 (loginctl, busctl): D-Bus activation would start it again.
"""

from __future__ import annotations

import pytest

from tests.e2e.checks import assert_agrees, wait_for_session
from tests.e2e.container import Container
from tests.e2e.scenario import EXPORTER_PORT, Scene, Service, scrape, wait_until

pytestmark = pytest.mark.e2e

SESSION_KEYS = ("seat", "remote", "type", "class", "state")


def test_numbers_are_right_after_logind_restart(scene: Scene, container: Container,
                                                exporter: Service) -> None:
    user = scene.add_user("rs")
    scene.pam_session(user)
    scene.pam_session(user, session_type="x11", session_class="user", seat="seat0")
    before = assert_agrees(scene, EXPORTER_PORT)

    container.run(["systemctl", "restart", "systemd-logind"])
    after = assert_agrees(scene, EXPORTER_PORT, timeout=10)
    assert after.nonzero("logind_sessions", SESSION_KEYS) == before.nonzero(
        "logind_sessions", SESSION_KEYS)
    assert exporter.is_active()

    # The monitor still sees changes made by the new logind.
    sid = scene.pam_session(scene.add_user("rs"))
    wait_for_session(EXPORTER_PORT, sid)
    assert_agrees(scene, EXPORTER_PORT)


def test_stopped_logind_keeps_the_last_numbers_and_start_fixes_them(
    scene: Scene, container: Container, exporter: Service
) -> None:
    user = scene.add_user("st")
    doomed = scene.pam_session(user)
    s = scene.truth.session(doomed)
    labels = {"seat": "", "remote": "false", "type": s.type, "class": s.session_class}
    before = assert_agrees(scene, EXPORTER_PORT)

    container.run(["systemctl", "stop", "systemd-logind"])
    try:
        assert container.run(["systemctl", "is-active", "systemd-logind"],
                             check=False).stdout.strip() == "inactive"
        # The session's processes go away while nobody is there to record it.
        container.run(["systemctl", "stop", f"session-{doomed}.scope"])
        assert container.run(["test", "-f", f"/run/systemd/sessions/{doomed}"]).returncode == 0
        during = scrape(EXPORTER_PORT)
        assert during.value("logind_up") == 1  # seat0's file is still there
        assert during.nonzero("logind_sessions", SESSION_KEYS) == before.nonzero(
            "logind_sessions", SESSION_KEYS)
        assert during.value("logind_session_ends_total", **labels) == before.value(
            "logind_session_ends_total", **labels)
        assert exporter.is_active()
    finally:
        container.run(["systemctl", "start", "systemd-logind"])

    # logind finds the scope gone, drops the session and rewrites its files.
    wait_until(lambda: container.run(["test", "-e", f"/run/systemd/sessions/{doomed}"],
                                     check=False).returncode != 0 or None,
               timeout=10, what="logind to drop the dead session")
    after = assert_agrees(scene, EXPORTER_PORT, timeout=10)
    assert after.value("logind_session_ends_total", **labels) == before.value(
        "logind_session_ends_total", **labels) + 1
    sid = scene.pam_session(user)
    wait_for_session(EXPORTER_PORT, sid)
    assert_agrees(scene, EXPORTER_PORT)
