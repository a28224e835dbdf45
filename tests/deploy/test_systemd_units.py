"""deploy/systemd: `systemd-analyze verify` and `security --offline` on the shipped units.

The units are verified inside a temporary root laid out as the README's install steps leave a
host: the units in /etc/systemd/system, the pip-installed console script in a venv at
/opt/login-exporter and a symlink /usr/local/bin/login-exporter (the unit's ExecStart) to it.
systemd's own units are copied in so that dependencies (sysinit.target, sockets.target) resolve.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.deploy.tools import DEPLOY, describe, find_tool, run

SYSTEMD = DEPLOY / "systemd"
SERVICE = SYSTEMD / "login-exporter.service"
SOCKET = SYSTEMD / "login-exporter.socket"
DROP_IN = SYSTEMD / "socket-activation.conf"
SYSUSERS = SYSTEMD / "login-exporter.sysusers"
EXEC = "/usr/local/bin/login-exporter"
MAX_EXPOSURE = 1.5


def system_unit_dir() -> Path:
    for candidate in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")):
        if (candidate / "sysinit.target").exists():
            return candidate
    pytest.fail("systemd's unit directory (sysinit.target) not found: install the systemd package")


def make_root(tmp_path: Path, *, socket: bool = False, console_script: bool = True) -> Path:
    """A root with systemd's units, ours, and the console script where the README puts it."""
    root = tmp_path / "root"
    shutil.copytree(system_unit_dir(), root / "usr/lib/systemd/system", symlinks=True)
    (root / "lib").symlink_to("usr/lib")
    etc = root / "etc/systemd/system"
    etc.mkdir(parents=True)
    shutil.copy2(SERVICE, etc)
    if socket:
        shutil.copy2(SOCKET, etc)
        (etc / "login-exporter.service.d").mkdir()
        shutil.copy2(DROP_IN, etc / "login-exporter.service.d")
    venv_bin = root / "opt/login-exporter/bin"
    venv_bin.mkdir(parents=True)
    if console_script:
        shutil.copy2(find_tool("login-exporter"), venv_bin / "login-exporter")
    (root / "usr/local/bin").mkdir(parents=True)
    (root / "usr/local/bin/login-exporter").symlink_to("/opt/login-exporter/bin/login-exporter")
    return root


def parse_unit(*paths: Path) -> dict[str, dict[str, list[str]]]:
    """Sections -> key -> values of unit files applied in order (an empty value resets a key)."""
    unit: dict[str, dict[str, list[str]]] = {}
    for path in paths:
        section: dict[str, list[str]] = {}
        for raw in path.read_text().splitlines():
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("[") and line.endswith("]"):
                section = unit.setdefault(line[1:-1], {})
                continue
            key, sep, value = line.partition("=")
            assert sep, f"{path}: not KEY=VALUE: {raw!r}"
            if value.strip():
                section.setdefault(key.strip(), []).append(value.strip())
            else:
                section[key.strip()] = []
    return unit


def verify(root: Path, *units: str) -> None:
    proc = run([find_tool("systemd-analyze"), "verify", f"--root={root}", *units])
    # Unknown keys and bad values only warn (exit 0): any output at all is a failure.
    assert proc.returncode == 0 and not proc.stderr.strip() and not proc.stdout.strip(), describe(
        proc
    )


def exposure(root: Path, threshold: float = MAX_EXPOSURE) -> tuple[int, float]:
    """Exit status of `security --offline=yes --threshold` and the overall exposure it printed."""
    proc = run(
        [
            find_tool("systemd-analyze"),
            "security",
            "--offline=yes",
            f"--root={root}",
            f"--threshold={round(threshold * 10)}",  # the threshold is in tenths of a point
            "login-exporter.service",
        ]
    )
    match = re.search(r"Overall exposure level for login-exporter\.service: (\d+\.\d)", proc.stdout)
    assert match, describe(proc)
    return proc.returncode, float(match.group(1))


def test_service_verifies_without_any_message(tmp_path: Path) -> None:
    verify(make_root(tmp_path), "login-exporter.service")


def test_socket_activation_verifies_without_any_message(tmp_path: Path) -> None:
    verify(make_root(tmp_path, socket=True), "login-exporter.socket", "login-exporter.service")


def test_verify_rejects_a_missing_executable(tmp_path: Path) -> None:
    # The check above is only worth something if verify looks at ExecStart inside the root.
    root = make_root(tmp_path, console_script=False)
    proc = run([find_tool("systemd-analyze"), "verify", f"--root={root}", "login-exporter.service"])
    assert proc.returncode != 0, describe(proc)
    assert f"Command {EXEC} is not executable" in proc.stderr, describe(proc)


@pytest.mark.parametrize("socket", [False, True], ids=["listening", "socket-activated"])
def test_service_exposure_is_at_most_1_5(tmp_path: Path, socket: bool) -> None:
    status, level = exposure(make_root(tmp_path, socket=socket))
    assert level <= MAX_EXPOSURE
    assert status == 0


def test_exposure_check_fails_an_unhardened_service(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    bare = parse_unit(SERVICE)["Service"]
    keep = ("Type", "ExecStart", "User")
    text = "[Service]\n" + "".join(f"{k}={bare[k][0]}\n" for k in keep)
    (root / "etc/systemd/system/login-exporter.service").write_text(text)
    status, level = exposure(root)
    assert level > MAX_EXPOSURE
    assert status != 0


def test_service_is_a_watchdogged_notify_service_of_its_own_system_user() -> None:
    service = parse_unit(SERVICE)["Service"]
    assert service["Type"] == ["notify"]
    assert service["NotifyAccess"] == ["main"]
    assert service["Restart"] == ["on-failure"]
    # A static user that sysusers.d creates: dbus-daemon refuses dynamic users.
    assert "DynamicUser" not in service
    assert service["User"] == service["Group"] == ["login-exporter"]
    sysusers = [line.split() for line in SYSUSERS.read_text().splitlines()
                if line and not line.startswith("#")]
    assert [(row[0], row[1]) for row in sysusers] == [("u", "login-exporter")]
    assert re.fullmatch(r"[1-9]\d*s", service["WatchdogSec"][0])
    assert service["EnvironmentFile"] == ["-/etc/default/login-exporter"]
    assert service["ExecStart"] == [f"{EXEC} $LOGIN_EXPORTER_ARGS"]


def test_service_keeps_run_systemd_readable_and_only_the_sockets_it_needs() -> None:
    service = parse_unit(SERVICE)["Service"]
    assert service["ProtectSystem"] == ["strict"]
    assert set(" ".join(service["RestrictAddressFamilies"]).split()) == {
        "AF_UNIX",  # sd_notify
        "AF_INET",
        "AF_INET6",
    }
    for key in ("InaccessiblePaths", "TemporaryFileSystem", "ReadWritePaths"):
        for value in service.get(key, []):
            assert not any(p.lstrip("-+").startswith("/run") for p in value.split()), (key, value)
    allowed = " ".join(service["IPAddressAllow"]).split()
    assert service["IPAddressDeny"] == ["any"]
    assert "localhost" in allowed


def test_socket_unit_pairs_with_the_systemd_socket_flag() -> None:
    socket = parse_unit(SOCKET)["Socket"]
    assert socket["ListenStream"] == ["9844"]
    assert socket.get("Accept", ["no"]) == ["no"]
    merged = parse_unit(SERVICE, DROP_IN)
    assert merged["Service"]["ExecStart"] == [f"{EXEC} --web.systemd-socket $LOGIN_EXPORTER_ARGS"]
    assert "login-exporter.socket" in merged["Unit"]["Requires"]

