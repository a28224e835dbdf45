"""The container harness itself: it boots a real systemd and leaves nothing behind."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.e2e.bus_truth import session_path
from tests.e2e.container import Container, ContainerError, _is_mounted
from tests.e2e.scenario import PORT_BASE, Scene, Service, unique, wait_until

pytestmark = pytest.mark.e2e


def test_container_runs_its_own_logind_with_seat0(container: Container) -> None:
    assert container.run(["systemctl", "is-active", "systemd-logind"]).stdout.strip() == "active"
    assert "seat0" in container.run(["loginctl", "list-seats", "--no-legend"]).stdout
    # Its own /run: the pytest process's private /run/systemd is not what the container sees.
    inside = container.run(["stat", "-c", "%d:%i", "/run/systemd/seats"]).stdout.strip()
    assert os.path.exists("/run/systemd") and inside
    assert container.run(["test", "-f", "/project/pyproject.toml"]).returncode == 0


def test_teardown_leaves_no_mount_and_no_process_even_when_the_body_fails() -> None:
    c = Container()
    seen: list[tuple[Path, int, int]] = []
    with pytest.raises(RuntimeError, match="body failed"), c:
        assert c.base is not None and c.nspawn is not None and c.init_pid
        seen.append((c.base, c.nspawn.pid, c.init_pid))
        assert _is_mounted(c.base / "merged")
        raise RuntimeError("body failed")
    base, nspawn_pid, init_pid = seen[0]
    assert not _is_mounted(base / "merged")
    assert not base.exists()
    for pid in (nspawn_pid, init_pid):
        assert not Path(f"/proc/{pid}").exists(), f"pid {pid} still alive"
    assert c.nspawn is None and c.init_pid == 0


def test_run_reports_failures_with_output(container: Container) -> None:
    with pytest.raises(ContainerError, match="no-such-command"):
        container.run(["sh", "-c", "echo no-such-command >&2; exit 3"])
    assert container.run(["false"], check=False).returncode == 1


def test_pam_sessions_have_the_attributes_asked_for(scene: Scene) -> None:
    """The helpers create what logind calls real sessions (this checks loginctl, not us)."""
    user, greeter = scene.add_user("h"), scene.add_user("hg")
    graphical = scene.pam_session(user, session_type="x11", session_class="user", seat="seat0")
    greet = scene.pam_session(greeter, session_type="x11", session_class="greeter",
                              seat="seat0")
    su = scene.su_session(user)
    remote = scene.remote_session(user)
    t = scene.truth
    g, gr, s, r = t.session(graphical), t.session(greet), t.session(su), t.session(remote)
    assert (g.seat, g.type, g.session_class, g.remote) == ("seat0", "x11", "user", False)
    assert (gr.seat, gr.type, gr.session_class) == ("seat0", "x11", "greeter")
    seat0 = next(x for x in t.seats() if x.name == "seat0")
    assert seat0.active_session == greet  # the newest session on the seat is in front
    assert (s.service, s.seat, s.remote) == ("su-l", "", False)
    assert (r.remote, r.remote_host, r.seat) == (True, "203.0.113.9", "")
    for sid in (graphical, greet, su, remote):
        scene.terminate(sid)
        scene.wait_session_gone(sid)


def test_fill_sessions_opens_real_sessions_up_to_the_count_asked(scene: Scene) -> None:
    user = scene.add_user("f")
    target = scene.truth.session_count() + 3
    assert scene.fill_sessions(user, target) >= target
    # systemd 256 and newer also open a session (class manager) for the user's service manager,
    # so the count may be reached before the third login is: wait for all three.
    def logins() -> list[str] | None:
        ids = [s.id for s in scene.truth.sessions()
               if s.user == user and not s.session_class.startswith("manager")]
        return ids if len(ids) == 3 else None

    mine = wait_until(logins, timeout=10, what="three sessions of the user")
    for sid in mine:  # clean-up; how fast a release lets them go is not this test's concern
        scene.terminate(sid)


def test_wait_answering_fails_at_once_with_the_journal_when_the_unit_exits(
    container: Container,
) -> None:
    svc = Service(container, unique("e2e-gone-"), ["sh", "-c", "echo going-away; exit 3"])
    svc.start()
    try:
        started = time.monotonic()
        with pytest.raises(AssertionError, match=r"(?s)exited.*going-away"):
            svc.wait_answering(PORT_BASE + 9, timeout=15)
        assert time.monotonic() - started < 5  # not the whole timeout
    finally:
        svc.stop()


def test_seats_given_to_logind_hold_sessions_switch_and_go_across_a_restart(
    scene: Scene,
) -> None:
    """add_seats/remove_seats, graphical sessions on a seat, activate, and hints set from inside
    the session by its own user (this checks loginctl, not us)."""
    scene.add_seats("seat7")
    try:
        assert "seat7" in scene.seat_names()
        seat = next(x for x in scene.truth.seats() if x.name == "seat7")
        assert (seat.can_tty, seat.can_graphical) == (False, True)
        user, greeter = scene.add_user("hs"), scene.add_user("hsg")
        desktop = scene.graphical_session(user, "seat7", "wayland")
        greet = scene.graphical_session(greeter, "seat7", "x11", "greeter")
        t = scene.truth
        assert (t.session(desktop).seat, t.session(desktop).type) == ("seat7", "wayland")
        assert t.session(greet).session_class == "greeter"
        assert next(x for x in t.seats() if x.name == "seat7").active_session == greet
        scene.activate(desktop)
        assert t.session(desktop).active and not t.session(greet).active
        # The user's own call from inside: another user's session is left alone.
        scene.set_locked_hint(desktop, True)
        scene.set_idle_hint(desktop, True)
        hints = container_hints(scene, desktop)
        assert hints == ("yes", "yes"), hints
        assert container_hints(scene, greet) == ("no", "no")
        # Another session's user may not set it: the shell really is that user.
        with pytest.raises(ContainerError):
            scene.in_session(greet, ["busctl", "call", "org.freedesktop.login1",
                                     session_path(scene.c, desktop),
                                     "org.freedesktop.login1.Session", "SetIdleHint", "b",
                                     "false"])
    finally:
        scene.remove_seats("seat7")
    assert "seat7" not in scene.seat_names()
    assert scene.truth.session(desktop).seat == ""  # left seatless
    for sid in (desktop, greet):
        scene.stop_scope(sid)
        scene.wait_session_gone(sid)


def container_hints(scene: Scene, session_id: str) -> tuple[str, str]:
    """(IdleHint, LockedHint) of the session as loginctl prints them."""
    out = scene.c.run(["loginctl", "show-session", session_id, "-p", "IdleHint",
                       "-p", "LockedHint"]).stdout
    values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return values["IdleHint"], values["LockedHint"]



def test_a_unit_job_that_hangs_fails_with_the_units_status_and_journal(
        container: Container) -> None:
    """Container.systemctl gives up after its timeout and says what the unit was doing."""
    unit = unique("e2e-hang-")
    ready = f"/run/{unit}.ready"
    container.run(["systemd-run", f"--unit={unit}", "-p", "TimeoutStopSec=60", "--",
                   "sh", "-c", f"trap '' TERM; touch {ready}; while :; do sleep 1; done"])
    try:
        # systemd-run returns once the unit is forked: a stop before the trap is set ends it at
        # once (CI saw that).
        wait_until(lambda: container.run(["test", "-e", ready], check=False).returncode == 0
                   or None, timeout=10, what=f"{unit} ignoring SIGTERM")
        with pytest.raises(ContainerError, match="not done after 2 s") as e:
            container.systemctl("stop", unit, timeout=2)
        assert f"systemctl status {unit}" in str(e.value)
        assert "deactivating" in str(e.value)
        assert "--- journal ---" in str(e.value)
    finally:
        container.run(["systemctl", "kill", "-s", "KILL", unit], check=False)


def test_restart_logind_any_number_of_times_in_a_row(scene: Scene) -> None:
    """More restarts than systemd-logind.service's start limit (5 in 10 s) all go through."""
    for _ in range(7):
        scene.restart_logind()
    assert "seat0" in scene.seat_names()
