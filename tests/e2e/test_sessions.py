"""The exporter inside a booted systemd agrees with loginctl / machinectl, value for value.

Every scenario creates real PAM sessions through the container's PID 1 and then requires the
whole exposition to agree with logind (checks.assert_agrees: sessions by every label, users by
state, seat0's gauges, machines, per-session info), plus exact values for what it created.
"""

from __future__ import annotations

import time

import pytest

from tests.e2e.checks import assert_agrees, wait_for_session
from tests.e2e.scenario import EXPORTER_PORT, Scene, Service, scrape, wait_until

pytestmark = pytest.mark.e2e


def test_graphical_session_and_greeter_on_seat0(scene: Scene, exporter: Service) -> None:
    before = assert_agrees(scene, EXPORTER_PORT)
    user, greeter = scene.add_user("x"), scene.add_user("gdm")
    desktop = scene.pam_session(user, session_type="x11", session_class="user", seat="seat0")
    greet = scene.pam_session(greeter, session_type="wayland", session_class="greeter",
                              seat="seat0")
    exp = assert_agrees(scene, EXPORTER_PORT)

    seat0 = next(s for s in scene.truth.seats() if s.name == "seat0")
    assert seat0.active_session == greet
    assert desktop in seat0.sessions and greet in seat0.sessions
    # The desktop went to the background when the greeter came up: online, not active.
    assert scene.truth.session(desktop).state == "online"
    key = {"seat": "seat0", "remote": "false"}
    assert exp.value("logind_sessions", **key, type="x11", **{"class": "user"}, state="online") == (
        before.value("logind_sessions", **key, type="x11", **{"class": "user"}, state="online") + 1)
    assert exp.value("logind_sessions", **key, type="wayland", **{"class": "greeter"},
                          state="active") == 1
    assert exp.value("logind_seat_active_session", seat="seat0") == 1
    assert exp.value("logind_seat_sessions", seat="seat0") == len(seat0.sessions)
    assert exp.value("logind_session_starts_total", **key, type="wayland",
                     **{"class": "greeter"}) >= 1

    scene.terminate(greet)
    scene.wait_session_gone(greet)
    exp = assert_agrees(scene, EXPORTER_PORT)
    assert exp.value("logind_sessions", **key, type="wayland", **{"class": "greeter"},
                          state="active") == 0
    # A series once exported stays, at 0.
    assert exp.get("logind_sessions", **key, type="wayland", **{"class": "greeter"},
                   state="active") == 0
    scene.terminate(desktop)
    scene.wait_session_gone(desktop)


def test_su_l_and_background_sessions_are_seatless(scene: Scene, exporter: Service) -> None:
    user = scene.add_user("b")
    bg1, bg2 = scene.pam_session(user), scene.pam_session(user)
    su = scene.su_session(user)
    exp = assert_agrees(scene, EXPORTER_PORT)
    for sid in (bg1, bg2, su):
        s = scene.truth.session(sid)
        assert (s.seat, s.session_class, s.type, s.remote) == ("", "background",
                                                                "unspecified", False)
    info = {dict(k)["session"]: dict(k) for k in exp.series("logind_session_info")}
    assert info[su]["service"] == "su-l" and info[su]["user"] == user
    assert info[bg1]["service"] == "login" and info[bg1]["seat"] == ""
    for sid in (bg1, bg2, su):
        scene.terminate(sid)


def test_remote_session_counts_as_remote(scene: Scene, exporter: Service) -> None:
    user = scene.add_user("r")
    before = assert_agrees(scene, EXPORTER_PORT)
    sid = scene.remote_session(user)
    exp = assert_agrees(scene, EXPORTER_PORT)
    key = {"seat": "", "remote": "true", "type": "unspecified", "class": "background",
           "state": "active"}
    assert exp.value("logind_sessions", **key) == before.value("logind_sessions", **key) + 1
    info = {dict(k)["session"]: dict(k) for k in exp.series("logind_session_info")}
    assert info[sid]["remote_host"] == "203.0.113.9" and info[sid]["remote"] == "true"
    scene.terminate(sid)
    scene.wait_session_gone(sid)


def test_users_move_between_active_closing_and_lingering(scene: Scene,
                                                        exporter: Service) -> None:
    """Users through their states; where loginctl and sd-login differ, sd-login wins.

    sd_uid_get_state() reads /run/systemd/users/UID, which logind writes when it saves the
    user; loginctl asks logind's memory over D-Bus. When a lingering user's last session ends,
    systemd 252 does not save the user again: loginctl says "lingering", the file (and so the
    exporter) keeps saying "closing" with the dead session listed, until logind next saves
    that user (any change to it, or a logind restart). The exporter can only report what
    sd-login reports, so the test pins that.
    """
    active_user, closing_user = scene.add_user("ua"), scene.add_user("uc")
    linger_only = scene.add_user("ul")
    scene.pam_session(active_user)
    closing = scene.closing_session(closing_user)
    scene.enable_linger(linger_only)
    wait_until(lambda: scene.truth.user(linger_only).file_state == "lingering" or None,
               timeout=10, what="lingering user")
    exp = assert_agrees(scene, EXPORTER_PORT)
    t = scene.truth
    assert (t.user(active_user).dbus_state, t.user(active_user).file_state) == ("active",
                                                                               "active")
    assert t.user(closing_user).dbus_state == t.user(closing_user).file_state == "closing"
    assert t.user(linger_only).dbus_state == t.user(linger_only).file_state == "lingering"
    # assert_agrees matched logind_users with the user files at its moment; users of earlier
    # tests may finish closing since, so only this test's own users are checked here.
    for state in ("active", "closing", "lingering"):
        assert exp.value("logind_users", state=state) >= 1

    # The closing user becomes lingering when its last (closing) session goes away.
    scene.enable_linger(closing_user)
    scene.stop_scope(closing)
    scene.wait_session_gone(closing)
    u = wait_until(lambda: (u if (u := scene.truth.user(closing_user)).dbus_state ==
                            "lingering" else None), timeout=10, what="lingering over D-Bus")
    # assert_agrees compares logind_users with the user files, which is what sd-login reads: on
    # systemd 252 (notes §2) the file still says "closing" while D-Bus says "lingering". Other
    # users of earlier tests may finish closing meanwhile, so compare counts only there.
    assert u.file_state in ("closing", "lingering")
    assert_agrees(scene, EXPORTER_PORT)

    # Any later change makes logind save the user: a new session makes it active everywhere.
    sid = scene.pam_session(closing_user)
    wait_until(lambda: scene.truth.user(closing_user).file_state == "active" or None,
               timeout=10, what="user file saved again")
    assert_agrees(scene, EXPORTER_PORT)
    scene.terminate(sid)
    scene.disable_linger(linger_only)


def test_vm_and_container_registered_then_stopped(scene: Scene, exporter: Service) -> None:
    before = assert_agrees(scene, EXPORTER_PORT)
    vm, ct = f"{scene.add_user('m')}-vm", f"{scene.add_user('m')}-ct"
    scene.register_machine(vm, "vm")
    scene.register_machine(ct, "container")
    exp = assert_agrees(scene, EXPORTER_PORT)
    assert exp.value("logind_machine_info", machine=vm, **{"class": "vm"}) == 1
    assert exp.value("logind_machine_info", machine=ct, **{"class": "container"}) == 1
    for cls in ("vm", "container"):
        assert exp.value("logind_machines", **{"class": cls}) == (
            before.value("logind_machines", **{"class": cls}) + 1)
        assert exp.value("logind_machine_starts_total", **{"class": cls}) == (
            before.value("logind_machine_starts_total", **{"class": cls}) + 1)

    scene.terminate_machine(vm)
    scene.terminate_machine(ct)
    wait_until(lambda: not {vm, ct} & {m.name for m in scene.truth.machines()} or None,
               timeout=20, what="machines gone")
    exp = assert_agrees(scene, EXPORTER_PORT)
    for cls in ("vm", "container"):
        assert exp.get("logind_machines", **{"class": cls}) == 0  # stays exported, at 0
        assert exp.value("logind_machine_stops_total", **{"class": cls}) == (
            before.value("logind_machine_stops_total", **{"class": cls}) + 1)
    assert not exp.value("logind_machine_info", machine=vm, **{"class": "vm"})


def test_terminate_session_is_exported_within_one_second_without_a_scrape(
    scene: Scene, exporter: Service
) -> None:
    """After terminate-session, one scrape taken 1 s after the session's file went away
    already shows the end: the refresh was driven by the sd-login monitor, not the scrape
    (the refresh timestamp and the event counter prove it)."""
    user = scene.add_user("t")
    created = time.time()
    sid = scene.pam_session(user)
    s = scene.truth.session(sid)
    labels = {"seat": s.seat, "remote": "false", "type": s.type, "class": s.session_class}
    wait_for_session(EXPORTER_PORT, sid)
    before = assert_agrees(scene, EXPORTER_PORT)
    hist = {"remote": "false", "type": s.type, "class": s.session_class}

    terminated = time.time()
    scene.terminate(sid)
    gone = scene.wait_session_gone(sid)
    time.sleep(max(0.0, gone + 1.0 - time.time()))  # no scrape in this second
    after = scrape(EXPORTER_PORT)
    # After the answer: another file change (the user's) may refresh while the scrape is on
    # its way (CI saw one 3 ms after the request was sent); a scrape never refreshes.
    scraped = time.time()

    assert after.value("logind_session_ends_total", **labels) == (
        before.value("logind_session_ends_total", **labels) + 1)
    assert after.value("logind_session_duration_seconds_count", **hist) == (
        before.value("logind_session_duration_seconds_count", **hist) + 1)
    grew = (after.value("logind_session_duration_seconds_sum", **hist)
            - before.value("logind_session_duration_seconds_sum", **hist))
    assert 0 < grew <= gone - created + 0.5
    assert after.value("logind_sessions", **labels, state=s.state) == (
        before.value("logind_sessions", **labels, state=s.state) - 1)
    refreshed = after.value("logind_exporter_last_refresh_timestamp_seconds")
    # Refreshed by events after the termination (262 rewrites the user's files up to a second
    # after the session's went, and those refreshes count too).
    assert terminated < refreshed <= scraped
    assert after.value("logind_exporter_refreshes_total", reason="event") > (
        before.value("logind_exporter_refreshes_total", reason="event"))
    assert not any(dict(k).get("session") == sid for k, v in
                   after.series("logind_session_info").items() if v)
    assert_agrees(scene, EXPORTER_PORT)


def test_seat_sessions_counts_live_sessions_after_one_ended(scene: Scene,
                                                            exporter: Service) -> None:
    """logind_seat_sessions = sessions on the seat that still exist, as loginctl says.

    On systemd 252 the seat file is not saved again when a session on it is finalized:
    /run/systemd/seats/seat0 keeps the dead id in SESSIONS= (so sd_seat_get_sessions() still
    lists it) until the seat changes again. sd-login itself also knows the truth: the session
    is gone from sd_get_sessions(). The exporter must count the live ones.
    """
    user, greeter = scene.add_user("sa"), scene.add_user("sg")
    desktop = scene.pam_session(user, session_type="x11", session_class="user", seat="seat0")
    greet = scene.pam_session(greeter, session_type="x11", session_class="greeter",
                              seat="seat0")
    scene.stop_scope(greet)
    scene.wait_session_gone(greet)
    seat0 = next(s for s in scene.truth.seats() if s.name == "seat0")
    assert greet not in seat0.sessions and desktop in seat0.sessions
    exp = assert_agrees(scene, EXPORTER_PORT)
    assert exp.value("logind_seat_sessions", seat="seat0") == len(seat0.sessions)
    scene.terminate(desktop)
