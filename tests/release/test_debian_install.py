"""`apt-get install ./login-exporter_*.deb` on freshly booted Debian systems, then purge.

Each release boots in systemd-nspawn (tests/e2e/container.py) with its own systemd, logind and
D-Bus; the container shares the host's network, so the packaged service's port 9844 is reached
from here. Real PAM sessions are opened before the install; the exporter must report exactly
what loginctl reports. Then `systemctl restart` with other flags in the conffile, and
`apt-get purge`, after which nothing of the package may remain: no unit, no process, no user,
no file.

- bookworm (Debian 12, systemd 252): an overlay of this machine's own /, without what pip
  installed here.
- trixie (Debian 13, systemd 257): an overlay of the cached root filesystem of `.ci/rootfs`.

In both, Debian's python3-prometheus-client and python3-bcrypt are removed first, so apt has to
fetch them from the archive: the Depends are proven, not assumed.
"""

from __future__ import annotations

import json
import shlex
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
import requests

from login_exporter import __version__
from tests.e2e.checks import assert_agrees, wait_for_session
from tests.e2e.container import Container, RootfsUnavailable, rootfs
from tests.e2e.scenario import Scene, scrape, wait_until
from tests.release.builds import timed

pytestmark = pytest.mark.e2e

PACKAGED_PORT = 9844  # the unit's default, as installed
RESTART_PORT = 19810  # beside the e2e suite's 19800-19809 (tests/e2e/conftest.py)
APT = ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-o", "DPkg::Lock::Timeout=120",
       "-y", "-q"]
# Where a package could leave something behind (the container's /proc, /run, /tmp are its own
# and die with it). The project's cache of root filesystems is the host's, not a leftover.
LEFTOVER_SEARCH = (
    "find /etc /usr /lib /var /opt /srv /home /root -xdev "
    r"\( -path /var/cache/login-exporter -o -path /root/.pyenv -o -path /root/.cache \) -prune "
    r"-o \( -iname '*login-exporter*' -o -iname '*login_exporter*' \) -print 2>/dev/null | sort"
)


@pytest.fixture(params=["bookworm", "trixie"])
def system(request: pytest.FixtureRequest) -> Iterator[tuple[str, Container]]:
    """A freshly booted Debian of the given release; torn down whatever happens.

    Skipped (saying why) only when the release's root filesystem cannot be bootstrapped.
    """
    release = str(request.param)
    if release == "bookworm":
        c = Container()
    else:
        try:
            c = Container(lower=rootfs(release))
        except RootfsUnavailable as e:
            pytest.skip(str(e))
    with timed(f"deb: boot {release} container"):
        c.boot()
    try:
        yield release, c
    finally:
        c.close()


def unit(c: Container, *props: str) -> dict[str, str]:
    out = c.run(["systemctl", "show", "login-exporter.service",
                 *(f"-p{p}" for p in props)]).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def journal(c: Container) -> str:
    return c.run(["journalctl", "-u", "login-exporter", "--no-pager", "-n", "40"],
                 check=False).stdout


def loginctl_sessions(c: Container) -> set[str]:
    """Ids of the sessions `loginctl list-sessions` lists (JSON where loginctl has it)."""
    listed = c.run(["loginctl", "list-sessions", "--json=short"], check=False)
    if listed.returncode == 0:
        return {str(s["session"]) for s in json.loads(listed.stdout)}
    # systemd 252 (Debian 12) has no --json for loginctl.
    table = c.run(["loginctl", "list-sessions", "--no-legend"]).stdout
    return {line.split()[0] for line in table.splitlines() if line.strip()}


def listening(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:port (the network is shared)."""
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def accounts(c: Container) -> str:
    return c.sh("getent passwd; getent group")


def test_apt_install_serves_real_sessions_restarts_and_purges_clean(
    system: tuple[str, Container], debian_package: Path
) -> None:
    release, c = system
    scene = Scene(c)
    user = scene.add_user("deb")
    opened = [scene.pam_session(user), scene.su_session(user)]

    c.run(["dpkg", "--purge", "python3-prometheus-client", "python3-bcrypt"])
    with timed(f"deb: apt-get update ({release})"):  # rootfs caches keep no lists
        c.run([*APT, "update"], timeout=300)
    if release == "bookworm":
        # What pip installed on this machine (CI may pip-install the project and its test
        # tools into Debian's python3) would shadow the package and Debian's libraries: a
        # Debian system as installed has nothing there.
        for local in c.merged.glob("usr/local/lib/python3*/dist-packages"):
            shutil.rmtree(local)
        for script in c.merged.glob("usr/local/bin/login-exporter"):
            script.unlink()
    # This machine was made by a Docker build, whose policy-rc.d forbids starting services; an
    # installed Debian has none. (Removed in the container's overlay only.)
    policy = c.merged / "usr/sbin/policy-rc.d"
    if policy.exists():
        policy.unlink()
    users_before = accounts(c)
    leftovers_before = c.sh(LEFTOVER_SEARCH, timeout=120)

    shutil.copy(debian_package, c.merged / "root")
    with timed(f"deb: apt-get install ({release})"):
        install = c.run([*APT, "install", f"/root/{debian_package.name}"], check=False,
                        timeout=600)
    assert install.returncode == 0, install.stdout + install.stderr
    (c.merged / "root" / debian_package.name).unlink()
    fetched = install.stdout.partition("NEW packages will be installed:")[2]
    assert "python3-prometheus-client" in fetched and "python3-bcrypt" in fetched, fetched
    present = c.sh(LEFTOVER_SEARCH, timeout=120)
    assert "/etc/default/login-exporter\n" in present, present  # the search sees the package

    # Enabled and started by the package (Type=notify: started means READY=1 was sent).
    state = unit(c, "ActiveState", "UnitFileState", "MainPID", "FragmentPath")
    assert state["ActiveState"] == "active", journal(c)
    assert state["UnitFileState"] == "enabled"
    assert state["FragmentPath"] in ("/lib/systemd/system/login-exporter.service",
                                     "/usr/lib/systemd/system/login-exporter.service")
    pid = state["MainPID"]
    exe = c.run(["readlink", f"/proc/{pid}/exe"]).stdout.strip()
    assert exe.startswith("/usr/bin/python3"), exe  # Debian's Python, not a venv or pyenv
    for module in ("login_exporter", "prometheus_client", "yaml", "bcrypt", "cffi"):
        where = c.run(["python3", "-c", f"import {module}; print({module}.__file__)"]).stdout
        assert where.startswith("/usr/lib/python3/dist-packages/"), (module, where)
    uid = c.sh(f"awk '/^Uid:/ {{print $2}}' /proc/{pid}/status").strip()
    account = c.sh("getent passwd login-exporter").strip().split(":")
    # The package's own system user (sysusers.d), made before the service started.
    assert account[2] == uid and 0 < int(uid) < 1000, (account, uid)

    # /metrics shows this container's real sessions, as loginctl lists them.
    exp = wait_until(lambda: scrape(PACKAGED_PORT), timeout=10, what="the packaged exporter")
    listed = loginctl_sessions(c)
    assert listed >= set(opened)
    assert sum(v for v in exp.series("logind_sessions").values()) == len(listed), exp.text
    build = exp.series("logind_exporter_build_info")
    assert [dict(k)["version"] for k in build] == [__version__]

    # Other flags through the conffile, then `systemctl restart`.
    args = f"--web.listen-address=127.0.0.1:{RESTART_PORT} --collector.session-info"
    (c.merged / "etc/default/login-exporter").write_text(
        f"LOGIN_EXPORTER_ARGS={shlex.quote(args)}\n")
    restart = c.run(["systemctl", "restart", "login-exporter.service"], check=False, timeout=60)
    assert restart.returncode == 0, restart.stderr + journal(c)
    after = unit(c, "ActiveState", "MainPID", "NRestarts")
    assert after["ActiveState"] == "active" and after["MainPID"] != pid, journal(c)
    assert_agrees(scene, RESTART_PORT)
    newcomer = scene.pam_session(user)
    wait_for_session(RESTART_PORT, newcomer, timeout=2)
    assert_agrees(scene, RESTART_PORT)
    assert not listening(PACKAGED_PORT)

    # Basic auth from a web config: Debian's python3-yaml and python3-bcrypt at work.
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    web = c.merged / "etc/login-exporter/web.yml"
    web.parent.mkdir(parents=True, exist_ok=True)
    web.write_text(f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    web.chmod(0o644)  # the service's user must read it
    with_auth = f"{args} --web.config.file=/etc/login-exporter/web.yml"
    (c.merged / "etc/default/login-exporter").write_text(
        f"LOGIN_EXPORTER_ARGS={shlex.quote(with_auth)}\n")
    restart = c.run(["systemctl", "restart", "login-exporter.service"], check=False, timeout=60)
    assert restart.returncode == 0, restart.stderr + journal(c)
    url = f"http://127.0.0.1:{RESTART_PORT}/metrics"
    assert requests.get(url, timeout=5).status_code == 401
    assert requests.get(url, auth=("prometheus", "wrong"), timeout=5).status_code == 401
    authed = requests.get(url, auth=("prometheus", "s3cret"), timeout=5)
    assert authed.status_code == 200 and "logind_up 1" in authed.text, authed.text[:500]
    web.unlink()
    web.parent.rmdir()  # the admin's file, not the package's: gone before the purge check

    # Purge: stopped, and nothing left behind.
    owned = c.run(["dpkg", "-L", "login-exporter"]).stdout.split()
    with timed(f"deb: apt-get purge ({release})"):
        purge = c.run([*APT, "purge", "login-exporter"], check=False, timeout=300)
    assert purge.returncode == 0, purge.stdout + purge.stderr
    gone = unit(c, "LoadState", "ActiveState")
    assert gone == {"LoadState": "not-found", "ActiveState": "inactive"}, gone
    assert c.run(["pgrep", "-f", "login-exporter"], check=False).stdout == ""
    assert not listening(RESTART_PORT)
    still = [p for p in owned
             if (c.merged / p.lstrip("/")).exists() and not (c.merged / p.lstrip("/")).is_dir()]
    assert still == [], still
    assert not (c.merged / "usr/lib/python3/dist-packages/login_exporter").exists()
    assert c.sh(LEFTOVER_SEARCH, timeout=120) == leftovers_before
    assert accounts(c) == users_before
    assert c.run(["dpkg-query", "-W", "login-exporter"], check=False).returncode != 0
