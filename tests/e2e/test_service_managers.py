"""OpenRC and runit on an elogind host: Debian 13 whose init runs OpenRC's runlevels, elogind as
logind, no systemd, runit's tools beside OpenRC (``.ci/rootfs trixie-openrc``), as on Devuan,
Gentoo, Alpine or Void.

OpenRC: first the Debian package, installed by apt, its LSB init script started by OpenRC; then
``deploy/openrc/login-exporter`` installed over it the way its header says (an Alpine or Gentoo
admin's steps): started under supervise-daemon as the unprivileged user, a SIGHUP by
``rc-service ... reload``, a killed exporter respawned, restarted, stopped; the purge leaves
nothing.

runit: ``deploy/runit/login-exporter`` under runsvdir, where the bus and elogind are not runit
services (OpenRC runs them): linked into the service directory as its header says, run by
runsv as the package's user with svlogd logging, ``sv hup`` (a resync), a killed exporter
respawned, ``sv restart``, ``sv down``.

Every step is checked on /metrics against elogind's loginctl.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e import package
from tests.e2e.checks import assert_agrees
from tests.e2e.container import REPO_ROOT, Container, RootfsUnavailable, booted, rootfs
from tests.e2e.scenario import PORT_BASE, Scene, scrape, wait_until

pytestmark = pytest.mark.e2e

RELEASE = "trixie-openrc"
PACKAGE_PORT = PORT_BASE + 10  # the package's LSB script, run by OpenRC
SERVICE_PORT = PORT_BASE + 11  # deploy/openrc/login-exporter under supervise-daemon
RUNIT_PORT = PORT_BASE + 12  # deploy/runit/login-exporter under runsv
SERVICE = "login-exporter"
INFO = "--collector.session-info"


def _say(line: str) -> None:
    print(f"\n[openrc and runit e2e] {line}", flush=True)


@pytest.fixture(scope="module")
def host() -> Iterator[Container]:
    try:
        lower = rootfs(RELEASE)
    except RootfsUnavailable as e:
        pytest.skip(str(e))
    started = time.monotonic()
    with booted(lower) as c:
        assert c.init == "sysvinit" and c.release == RELEASE
        versions = c.sh("openrc --version; loginctl --version | head -1; "
                        "dpkg-query -W -f 'runit ${Version}\\n' runit")
        _say(f"booted {RELEASE} in {time.monotonic() - started:.2f} s: "
             + ", ".join(versions.strip().splitlines()))
        yield c


@pytest.fixture(scope="module")
def scene(host: Container) -> Scene:
    return Scene(host)


def _status(host: Container) -> int:
    return host.run(["rc-service", SERVICE, "status"], check=False).returncode


def _exporter_pid(host: Container) -> str:
    """The pid of the one exporter process of the service user ("" when none)."""
    pids = host.sh(f"pgrep -u {SERVICE} || true", check=False).split()
    assert len(pids) <= 1, f"more than one exporter runs: {pids}"
    return pids[0] if pids else ""


def _new_exporter(host: Container, port: int, old: str, what: str) -> str:
    """Wait until an exporter other than ``old`` answers on ``port``; return its pid."""
    def probe() -> str | None:
        pid = _exporter_pid(host)
        return pid if pid and pid != old and package.answering(port) else None
    return wait_until(probe, timeout=30, what=what)


def _log_out(scene: Scene, sid: str) -> None:
    """End the session; wait until elogind drops it, or leaves it "closing" as elogind 255 may
    (the exporter must then say what elogind says)."""
    scene.stop_scope(sid)
    wait_until(lambda: all(s.id != sid or s.state == "closing" for s in scene.truth.sessions())
               or None, timeout=10, what=f"session {sid} ended")


def _reload_then_kill(host: Container, scene: Scene, port: int, pid: str,
                      reload: list[str]) -> str:
    """``reload`` must send SIGHUP: a full re-read (counted as a resync) by the same process.
    Then a ``kill -9`` must be respawned by the supervisor. Returns the new exporter's pid."""
    resyncs = assert_agrees(scene, port).value("logind_exporter_refreshes_total",
                                               reason="resync")
    host.run(reload)
    wait_until(lambda: scrape(port).value("logind_exporter_refreshes_total",
                                          reason="resync") == resyncs + 1 or None,
               timeout=10, what=f"a resync after {' '.join(reload)}")
    assert _exporter_pid(host) == pid
    killed = time.monotonic()
    host.run(["kill", "-KILL", pid])
    pid = _new_exporter(host, port, pid, "the exporter respawned after kill -9")
    _say(f"kill -9 -> respawned and answering: {time.monotonic() - killed:.2f} s")
    assert_agrees(scene, port)
    return pid


def test_openrc_runs_the_package_and_the_openrc_service_file(
    host: Container, scene: Scene, tmp_path: Path
) -> None:
    # (logind_session_info on: assert_agrees compares every session's labels with loginctl.)
    took = package.install(host, tmp_path, PACKAGE_PORT, INFO)
    _say(f"apt-get install of the .deb: {took:.1f} s")
    # The package's LSB script, run by OpenRC (invoke-rc.d from the maintainer script).
    wait_until(lambda: package.answering(PACKAGE_PORT) or None, timeout=20,
               what="the packaged service started by OpenRC")
    assert _status(host) == 0
    user = scene.add_user("or")
    sid = scene.su_session(user)
    exp = assert_agrees(scene, PACKAGE_PORT)
    assert exp.value("logind_up") == 1
    assert exp.value("logind_exporter_liveness_rule", rule="pidfile") == 1
    _say(f"package: the LSB script under OpenRC serves; su -l {user} ({sid}) agrees")
    host.run(["rc-service", SERVICE, "stop"])
    assert not package.answering(PACKAGE_PORT)

    # deploy/openrc as its header says, over the package's script (an Alpine admin has none).
    for name, dest, mode in (("login-exporter", "/etc/init.d/login-exporter", 0o755),
                             ("login-exporter.confd", "/etc/conf.d/login-exporter", 0o644)):
        target = host.merged / dest.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text((REPO_ROOT / "deploy/openrc" / name).read_text())
        target.chmod(mode)
    with (host.merged / "etc/conf.d/login-exporter").open("a") as confd:  # the admin's flags
        confd.write(f'LOGIN_EXPORTER_ARGS="--web.listen-address=127.0.0.1:{SERVICE_PORT} {INFO}"\n')
    host.run(["rc-update", "add", SERVICE, "default"])
    started = time.monotonic()
    host.run(["rc-service", SERVICE, "start"])
    pid = _new_exporter(host, SERVICE_PORT, "", "the exporter under supervise-daemon")
    _say(f"rc-service start -> answering: {time.monotonic() - started:.2f} s (pid {pid})")
    assert _status(host) == 0
    assert host.sh(f"ps -o user= -p {pid}").strip() == SERVICE
    parent = host.sh(f"ps -o ppid= -p {pid}").strip()
    assert host.sh(f"ps -o args= -p {parent}").split()[0].endswith("supervise-daemon")
    assert "default" in host.sh(f"rc-update show default | grep {SERVICE} || true")
    exp = assert_agrees(scene, SERVICE_PORT)
    assert exp.value("logind_exporter_liveness_rule", rule="pidfile") == 1

    # (supervise-daemon respawns after respawn_delay=2)
    pid = _reload_then_kill(host, scene, SERVICE_PORT, pid, ["rc-service", SERVICE, "reload"])

    host.run(["rc-service", SERVICE, "restart"])
    pid = _new_exporter(host, SERVICE_PORT, pid, "the exporter after rc-service restart")
    _log_out(scene, sid)
    assert_agrees(scene, SERVICE_PORT)

    host.run(["rc-service", SERVICE, "stop"])
    assert not package.answering(SERVICE_PORT)
    assert _status(host) != 0
    assert _exporter_pid(host) == ""

    # The admin's own files go with the admin; the purge takes the package's.
    host.run(["rc-update", "del", SERVICE, "default"])
    host.run(["rm", "-f", "/etc/conf.d/login-exporter"])
    leftovers = package.purge(host)
    assert leftovers == "", leftovers


def test_runit_supervises_the_runit_service_file(
    host: Container, scene: Scene, tmp_path: Path
) -> None:
    # The program and its user from the package; its OpenRC service off (runit runs it here).
    package.install(host, tmp_path, PACKAGE_PORT, INFO)
    wait_until(lambda: package.answering(PACKAGE_PORT) or None, timeout=20,
               what="the packaged service")
    host.run(["rc-service", SERVICE, "stop"])
    host.run(["rc-update", "del", SERVICE, "default"], check=False)
    assert _exporter_pid(host) == ""

    # As the service directory's header says (Void's /var/service is Debian's /etc/service).
    service = host.merged / "etc/sv/login-exporter"
    for name in ("run", "log/run"):
        (service / name).parent.mkdir(parents=True, exist_ok=True)
        (service / name).write_text((REPO_ROOT / "deploy/runit/login-exporter" / name).read_text())
        (service / name).chmod(0o755)
    (service / "conf").write_text(
        f'LOGIN_EXPORTER_ARGS="--web.listen-address=127.0.0.1:{RUNIT_PORT} {INFO}"\n')
    runsvdir = host.spawn(["runsvdir", "-P", "/etc/service"], name="runsvdir")
    started = time.monotonic()
    host.run(["ln", "-s", "/etc/sv/login-exporter", "/etc/service/"])
    try:
        pid = _new_exporter(host, RUNIT_PORT, "", "the exporter under runsv")
    except AssertionError as e:
        raise AssertionError(f"{e}\n" + host.sh("sv status login-exporter; "
                                                "tail -5 /var/log/login-exporter/current",
                                                check=False)) from None
    _say(f"linked -> answering: {time.monotonic() - started:.2f} s (pid {pid})")
    assert host.sh(f"ps -o user= -p {pid}").strip() == SERVICE
    parent = host.sh(f"ps -o ppid= -p {pid}").strip()
    assert host.sh(f"ps -o args= -p {parent}").split()[0] == "runsv"
    assert host.sh("sv status login-exporter").startswith("run: login-exporter")
    user = scene.add_user("rn")
    sid = scene.su_session(user)
    pid = _reload_then_kill(host, scene, RUNIT_PORT, pid, ["sv", "hup", "login-exporter"])
    host.run(["sv", "restart", "login-exporter"])
    pid = _new_exporter(host, RUNIT_PORT, pid, "the exporter after sv restart")
    _log_out(scene, sid)
    assert_agrees(scene, RUNIT_PORT)
    # svlogd keeps what the exporter logged, with timestamps.
    assert "msg=" in host.sh("cat /var/log/login-exporter/current")

    host.run(["sv", "down", "login-exporter"])
    wait_until(lambda: (not package.answering(RUNIT_PORT) and _exporter_pid(host) == "") or None,
               timeout=10, what="the exporter stopped and gone after sv down")
    host.run(["rm", "/etc/service/login-exporter"])
    host.run(["kill", str(runsvdir)])
    host.run(["rm", "-rf", "/etc/sv/login-exporter", "/var/log/login-exporter"])
    assert package.purge(host) == ""
