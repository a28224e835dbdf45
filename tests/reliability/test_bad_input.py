"""Hostile input: fuzzed names into the binding, every wrong flag, a wrong web config."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.exporter import ROOT, free_port
from tests.support.logind_state import LogindState

IN_ACCESS = 0x1
IN_OPEN = 0x20
IN_NONBLOCK = os.O_NONBLOCK

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class OpenWatch:
    """inotify on one file: did anybody open or read it?"""

    def __init__(self, path: Path) -> None:
        self.fd = _libc.inotify_init1(IN_NONBLOCK)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        if _libc.inotify_add_watch(self.fd, str(path).encode(), IN_OPEN | IN_ACCESS) < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {path}")

    def touched(self) -> bool:
        """Whether an open or read happened since the watch began."""
        try:
            return bool(os.read(self.fd, 4096))
        except BlockingIOError:
            return False

    def close(self) -> None:
        """Release the inotify fd."""
        os.close(self.fd)


@pytest.fixture
def canary(logind: LogindState) -> Iterator[Path]:
    """/tmp/canary-<random>: a valid-looking session, seat, user and machine file in one."""
    path = Path(f"/tmp/canary-{secrets.token_hex(8)}")
    path.write_text(
        "# This is private data. Do not parse.\nUID=4242\nUSER=canary\nACTIVE=1\nSTATE=active\n"
        "REMOTE=0\nTYPE=canary\nCLASS=canary\nSEAT=canary\nSERVICE=canary\nIS_SEAT0=1\n"
        "CAN_TTY=1\nCAN_GRAPHICAL=1\nCAN_MULTI_SESSION=1\nACTIVE=canary\nACTIVE_UID=4242\n"
        "SESSIONS=canary\nUIDS=4242\nNAME=canary\nCLASS=canary\nDISPLAY=canary\n"
    )
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def test_canary_watch_sees_a_read(canary: Path) -> None:
    watch = OpenWatch(canary)
    try:
        assert not watch.touched()
        canary.read_bytes()
        assert watch.touched()
    finally:
        watch.close()


def test_fuzzed_names_only_raise_value_os_or_type_errors_and_never_read_outside(
    logind: LogindState, canary: Path
) -> None:
    logind.seat0(sessions=[("1", 1000)])
    logind.session("1", uid=1000, seat="seat0")
    logind.user(1000, sessions=["1"], seats=["seat0"])
    logind.machine("vm1", klass="vm")
    watch = OpenWatch(canary)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "tests.reliability.fuzz_sdlogin", str(canary), "700"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        touched = watch.touched()
    finally:
        watch.close()
    assert result.returncode >= 0, f"the binding crashed (signal {-result.returncode})"
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "fuzzed" in result.stdout
    assert not touched, "a binding opened the canary file outside /run/systemd"


def test_traversal_to_the_canary_does_not_return_its_uid(
    logind: LogindState, canary: Path
) -> None:
    from login_exporter import sdlogin

    relative = os.path.relpath(canary, "/run/systemd/sessions")
    assert (Path("/run/systemd/sessions") / relative).resolve() == canary
    with pytest.raises(ValueError):  # EINVAL: libsystemd refuses the id before any open()
        sdlogin.session_get_uid(relative)
    with pytest.raises(OSError) as caught:
        sdlogin.seat_get_active(os.path.relpath(canary, "/run/systemd/seats"))
    assert caught.value.errno == errno.EINVAL
    with pytest.raises(ValueError):
        sdlogin.machine_get_class(os.path.relpath(canary, "/run/systemd/machines"))


# -- command-line flags: exit 2, stderr names the flag ----------------------------------------

BAD_FLAGS = [
    (["--web.listen-address=nohost"], "--web.listen-address"),
    (["--web.listen-address=:99999"], "--web.listen-address"),
    (["--web.listen-address=[::1:9"], "--web.listen-address"),
    (["--web.listen-address=::1:9"], "--web.listen-address"),
    (["--web.listen-address=:port"], "--web.listen-address"),
    (["--web.listen-address=9844"], "--web.listen-address"),
    (["--web.listen-address=127.0.0.1:99999"], "--web.listen-address"),
    (["--web.listen-address=localhost:http"], "--web.listen-address"),
    (["--web.listen-address=::1:9844"], "--web.listen-address"),
    (["--web.telemetry-path=metrics"], "--web.telemetry-path"),
    (["--web.telemetry-path=/a b"], "--web.telemetry-path"),
    (["--web.telemetry-path=/me trics"], "--web.telemetry-path"),
    (["--web.config.file=/nonexistent/web.yml"], "/nonexistent/web.yml"),
    (["--web.systemd-socket"], "--web.systemd-socket"),
    (["--web.disable-exporter-metrics=yes"], "--web.disable-exporter-metrics"),
    (["--collector.machines=1"], "--collector.machines"),
    (["--collector.machines=yes"], "--collector.machines"),
    (["--no-collector.machine-info=0"], "--no-collector.machine-info"),
    (["--collector.session-info=true"], "--collector.session-info"),
    (["--refresh.debounce=fast"], "--refresh.debounce"),
    (["--refresh.debounce=-5ms"], "--refresh.debounce"),
    (["--refresh.debounce=5"], "--refresh.debounce"),
    (["--refresh.debounce=abc"], "--refresh.debounce"),
    (["--refresh.debounce=-1s"], "--refresh.debounce"),
    (["--refresh.debounce="], "--refresh.debounce"),
    (["--refresh.resync-interval=5x"], "--refresh.resync-interval"),
    (["--refresh.resync-interval=forever"], "--refresh.resync-interval"),
    (["--refresh.resync-interval=1y"], "--refresh.resync-interval"),
    (["--log.level=loud"], "--log.level"),
    (["--log.format=xml"], "--log.format"),
    (["--once=yes"], "--once"),
    (["--version=2"], "--version"),
    (["--no-such-flag"], "--no-such-flag"),
    (["--collector.bogus"], "--collector.bogus"),
    (["--web.listen"], "--web.listen"),
    (["positional"], "positional"),
]


def test_every_bad_flag_exits_2_naming_the_flag(logind: LogindState) -> None:
    # All at once, each a real process, to keep the run short.
    env = {k: v for k, v in os.environ.items() if not k.startswith("LISTEN_")}
    running = []
    for args, named in BAD_FLAGS:
        command = [sys.executable, "-m", "login_exporter",
                   f"--web.listen-address=127.0.0.1:{free_port()}", *args]  # fmt: skip
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)  # fmt: skip
        running.append((args, named, process))
    failures = []
    for args, named, process in running:
        try:
            stdout, stderr = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
            failures.append(f"{args}: still running (accepted?)")
            continue
        if process.returncode != 2 or named not in stderr or "Traceback" in stderr or stdout:
            failures.append(f"{args}: exit {process.returncode}, stderr {stderr.strip()!r}")
    assert not failures, "\n".join(failures)


# -- web config: a bad field stops the real program (each field: tests/unit/test_webconfig.py) --


def test_bad_web_config_stops_the_real_process_before_it_listens(
    logind: LogindState, tmp_path: Path
) -> None:
    config = tmp_path / "web.yml"
    config.write_text("basic_auth_users:\n  alice: $1$salt$qJH7.N4xYta3aEG/dfqo/0\n")
    port = free_port()
    result = subprocess.run(
        [sys.executable, "-m", "login_exporter", f"--web.listen-address=127.0.0.1:{port}",
         f"--web.config.file={config}"],
        cwd=ROOT, capture_output=True, text=True, timeout=20,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert str(config) in result.stderr and "basic_auth_users.alice" in result.stderr
    assert "bcrypt" in result.stderr
    assert "Traceback" not in result.stderr
