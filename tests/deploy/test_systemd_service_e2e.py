"""deploy/systemd on a booted systemd: install as the README says, start, scrape, stop.

A container boots this machine's systemd (tests/e2e/container.py) with its own logind. Inside,
the exporter is pip-installed into a venv at /opt/login-exporter with Debian's python3 and
linked to /usr/local/bin, the shipped units and example EnvironmentFile are installed, and
systemd runs them with every hardening option in force (its own system user from sysusers.d,
ProtectSystem=strict,
the syscall filter, ...). The container shares the host's network, so the test scrapes it
from outside on a port it picked free.

Two test-only drop-ins, both outside the shipped files: the listen port (the example
EnvironmentFile with a free port instead of 9844, the same for the socket), and a 2 s
watchdog so that missing WATCHDOG=1 pings show within seconds.
"""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from tests.deploy.tools import DEPLOY
from tests.e2e.container import Container, booted
from tests.support.exporter import free_port

pytestmark = pytest.mark.e2e

SYSTEMD = DEPLOY / "systemd"
INSTALL = """
set -e
cp -r /project /tmp/src && rm -rf /tmp/src/.git
/usr/bin/python3 -m venv /opt/login-exporter
/opt/login-exporter/bin/pip install -q /tmp/src
ln -sf /opt/login-exporter/bin/login-exporter /usr/local/bin/login-exporter
install -D -m 0644 /project/deploy/systemd/login-exporter.sysusers \
  /etc/sysusers.d/login-exporter.conf
systemd-sysusers
"""


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return int(r.status), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def show(c: Container, unit: str, *props: str) -> dict[str, str]:
    out = c.run(["systemctl", "show", unit, *(f"-p{p}" for p in props)]).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def write(c: Container, path: str, text: str) -> None:
    target = c.merged / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


@pytest.fixture(scope="module")
def installed() -> Iterator[Container]:
    """A booted container with the exporter installed as the README says (units not yet)."""
    with booted() as c:
        c.sh(INSTALL, timeout=300)
        for name in ("login-exporter.service", "login-exporter.socket"):
            write(c, f"/etc/systemd/system/{name}", (SYSTEMD / name).read_text())
        write(c, "/etc/systemd/system/login-exporter.service.d/watchdog-test.conf",
              "[Service]\nWatchdogSec=2s\n")
        yield c


def journal(c: Container) -> str:
    cmd = ["journalctl", "-u", "login-exporter", "--no-pager", "-n", "40"]
    return c.run(cmd, check=False).stdout


def test_service_starts_ready_serves_and_stops_cleanly(installed: Container) -> None:
    c = installed
    port = free_port()
    example = (SYSTEMD / "login-exporter.default").read_text()
    write(c, "/etc/default/login-exporter", example.replace(
        'LOGIN_EXPORTER_ARGS=""', f'LOGIN_EXPORTER_ARGS="--web.listen-address=127.0.0.1:{port}"'))
    c.run(["systemctl", "daemon-reload"])
    # Type=notify: start returns only after READY=1 (or fails at TimeoutStartSec).
    start = c.run(["systemctl", "start", "login-exporter.service"], check=False, timeout=60)
    try:
        assert start.returncode == 0, start.stderr + journal(c)
        status, body = http_get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200
        assert "\nlogind_up 1.0\n" in body or "\nlogind_up 1\n" in body, body[:2000]
        assert 'logind_seat_present{seat="seat0"}' in body
        # The sandbox leaves /run/systemd/units readable: logind_up follows logind's unit.
        assert re.search(r'^logind_exporter_liveness_rule\{rule="unit"\} 1(\.0)?$', body, re.M)
        assert "process_start_time_seconds" in body  # /proc/stat readable despite ProtectProc
        # The hardened unit reaches logind on the system bus (answers come after READY=1).
        deadline = time.monotonic() + 5
        while "\nlogind_dbus_up 1.0\n" not in body and time.monotonic() < deadline:
            time.sleep(0.1)
            body = http_get(f"http://127.0.0.1:{port}/metrics")[1]
        assert "\nlogind_dbus_up 1.0\n" in body, body[-3000:] + journal(c)
        assert "\nlogind_on_external_power " in body
        assert http_get(f"http://127.0.0.1:{port}/-/healthy")[0] == 200
        assert http_get(f"http://127.0.0.1:{port}/-/ready")[0] == 200

        props = show(c, "login-exporter.service", "MainPID", "WatchdogTimestampMonotonic")
        uid = c.sh(f"awk '/^Uid:/ {{print $2}}' /proc/{props['MainPID']}/status").strip()
        want = c.run(["id", "-u", "login-exporter"]).stdout.strip()
        assert uid == want and int(uid) > 0, (uid, want)  # the system user sysusers made

        # WatchdogSec=2s: a missing WATCHDOG=1 would kill it within 2 s; it must stay up.
        time.sleep(5)
        later = show(c, "login-exporter.service", "ActiveState", "NRestarts", "MainPID",
                     "WatchdogTimestampMonotonic")
        assert later["ActiveState"] == "active", journal(c)
        assert later["NRestarts"] == "0" and later["MainPID"] == props["MainPID"], journal(c)
        assert later["WatchdogTimestampMonotonic"] != props["WatchdogTimestampMonotonic"]

        # Exposure of the unit as loaded by the running systemd, not just the file.
        sec = c.run(["systemd-analyze", "security", "--threshold=15", "login-exporter.service"],
                    check=False)
        assert sec.returncode == 0, sec.stdout[-3000:]
    finally:
        c.run(["systemctl", "stop", "login-exporter.service"], check=False, timeout=30)
    done = show(c, "login-exporter.service", "ActiveState", "Result", "ExecMainStatus")
    clean_exit = {"ActiveState": "inactive", "Result": "success", "ExecMainStatus": "0"}
    assert done == clean_exit, journal(c)


def test_socket_activation_starts_the_service_on_first_scrape(installed: Container) -> None:
    c = installed
    port = free_port()
    write(c, "/etc/default/login-exporter", 'LOGIN_EXPORTER_ARGS=""\n')
    write(c, "/etc/systemd/system/login-exporter.service.d/socket-activation.conf",
          (SYSTEMD / "socket-activation.conf").read_text())
    write(c, "/etc/systemd/system/login-exporter.socket.d/port-test.conf",
          f"[Socket]\nListenStream=\nListenStream=127.0.0.1:{port}\n")
    c.run(["systemctl", "daemon-reload"])
    c.run(["systemctl", "start", "login-exporter.socket"])
    try:
        assert show(c, "login-exporter.service", "ActiveState")["ActiveState"] == "inactive"
        status, body = http_get(f"http://127.0.0.1:{port}/metrics", timeout=30)
        assert status == 200, body
        assert "logind_up" in body
        state = show(c, "login-exporter.service", "ActiveState", "NRestarts")
        assert state == {"ActiveState": "active", "NRestarts": "0"}, journal(c)
    finally:
        c.run(["systemctl", "stop", "login-exporter.socket", "login-exporter.service"],
              check=False, timeout=30)
