"""Liveness over a private /run/systemd: the invocation link of systemd-logind.service, watched
with real inotify, as systemd creates, replaces and removes it; and, without systemd's units,
elogind's pid file (in a directory of the test's own) and the process it names, as elogind
writes and removes it and as it is killed."""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from login_exporter.liveness import RULE_FILES, RULE_PIDFILE, RULE_UNIT, Liveness, Status
from tests.support.logind_state import LogindState

LOGIND = "systemd-logind.service"
WAKE = 2.0  # an expected wake arrives at once; this only bounds a failure
QUIET = 0.05


def _woke(liveness: Liveness, timeout: float) -> bool:
    fd = liveness.fileno()
    assert fd is not None
    return bool(select.select([fd], [], [], timeout)[0])


@pytest.fixture
def pid_file(tmp_path: Path) -> Path:
    """Where the test's elogind writes its pid (the real one: /run/elogind.pid)."""
    return tmp_path / "run" / "elogind.pid"


def test_without_the_units_directory_the_files_rule_is_in_force(
    logind: LogindState, pid_file: Path
) -> None:
    liveness = Liveness(pid_file=str(pid_file))
    assert not liveness.open()  # no directory for elogind's pid file either
    assert liveness.fileno() is None
    assert liveness.status() == Status(RULE_FILES, None, 0)
    assert not liveness.drain()


def test_stop_start_and_restart_are_seen(logind: LogindState) -> None:
    logind.invocation(LOGIND, "aaaa")
    liveness = Liveness(pid_file="/nonexistent/elogind.pid")
    try:
        assert liveness.open()
        assert liveness.status() == Status(RULE_UNIT, True, 0)
        logind.invocation(LOGIND, None)  # stop
        assert _woke(liveness, WAKE)
        assert liveness.drain()
        assert liveness.status() == Status(RULE_UNIT, False, 0)
        logind.invocation(LOGIND, "bbbb")  # start: a new invocation id
        assert _woke(liveness, WAKE)
        assert liveness.drain()
        assert liveness.status() == Status(RULE_UNIT, True, 1)
        logind.invocation(LOGIND, "cccc")  # restart seen only as the link replaced
        assert _woke(liveness, WAKE)
        assert liveness.drain()
        assert liveness.status() == Status(RULE_UNIT, True, 2)
    finally:
        liveness.close()


def test_a_start_after_the_first_view_counts_and_the_first_view_does_not(
    logind: LogindState,
) -> None:
    (logind.root / "units").mkdir()
    liveness = Liveness(pid_file="/nonexistent/elogind.pid")
    try:
        assert liveness.open()
        assert liveness.status() == Status(RULE_UNIT, False, 0)
        logind.invocation(LOGIND, "aaaa")
        assert _woke(liveness, WAKE)
        assert liveness.drain()
        assert liveness.status() == Status(RULE_UNIT, True, 1)
    finally:
        liveness.close()


def test_other_units_do_not_wake_it_while_logind_runs(logind: LogindState) -> None:
    logind.invocation(LOGIND, "aaaa")
    liveness = Liveness(pid_file="/nonexistent/elogind.pid")
    try:
        assert liveness.open()
        logind.invocation("cron.service", "1111")
        logind.invocation("cron.service", None)
        logind.invocation("systemd-logind-varlink.socket", "2222")
        assert not _woke(liveness, QUIET)
    finally:
        liveness.close()


def test_other_units_change_nothing_while_logind_is_stopped(logind: LogindState) -> None:
    (logind.root / "units").mkdir()
    liveness = Liveness(pid_file="/nonexistent/elogind.pid")
    try:
        assert liveness.open()
        logind.invocation("cron.service", "1111")
        assert _woke(liveness, WAKE)  # the directory is watched while the link is missing
        assert not liveness.drain()
        assert liveness.status() == Status(RULE_UNIT, False, 0)
    finally:
        liveness.close()


def test_units_directory_removed_falls_back_then_reopens(logind: LogindState) -> None:
    logind.invocation(LOGIND, "aaaa")
    liveness = Liveness(pid_file="/nonexistent/elogind.pid")
    try:
        assert liveness.open()
        shutil.rmtree(logind.root / "units")
        assert _woke(liveness, WAKE)
        assert liveness.drain()
        assert liveness.status() == Status(RULE_FILES, None, 0)
        assert liveness.fileno() is None
        logind.invocation(LOGIND, "aaaa")  # /run/systemd restored, same logind
        assert liveness.open()
        assert liveness.status() == Status(RULE_UNIT, True, 0)
    finally:
        liveness.close()


# -- elogind: the pidfile rule --------------------------------------------------------------------


@pytest.fixture
def elogind(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Start processes named elogind-daemon (a copy of sleep); all killed at the end."""
    binary = tmp_path / "elogind-daemon"
    shutil.copy2(shutil.which("sleep") or "/bin/sleep", binary)
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        proc.kill()
        proc.wait()


def _start(started: list[subprocess.Popen[bytes]], tmp_path: Path) -> int:
    proc = subprocess.Popen([str(tmp_path / "elogind-daemon"), "600"])
    started.append(proc)
    # As elogind writes its own pid file: only once it runs as itself (exec done).
    comm = Path(f"/proc/{proc.pid}/comm")
    for _ in range(1000):
        if comm.read_text().strip() == "elogind-daemon":
            return proc.pid
        time.sleep(0.002)
    raise AssertionError("the stand-in elogind never ran")


def _write_pid(pid_file: Path, pid: int, atomic: bool = True) -> None:
    if atomic:
        tmp = pid_file.with_name(".elogind.pid.tmp")
        tmp.write_text(f"{pid}\n")
        tmp.rename(pid_file)
    else:  # created empty, then written: two events
        with open(pid_file, "w") as f:
            f.flush()
            os.fsync(f.fileno())
            f.write(f"{pid}\n")


def _changed(liveness: Liveness) -> Status:
    assert _woke(liveness, WAKE)
    assert liveness.drain()
    return liveness.status()


def test_elogind_stop_start_and_restart_are_seen(
    logind: LogindState, pid_file: Path, elogind: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    pid_file.parent.mkdir()
    _write_pid(pid_file, _start(elogind, tmp_path))
    liveness = Liveness(pid_file=str(pid_file))
    try:
        assert liveness.open()
        assert liveness.status() == Status(RULE_PIDFILE, True, 0)
        elogind[0].terminate()
        pid_file.unlink()  # elogind removes its pid file on the way out
        assert _changed(liveness) == Status(RULE_PIDFILE, False, 0)
        _write_pid(pid_file, _start(elogind, tmp_path))  # start
        assert _changed(liveness) == Status(RULE_PIDFILE, True, 1)
        _write_pid(pid_file, _start(elogind, tmp_path), atomic=False)  # rewritten in place
        assert _changed(liveness) == Status(RULE_PIDFILE, True, 2)
    finally:
        liveness.close()


def test_a_killed_elogind_is_seen_by_its_pidfd_though_its_file_stays(
    logind: LogindState, pid_file: Path, elogind: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    pid_file.parent.mkdir()
    _write_pid(pid_file, _start(elogind, tmp_path))
    liveness = Liveness(pid_file=str(pid_file))
    try:
        assert liveness.open()
        elogind[0].send_signal(signal.SIGKILL)
        elogind[0].wait()
        assert _changed(liveness) == Status(RULE_PIDFILE, False, 0)
        assert pid_file.exists()
        # The pidfd, readable for good now, is no longer polled: no busy wake-ups.
        assert not _woke(liveness, QUIET)
        _write_pid(pid_file, _start(elogind, tmp_path))  # started again over the stale file
        assert _changed(liveness) == Status(RULE_PIDFILE, True, 1)
    finally:
        liveness.close()


def test_elogind_started_after_the_exporter_is_counted_once(
    logind: LogindState, pid_file: Path, elogind: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    pid_file.parent.mkdir()
    liveness = Liveness(pid_file=str(pid_file))
    try:
        assert liveness.open()  # waiting for the pid file: the files rule is in force meanwhile
        assert liveness.status() == Status(RULE_FILES, None, 0)
        (pid_file.parent / "other.pid").write_text("1\n")  # other daemons' files change nothing
        assert _woke(liveness, WAKE)
        assert not liveness.drain()
        _write_pid(pid_file, _start(elogind, tmp_path), atomic=False)
        deadline = 20
        while liveness.status().rule != RULE_PIDFILE or liveness.status().running is not True:
            assert _woke(liveness, WAKE) and deadline
            liveness.drain()
            deadline -= 1
        # One start, although the file was seen empty first.
        assert liveness.status() == Status(RULE_PIDFILE, True, 1)
    finally:
        liveness.close()


def test_a_pid_it_cannot_see_as_elogind_leaves_the_file_to_decide(
    logind: LogindState, pid_file: Path
) -> None:
    # Another pid namespace's pid (here: one naming no elogind process): no pidfd, the file says.
    pid_file.parent.mkdir()
    _write_pid(pid_file, os.getpid())
    liveness = Liveness(pid_file=str(pid_file))
    try:
        assert liveness.open()
        assert liveness.status() == Status(RULE_PIDFILE, True, 0)
        pid_file.unlink()
        assert _changed(liveness) == Status(RULE_PIDFILE, False, 0)
    finally:
        liveness.close()


def test_systemds_units_win_over_a_pid_file(
    logind: LogindState, pid_file: Path, elogind: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    pid_file.parent.mkdir()
    _write_pid(pid_file, _start(elogind, tmp_path))
    logind.invocation(LOGIND, "aaaa")
    liveness = Liveness(pid_file=str(pid_file))
    try:
        assert liveness.open()
        assert liveness.status() == Status(RULE_UNIT, True, 0)
    finally:
        liveness.close()


def test_waiting_for_elogind_gives_way_to_units_that_appear(
    logind: LogindState, pid_file: Path
) -> None:
    pid_file.parent.mkdir()
    liveness = Liveness(pid_file=str(pid_file))
    try:
        assert liveness.open()
        assert liveness.status() == Status(RULE_FILES, None, 0)
        logind.invocation(LOGIND, "aaaa")  # /run/systemd/units mounted meanwhile
        assert liveness.open()  # a resync, SIGHUP or new monitors look again
        assert liveness.status() == Status(RULE_UNIT, True, 0)
    finally:
        liveness.close()
