"""login_exporter.sddaemon against python-systemd's ``systemd.daemon``, both on real libsystemd.

The environment a service manager sets (NOTIFY_SOCKET, LISTEN_PID/LISTEN_FDS, WATCHDOG_USEC) is
set here for real; messages go over a real AF_UNIX datagram socket.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from login_exporter import sddaemon
from tests.support.exporter import ROOT

try:
    from systemd import daemon as _daemon
except ImportError:  # pragma: no cover - CI installs systemd-python
    _daemon = None


@pytest.fixture
def reference() -> ModuleType:
    if _daemon is None:
        pytest.fail("systemd.daemon is not importable; pip install -e '.[parity]' (systemd-python)")
    module: ModuleType = _daemon
    return module


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(tmp_path / "notify"))
        sock.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
        yield sock


def test_notify_sends_what_the_reference_sends(
    notify_socket: socket.socket, reference: ModuleType
) -> None:
    assert sddaemon.notify("STATUS=ours") is True
    assert reference.notify("STATUS=theirs") is True
    assert [notify_socket.recv(4096) for _ in range(2)] == [b"STATUS=ours", b"STATUS=theirs"]


def test_notify_without_a_manager_is_false_like_the_reference(
    monkeypatch: pytest.MonkeyPatch, reference: ModuleType
) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sddaemon.notify("READY=1") is False
    assert reference.notify("READY=1") is False


LISTEN = """
import os, sys
from login_exporter import sddaemon
from tests.support.exporter import ROOT
from systemd import daemon
# As a manager passes them: fds 3 onwards, LISTEN_PID naming this process.
for _ in range(int(sys.argv[1])):
    os.open("/dev/null", os.O_RDONLY)
os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS=sys.argv[1])
for call in (sddaemon.listen_fds, lambda: daemon.listen_fds(unset_environment=False)):
    try:
        print(call())
    except OSError as exc:
        print("errno", exc.errno)
"""


@pytest.mark.parametrize(("count", "ours", "theirs"), [
    ("2", "2", "[3, 4]"), ("1", "1", "[3]"), ("0", "errno 22", "errno 22"),
])  # fmt: skip
def test_listen_fds_answers_as_the_reference(
    reference: ModuleType, count: str, ours: str, theirs: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", LISTEN, count], cwd=ROOT, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [ours, theirs]


def test_listen_fds_for_another_pid_is_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LISTEN_PID", str(os.getpid() + 1))
    monkeypatch.setenv("LISTEN_FDS", "2")
    assert sddaemon.listen_fds() == 0


def test_watchdog_usec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    assert sddaemon.watchdog_usec() == 200000
    monkeypatch.delenv("WATCHDOG_USEC")
    assert sddaemon.watchdog_usec() is None
