"""The Dockerfile built with podman and run as README's install line says, over a fixture
/run/systemd and a real dbus-daemon (with the system bus's policy, on a socket of the test's own).

No registry is reachable here: the base is whatever `.ci/standin-image` prints, normally a local
stand-in for python:3.11-slim-bookworm (Debian 12 with Debian's Python 3.11.2); every test's
output names it. The container runs with --net=host on the image's own port 9844 (the
HEALTHCHECK's), with a dead proxy in its environment that the health check must ignore.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.release.builds import REPO, SIZES
from tests.release.podman import Image, Podman
from tests.support.logind_state import LogindState

# On this machine's network, on the port the package's test also takes (test_debian_install.py):
# with the booted containers' tests, never beside them (.ci/run runs the two groups at once).
pytestmark = pytest.mark.e2e

PORT = 9844  # the image's default, which its HEALTHCHECK probes
NAME = "login-exporter-release-test"
HARDENED = ["--read-only", "--read-only-tmpfs=false", "--cap-drop=ALL",
            "--security-opt=no-new-privileges"]
BUS_SOCKET = "/run/dbus/system_bus_socket"
# The system bus's default policy (as /usr/share/dbus-1/system.conf has it) and the services'
# own (system.d), listening on the test's socket instead of the host's.
BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
  </policy>
  <includedir>/usr/share/dbus-1/system.d</includedir>
</busconfig>
"""
DEAD_PROXY = "http://127.0.0.1:9"  # discard port: nothing listens; a proxied request fails
MAX_OWN_LAYERS = 10_000_000


def describe(image: Image) -> str:
    return f"[base: {image.base} ({image.base_kind})]"


def test_exporters_own_layers_are_at_most_10_mb(container_image: Image) -> None:
    own = container_image.own_layers
    assert own, describe(container_image)
    assert container_image.own_size <= MAX_OWN_LAYERS, (
        f"{container_image.own_size} bytes over the base {describe(container_image)}: "
        + ", ".join(f"{layer.size} {layer.created_by[:60]}" for layer in own))


def test_image_has_no_pip_setuptools_or_compiler(
    podman: Podman, container_image: Image
) -> None:
    script = r"""
for tool in pip pip3 gcc cc c99 clang tcc; do command -v "$tool" && echo "FOUND $tool"; done
for module in pip setuptools wheel; do
  python3 -c "import $module" 2>/dev/null && echo "FOUND python module $module"
  /opt/login-exporter/bin/python -c "import $module" 2>/dev/null && echo "FOUND venv $module"
done
ls /opt/login-exporter/bin | grep -i -e pip -e easy_install | sed 's/^/FOUND venv script /'
for leftover in /opt/pip /wheels /src /root/ca.crt /root/.config /etc/pip.conf; do
  [ -e "$leftover" ] && echo "FOUND $leftover"
done
/opt/login-exporter/bin/python -c 'import prometheus_client, cffi, yaml, bcrypt' && echo IMPORTS-OK
"""
    # As root, so that /root (mode 700) can be looked into too.
    proc = podman("run", "--rm", "--user=0", "--entrypoint=/bin/sh", container_image.name,
                  "-c", script)
    assert "FOUND" not in proc.stdout, f"{describe(container_image)}\n{proc.stdout}"
    assert "IMPORTS-OK" in proc.stdout, proc.stdout + proc.stderr


def test_health_check_ignores_proxies(container_image: Image, podman: Podman) -> None:
    config = json.loads(podman("image", "inspect", container_image.name).stdout)[0]
    health = config["Healthcheck"]["Test"]
    assert health[0] == "CMD" and "ProxyHandler({})" in " ".join(health), health


def readme_run_flags() -> list[str]:
    """The options of README's container install line (`podman run OPTIONS login-exporter`)."""
    readme = (REPO / "README.md").read_text()
    line = next(ln for ln in readme.splitlines() if ln.startswith("| container image |"))
    found = re.search(r"podman run (.*?) login-exporter`", line)
    assert found, f"no `podman run ... login-exporter` in README's install line: {line}"
    return shlex.split(found.group(1))


@pytest.fixture
def system_bus(tmp_path: Path) -> Iterator[Path]:
    """A real dbus-daemon with the system bus's policy; yields its socket's path."""
    socket = tmp_path / "system_bus_socket"
    config = tmp_path / "bus.conf"
    config.write_text(BUS_CONFIG.format(socket=socket))
    daemon = subprocess.Popen(["dbus-daemon", f"--config-file={config}", "--nofork",
                               "--nopidfile", "--nosyslog", "--print-address"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert daemon.stdout is not None
        assert daemon.stdout.readline().startswith("unix:"), "dbus-daemon did not start"
        yield socket
    finally:
        daemon.terminate()
        daemon.wait(10)


def test_readme_install_line_mounts_the_system_bus_read_only() -> None:
    flags = readme_run_flags()
    volumes = [flags[i + 1] for i, flag in enumerate(flags) if flag in ("-v", "--volume")]
    assert f"{BUS_SOCKET}:{BUS_SOCKET}:ro" in volumes, volumes
    assert "/run/systemd:/run/systemd:ro" in volumes, volumes


@pytest.fixture
def running(
    podman: Podman, container_image: Image, real_252: LogindState, system_bus: Path
) -> Iterator[tuple[Podman, LogindState]]:
    """The image run as README's install line says (its name and the host side of the bus
    socket aside) over this test's /run/systemd (real 252 state) and a real bus."""
    flags = readme_run_flags()
    flags[flags.index("--name") + 1] = NAME
    flags = [f"{system_bus}:{BUS_SOCKET}:ro" if flag == f"{BUS_SOCKET}:{BUS_SOCKET}:ro"
             else flag for flag in flags]
    podman("rm", "--force", NAME, check=False)
    podman("run", *flags, f"--env=http_proxy={DEAD_PROXY}", f"--env=HTTP_PROXY={DEAD_PROXY}",
           container_image.name)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{PORT}/-/ready", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                logs = podman("logs", NAME, check=False)
                pytest.fail(f"not ready in 20 s {describe(container_image)}:\n"
                            f"{logs.stdout}{logs.stderr}")
            time.sleep(0.05)
        yield podman, real_252
    finally:
        podman("rm", "--force", "--time=0", NAME, check=False)


def stable(text: str) -> list[str]:
    """The logind_* samples, without the exporter's own timings and counters."""
    return sorted(ln for ln in text.splitlines()
                  if ln.startswith("logind_") and not ln.startswith("logind_exporter_"))


def bus_messages(text: str) -> float:
    return next(float(ln.split()[1]) for ln in text.splitlines()
                if ln.startswith("logind_exporter_dbus_messages_total "))


def session_total(text: str) -> float:
    return sum(float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines()
               if ln.startswith("logind_sessions{"))


def test_hardened_container_serves_follows_changes_is_healthy_and_stops_on_sigterm(
    running: tuple[Podman, LogindState], container_image: Image
) -> None:
    podman, logind = running
    print(describe(container_image))
    # Correct numbers: the same as this checkout's own --once over the same files.
    body = requests.get(f"http://127.0.0.1:{PORT}/metrics", timeout=5).text
    once = subprocess.run([sys.executable, "-m", "login_exporter", "--once"], cwd=REPO,
                          capture_output=True, text=True, check=True).stdout
    assert "logind_up 1.0" in body and session_total(body) > 0, body[:3000]
    assert stable(body) == stable(once)
    # On the bus as the image's user: the bus answers (no logind owns its name on this bus);
    # the answers are published a debounce after they come, maybe after ready.
    deadline = time.monotonic() + 5
    while (answers := bus_messages(body)) < 4:  # Hello, 2 AddMatch, GetNameOwner
        assert time.monotonic() < deadline, f"the bus never answered: {answers} messages"
        time.sleep(0.05)
        body = requests.get(f"http://127.0.0.1:{PORT}/metrics", timeout=5).text
    assert 'logind_exporter_errors_total{kind="dbus"} 0.0' in body
    logs = podman("logs", NAME, check=False)
    assert "connected to the system bus" in logs.stdout + logs.stderr

    # A change in the mounted tree is visible within 1 s.
    before = session_total(body)
    start = time.monotonic()
    logind.session("9001", uid=1001, user="carol", remote=True, remote_host="198.51.100.7",
                   service="sshd")
    while session_total(requests.get(f"http://127.0.0.1:{PORT}/metrics", timeout=5).text) \
            != before + 1:
        assert time.monotonic() - start < 1.0, "the new session was not exported within 1 s"
        time.sleep(0.01)
    SIZES["image: a new session file visible on /metrics after"] = (
        f"{(time.monotonic() - start) * 1000:.0f} ms")

    # Healthy, although a dead proxy is in the environment; the naive urlopen is not.
    check = podman("healthcheck", "run", NAME, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    status = podman("inspect", "--format={{.State.Health.Status}}", NAME).stdout.strip()
    assert status == "healthy"
    naive = podman("exec", NAME, "python3", "-c",
                   "import urllib.request as u; u.urlopen('http://127.0.0.1:9844/-/healthy', "
                   "timeout=4)", check=False)
    assert naive.returncode != 0, "the proxy in the environment did not matter: test is moot"

    # uid 65534, no capabilities, no new privileges, nothing writable.
    pid = podman("inspect", "--format={{.State.Pid}}", NAME).stdout.strip()
    status_lines = dict(line.split(":", 1) for line in
                        Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    assert status_lines["Uid"].split() == ["65534"] * 4
    assert status_lines["Gid"].split() == ["65534"] * 4
    assert int(status_lines["CapEff"], 16) == 0 and int(status_lines["CapPrm"], 16) == 0
    assert status_lines["NoNewPrivs"].strip() == "1"
    for path in ("/tmp", "/run", "/var/tmp", "/opt/login-exporter", "/run/systemd/sessions"):
        touch = podman("exec", NAME, "python3", "-c", f"open('{path}/x', 'w')", check=False)
        assert touch.returncode != 0 and "Read-only file system" in touch.stderr, (path, touch)

    # SIGTERM: exits 0 within 1 s.
    start = time.monotonic()
    podman("kill", "--signal=TERM", NAME)
    while podman("inspect", "--format={{.State.Running}}", NAME).stdout.strip() == "true":
        assert time.monotonic() - start < 1.0, "still running 1 s after SIGTERM"
        time.sleep(0.02)
    SIZES["image: stopped after SIGTERM in"] = f"{(time.monotonic() - start) * 1000:.0f} ms"
    assert podman("inspect", "--format={{.State.ExitCode}}", NAME).stdout.strip() == "0"
