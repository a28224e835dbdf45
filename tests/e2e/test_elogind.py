"""A booted elogind host: Debian 13 with sysvinit and elogind 255, no systemd at all.

The root filesystem comes from ``.ci/rootfs trixie-elogind``. Two exporters read it, each with
the resync turned off, so that every change reaches /metrics through the monitors alone:

- inside, Debian 13's python3 with Debian 13's libsystemd.so.0 (257) reading elogind's files,
  as on Debian 13 or Devuan;
- this machine's Python with only Debian 12's libelogind.so.0 (246) visible, as on Alpine,
  Gentoo or Void: the container's libsystemd.so.0 is hidden behind /dev/null in a mount
  namespace of the exporter's own, and the directory it searches holds libelogind.so.0 alone.

Each step is made the way such a host makes it (``su -l``, PAM logins, ``busctl`` as the
session's user, ``/etc/init.d/elogind``), then both exporters must agree with elogind's
loginctl and busctl within VISIBLE seconds. Timings are printed (``-s`` shows them).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e import package
from tests.e2e.bus_truth import BusTruth, as_user, assert_bus_agrees, session_path
from tests.e2e.checks import assert_agrees
from tests.e2e.container import REPO_ROOT, Container, RootfsUnavailable, booted, rootfs
from tests.e2e.scenario import (
    PORT_BASE,
    Exposition,
    Scene,
    Service,
    exporter_service,
    scrape,
    wait_until,
)

pytestmark = pytest.mark.e2e

RELEASE = "trixie-elogind"
INSIDE_PORT = PORT_BASE + 6  # Debian 13's python3 and libsystemd 257
LIBELOGIND_PORT = PORT_BASE + 7  # this machine's Python with Debian 12's libelogind 246 alone
EARLY_PORT = PORT_BASE + 8  # an exporter started while elogind is stopped
VISIBLE = 1.0  # seconds from a change inside to /metrics, with no scrape or signal to help
PACKAGE_PORT = PORT_BASE + 9  # the Debian package's service, started by its init script
LIBELOGIND_INSIDE = "/opt/libelogind"
PID_FILE = "/run/elogind.pid"
VERSION_OF = "dpkg-query -W -f '${Version}' "


def _say(line: str) -> None:
    print(f"\n[elogind e2e] {line}", flush=True)


@pytest.fixture(scope="module")
def libelogind_only(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding Debian 12's libelogind.so.0 and nothing else."""
    result = subprocess.run(["bash", str(REPO_ROOT / ".ci" / "libelogind")],
                            capture_output=True, text=True, timeout=600)
    if result.returncode == 3:
        pytest.skip(f"apt offers no libelogind0 here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    only = tmp_path_factory.mktemp("libelogind-only")
    shutil.copy2(Path(result.stdout.strip()).resolve(), only / "libelogind.so.0")
    return only


@pytest.fixture(scope="module")
def host(libelogind_only: Path) -> Iterator[Container]:
    if os.geteuid() != 0:
        pytest.fail("the e2e suite needs root (systemd-nspawn, mount)")
    try:
        lower = rootfs(RELEASE)
    except RootfsUnavailable as e:
        pytest.skip(str(e))
    started = time.monotonic()
    with booted(lower, binds=[(libelogind_only, LIBELOGIND_INSIDE)]) as c:
        assert c.init == "sysvinit" and c.release == RELEASE
        _say(f"booted {RELEASE} in {time.monotonic() - started:.2f} s: "
             f"{c.sh('loginctl --version | head -1').strip()}, "
             f"sysvinit-core {c.sh(VERSION_OF + 'sysvinit-core')}, "
             f"elogind {c.sh(VERSION_OF + 'elogind')}, "
             f"libsystemd0 {c.sh(VERSION_OF + 'libsystemd0')}")
        yield c


@pytest.fixture(scope="module")
def scene(host: Container) -> Scene:
    return Scene(host)


@pytest.fixture(scope="module")
def truth(host: Container) -> BusTruth:
    return BusTruth(host)


def _libelogind_exporter(c: Container, port: int, *extra: str) -> Service:
    """This machine's exporter with only libelogind.so.0 to load: the container's own
    libsystemd.so.0 is covered by /dev/null in a mount namespace of the exporter's own."""
    svc = exporter_service(c, port, *extra, host=True)
    library = c.sh("readlink -f /usr/lib/x86_64-linux-gnu/libsystemd.so.0").strip()
    svc.argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                f'mount --bind /dev/null "{library}" && exec "$0" "$@"', *svc.argv]
    svc.env = {"LD_LIBRARY_PATH": LIBELOGIND_INSIDE}
    return svc


@pytest.fixture(scope="module")
def ports(host: Container) -> Iterator[list[int]]:
    """Both exporters, started before any scenario; yields their ports."""
    flags = ("--collector.session-info", "--refresh.resync-interval=0")
    services = [exporter_service(host, INSIDE_PORT, *flags),
                _libelogind_exporter(host, LIBELOGIND_PORT, *flags)]
    try:
        for svc, port in zip(services, (INSIDE_PORT, LIBELOGIND_PORT), strict=True):
            svc.start()
            svc.wait_answering(port)
        yield [INSIDE_PORT, LIBELOGIND_PORT]
    finally:
        for svc in services:
            svc.stop()


def agree_within(scene: Scene, ports: list[int], what: str) -> list[Exposition]:
    """Require every exporter to agree with loginctl within VISIBLE seconds from now; print
    how long each took."""
    started = time.monotonic()
    out = []
    for port in ports:
        remaining = max(0.05, VISIBLE - (time.monotonic() - started))
        try:
            out.append(assert_agrees(scene, port, timeout=remaining))
        except AssertionError as e:
            raise AssertionError(f"{what}: exporter on port {port} after {VISIBLE}s: {e}") from e
    _say(f"{what}: both agree with loginctl after {time.monotonic() - started:.3f} s")
    return out


def _wait_gone(scene: Scene, sid: str, timeout: float = 10.0) -> float:
    """Wait until elogind no longer lists the session; return how long that took. (elogind
    255 may keep a session "closing" after its last process exited: then its file stays too,
    and the exporters must say so.)"""
    started = time.monotonic()
    with contextlib.suppress(AssertionError):
        wait_until(lambda: all(s.id != sid for s in scene.truth.sessions()) or None,
                   timeout=timeout, interval=0.05, what=f"session {sid} gone")
    return time.monotonic() - started


# -- the tests --------------------------------------------------------------------------------


def test_both_libraries_are_loaded_and_the_pidfile_rule_is_in_force(
    host: Container, ports: list[int]
) -> None:
    inside, elogind = (scrape(port) for port in ports)
    build = {port: dict(next(iter(exp.series("logind_exporter_build_info"))))
             for port, exp in zip(ports, (inside, elogind), strict=True)}
    _say(f"build_info: inside {build[INSIDE_PORT]}, libelogind-only {build[LIBELOGIND_PORT]}")
    assert build[INSIDE_PORT]["library"] == "libsystemd"
    assert build[LIBELOGIND_PORT]["library"] == "libelogind"
    assert build[LIBELOGIND_PORT]["libsystemd_version"] == "246"
    for exp in (inside, elogind):
        assert exp.value("logind_up") == 1
        assert exp.value("logind_exporter_liveness_rule", rule="pidfile") == 1
        assert exp.value("logind_restarts_total") == 0
        # No machined: the machines families are there, empty, as on a systemd host without it.
        assert exp.nonzero("logind_machines", ("class",)) == {}


def test_logins_and_logouts_agree_with_loginctl(
    host: Container, scene: Scene, ports: list[int]
) -> None:
    agree_within(scene, ports, "start")
    user = scene.add_user("el")
    su = scene.su_session(user)
    # (logind_session_info, compared too, names the session, its user and PAM service.)
    agree_within(scene, ports, f"su -l {user} ({su})")
    desktop = scene.pam_session(user, session_type="x11", session_class="user", seat="seat0")
    agree_within(scene, ports, f"a graphical login on seat0 ({desktop})")
    remote = scene.remote_session(user)
    agree_within(scene, ports, f"a remote login ({remote})")
    root = scene.su_session("root")
    agree_within(scene, ports, f"root's su -l ({root})")
    for sid in (su, desktop, remote, root):
        scene.stop_scope(sid)
        took = _wait_gone(scene, sid)
        agree_within(scene, ports, f"logout of {sid} (elogind dropped it after {took:.2f} s)")


def test_idle_and_lock_hints_by_the_sessions_user(
    host: Container, scene: Scene, truth: BusTruth, ports: list[int]
) -> None:
    user = scene.add_user("hint")
    sid = scene.pam_session(user, session_type="x11", session_class="user", seat="seat0")
    path = session_path(host, sid)
    try:
        agree_within(scene, ports, "a graphical session for the hints")
        for method, value in (("SetIdleHint", True), ("SetLockedHint", True),
                              ("SetIdleHint", False), ("SetLockedHint", False)):
            as_user(host, user, path, method, value)
            done = time.monotonic()
            for port in ports:
                assert_bus_agrees(truth, port, since=done)
            _say(f"{method}({value}) by {user}: both agree with busctl after "
                 f"{time.monotonic() - done:.3f} s")
    finally:
        scene.stop_scope(sid)
        _wait_gone(scene, sid)


def _init_script(host: Container, verb: str) -> float:
    """``/etc/init.d/elogind VERB`` inside; returns time.monotonic() when it returned."""
    host.run(["/etc/init.d/elogind", verb])
    return time.monotonic()


def _wait_elogind_gone(host: Container) -> None:
    """Wait until no elogind process is left (it names itself elogind-daemon); raises
    AssertionError after 10 s."""
    wait_until(lambda: host.run(["pgrep", "-x", "elogind-daemon"], check=False).returncode == 1
               or None, timeout=10, what="the elogind stopped before gone")


def _start_elogind(host: Container) -> float:
    """``/etc/init.d/elogind start`` once the elogind stopped or killed before is gone; returns
    time.monotonic() when the script returned.

    The script's stop signals elogind and returns without waiting for it (no ``--retry``), and
    a killed one lingers until init reaps it: a start meanwhile finds the old pid alive, does
    nothing (``--oknodo``), and no elogind runs after. Measured on this container: 20 of 20
    stop-then-start and 10 of 10 kill-then-start left none running; 0 of 30 with the wait.
    """
    _wait_elogind_gone(host)
    return _init_script(host, "start")


def _visible(ports: list[int], what: str, name: str, want: float, since: float) -> None:
    """Wait until every exporter shows ``name`` == ``want``; fail when that took over VISIBLE
    seconds after ``since``."""
    for port in ports:
        wait_until(lambda p=port: scrape(p).value(name) == want or None,  # type: ignore[misc]
                   timeout=5, interval=0.01, what=f"{what} on port {port}")
    took = time.monotonic() - since
    _say(f"{what}: {name} {want} on both after {took:.3f} s")
    assert took <= VISIBLE, f"{what} took {took:.3f}s to reach /metrics"


def test_restart_stop_start_and_a_killed_elogind(
    host: Container, scene: Scene, ports: list[int]
) -> None:
    user = scene.add_user("rs")
    sid = scene.su_session(user)
    before = agree_within(scene, ports, "before the restarts")
    restarts = before[0].value("logind_restarts_total")
    assert all(exp.value("logind_restarts_total") == restarts for exp in before)

    done = _init_script(host, "restart")
    _visible(ports, "/etc/init.d/elogind restart", "logind_restarts_total", restarts + 1, done)
    agree_within(scene, ports, "after the restart")

    done = _init_script(host, "stop")
    try:
        _visible(ports, "/etc/init.d/elogind stop", "logind_up", 0, done)
        # Its files stay: the sessions are still served (they still exist).
        for port in ports:
            assert scrape(port).value("logind_restarts_total") == restarts + 1
    finally:
        done = _start_elogind(host)
    _visible(ports, "/etc/init.d/elogind start", "logind_up", 1, done)
    _visible(ports, "/etc/init.d/elogind start", "logind_restarts_total", restarts + 2, done)
    agree_within(scene, ports, "after stop and start")

    # SIGKILL leaves the pid file behind: the pidfd still sees it go.
    host.sh(f"kill -9 $(cat {PID_FILE})")
    _visible(ports, "kill -9 elogind", "logind_up", 0, time.monotonic())
    done = _start_elogind(host)
    _visible(ports, "start over a stale pid file", "logind_up", 1, done)
    _visible(ports, "start over a stale pid file", "logind_restarts_total", restarts + 3, done)
    agree_within(scene, ports, "after the kill and start")
    scene.stop_scope(sid)
    _wait_gone(scene, sid)
    agree_within(scene, ports, "logout after the restarts")


def _restart_and_wait(host: Container) -> None:
    _init_script(host, "restart")
    wait_until(lambda: host.run(["busctl", "status", "org.freedesktop.login1"],
                                check=False).returncode == 0 or None, timeout=10,
               what="elogind back on the bus")


def test_reused_session_ids_are_counted_as_new_sessions(
    host: Container, scene: Scene, ports: list[int]
) -> None:
    # elogind numbers sessions c1, c2, ... from 1 again after a restart: with every session
    # ended, the next login after a restart takes an id used before. (A restart also drops the
    # sessions elogind 255 kept "closing" after their processes were gone.)
    for s in scene.truth.sessions():
        scene.stop_scope(s.id)
        _wait_gone(scene, s.id, timeout=2)
    _restart_and_wait(host)
    assert scene.truth.sessions() == []
    user = scene.add_user("re")
    first = scene.su_session(user)
    agree_within(scene, ports, f"first login ({first})")
    scene.stop_scope(first)
    _wait_gone(scene, first)
    before = agree_within(scene, ports, f"first logout ({first})")
    # elogind 255 may keep the ended session "closing" (fixed in 257): then the restart drops it.
    lingered = any(s.id == first for s in scene.truth.sessions())
    _restart_and_wait(host)
    again = scene.su_session(user)
    _say(f"ids: {first} before the restart, {again} after it"
         f"{' (the first stayed closing until the restart)' if lingered else ''}")
    assert again == first, f"elogind did not reuse {first} (gave {again})"
    after = agree_within(scene, ports, f"the reused id {again}")
    seat, remote, type_, klass, _state = scene.truth.session(again).key
    labels = {"seat": seat, "remote": remote, "type": type_, "class": klass}

    def total(exp: Exposition, name: str) -> float:
        return exp.value(name, **labels) or 0.0

    for b, a in zip(before, after, strict=True):
        assert total(a, "logind_session_starts_total") == total(
            b, "logind_session_starts_total") + 1  # the same id, a new session
        assert total(a, "logind_session_ends_total") == total(
            b, "logind_session_ends_total") + lingered
    scene.stop_scope(again)
    _wait_gone(scene, again)
    stayed = any(s.id == again for s in scene.truth.sessions())
    ended = agree_within(scene, ports, f"logout of the reused {again}")
    for b, e in zip(before, ended, strict=True):
        assert total(e, "logind_session_ends_total") == total(
            b, "logind_session_ends_total") + lingered + (not stayed)


def test_an_exporter_started_before_elogind(host: Container, scene: Scene,
                                            ports: list[int]) -> None:
    _init_script(host, "stop")
    _wait_elogind_gone(host)
    early = exporter_service(host, EARLY_PORT, "--refresh.resync-interval=0")
    try:
        early.start()
        early.wait_answering(EARLY_PORT)
        # 0 once its bus is connected and nobody owns logind's name (until then the files
        # rule alone says 1: seat0's file is there; CI scraped that early once).
        wait_until(lambda: scrape(EARLY_PORT).value("logind_up") == 0 or None, timeout=10,
                   what="logind_up 0 with no bus owner")
        exp = scrape(EARLY_PORT)
        assert exp.value("logind_dbus_up") == 0
        assert exp.value("logind_exporter_liveness_rule", rule="files") == 1  # waiting
        done = _start_elogind(host)
        _visible([EARLY_PORT], "elogind started after the exporter", "logind_up", 1, done)
        exp = scrape(EARLY_PORT)
        assert exp.value("logind_exporter_liveness_rule", rule="pidfile") == 1
        assert exp.value("logind_restarts_total") == 1
        assert_agrees(scene, EARLY_PORT)
    finally:
        early.stop()
        if host.run(["test", "-e", PID_FILE], check=False).returncode != 0:
            _start_elogind(host)


def test_the_debian_package_runs_from_its_init_script(
    host: Container, tmp_path: Path
) -> None:
    _say(f"apt-get install of the .deb: {package.install(host, tmp_path, PACKAGE_PORT):.1f} s")
    wait_until(lambda: package.answering(PACKAGE_PORT) or None, timeout=20,
               what="the packaged service started by its init script")
    pid = host.sh("cat /run/login-exporter.pid").strip()
    assert host.sh(f"ps -o user= -p {pid}").strip() == "login-exporter"
    exp = scrape(PACKAGE_PORT)
    assert exp.value("logind_up") == 1
    assert exp.value("logind_exporter_liveness_rule", rule="pidfile") == 1
    assert host.run(["/etc/init.d/login-exporter", "status"], check=False).returncode == 0

    host.run(["/etc/init.d/login-exporter", "restart"])
    wait_until(lambda: package.answering(PACKAGE_PORT) or None, timeout=20, what="after restart")
    assert host.sh("cat /run/login-exporter.pid").strip() != pid

    host.run(["/etc/init.d/login-exporter", "stop"])
    assert not package.answering(PACKAGE_PORT)
    assert host.run(["/etc/init.d/login-exporter", "status"], check=False).returncode != 0

    leftovers = package.purge(host)
    assert leftovers == "", leftovers
