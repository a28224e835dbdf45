"""login_exporter.sdlogin.Monitor on real libsystemd: inotify on the private /run/systemd."""

from __future__ import annotations

import errno
import os
import select
import time
from collections.abc import Callable

import pytest

from login_exporter import sdlogin
from tests.support.logind_state import LogindState

CATEGORIES = tuple(sdlogin.MONITOR_DIRECTORIES)
WAKE_MS = 2000  # an expected wake arrives at once; this only bounds a failure
QUIET_MS = 20  # inotify queues events before the syscall returns: a short wait is enough


def _woke(monitor: sdlogin.Monitor, timeout_ms: int) -> bool:
    poller = select.poll()
    poller.register(monitor, monitor.get_events())
    events = poller.poll(timeout_ms)
    assert all(fd == monitor.fileno() for fd, _ in events)
    return bool(events)


def _write(logind: LogindState, category: str) -> None:
    """Change one object of ``category`` the way logind/machined do (temp file + rename)."""
    if category == "session":
        logind.session("11", uid=1000, seat="seat0")
    elif category == "seat":
        logind.seat("seat-kiosk1")
    elif category == "uid":
        logind.user(1000, sessions=["11"])
    else:
        logind.machine("ct1")


def _unlink(logind: LogindState, category: str) -> None:
    if category == "session":
        logind.remove("sessions", "11")
    elif category == "seat":
        logind.remove("seats", "seat-kiosk1")
    elif category == "uid":
        logind.remove("users", "1000")
    else:
        logind.remove_machine("ct1")


def _monitors() -> dict[str, sdlogin.Monitor]:
    return {category: sdlogin.Monitor(category) for category in CATEGORIES}


def _close(monitors: dict[str, sdlogin.Monitor]) -> None:
    for monitor in monitors.values():
        monitor.close()


@pytest.mark.parametrize("category", CATEGORIES)
def test_monitor_wakes_for_its_own_category_only(logind: LogindState, category: str) -> None:
    monitors = _monitors()
    try:
        for action in (_write, _write, _unlink):  # create, rewrite (rename over), unlink
            action(logind, category)
            for other, monitor in monitors.items():
                if other == category:
                    assert _woke(monitor, WAKE_MS), (action.__name__, category)
                    monitor.flush()
                    assert not _woke(monitor, 0), "flush() did not clear the wake"
                else:
                    assert not _woke(monitor, QUIET_MS), (action.__name__, category, other)
    finally:
        _close(monitors)


@pytest.mark.parametrize("category", CATEGORIES)
def test_null_category_monitor_wakes_for_all_four(logind: LogindState, category: str) -> None:
    with sdlogin.Monitor() as monitor:
        assert monitor.category is None
        assert not _woke(monitor, 0)
        _write(logind, category)
        assert _woke(monitor, WAKE_MS)
        monitor.flush()
        assert not _woke(monitor, 0)
        _unlink(logind, category)
        assert _woke(monitor, WAKE_MS)
        monitor.flush()
        assert not _woke(monitor, QUIET_MS)


def test_plain_rewrite_of_an_existing_file_does_not_wake(logind: LogindState) -> None:
    # What the resync safety net exists for: an in-place rewrite is invisible to the monitor.
    logind.session("12", uid=1000, plain=True)
    with sdlogin.Monitor("session") as monitor:
        logind.session("12", uid=1000, state="closing", plain=True)
        assert not _woke(monitor, QUIET_MS)
        assert sdlogin.session_get_state("12") == "closing"


@pytest.mark.parametrize("category", CATEGORIES)
def test_monitor_wakes_for_a_new_file_linked_into_place(logind: LogindState, category: str) -> None:
    # systemd 262 creates new state files as an O_TMPFILE linked into place: IN_CREATE, no
    # IN_MOVED_TO. libsystemd's own monitor does not wake for that; ours must.
    logind.link_new_files = True
    monitors = _monitors()
    try:
        with sdlogin.Monitor() as every:
            _write(logind, category)
            assert _woke(monitors[category], WAKE_MS), category
            assert _woke(every, WAKE_MS), category
            for other, monitor in monitors.items():
                if other != category:
                    assert not _woke(monitor, QUIET_MS), (category, other)
    finally:
        _close(monitors)


def test_wake_persists_until_flush(logind: LogindState) -> None:
    with sdlogin.Monitor("session") as monitor:
        _write(logind, "session")
        assert _woke(monitor, WAKE_MS)
        assert _woke(monitor, 0), "the wake must persist until flush()"
        monitor.flush()
        assert not _woke(monitor, 0)
        monitor.flush()  # flushing with nothing pending is fine
        assert not _woke(monitor, 0)


def test_several_changes_coalesce_into_one_flush(logind: LogindState) -> None:
    with sdlogin.Monitor("session") as monitor:
        for i in range(50):
            logind.session(str(100 + i), uid=1000)
        assert _woke(monitor, WAKE_MS)
        monitor.flush()
        assert not _woke(monitor, 0)
        assert len(sdlogin.sessions()) == 50


def test_get_timeout_semantics(logind: LogindState) -> None:
    with sdlogin.Monitor() as monitor:
        # libsystemd never asks for a timeout: (uint64_t)-1, i.e. None and -1 ms.
        assert monitor.get_timeout() is None
        assert monitor.get_timeout_ms() == -1
        assert monitor.get_events() == select.POLLIN
        fd = monitor.fileno()
        assert isinstance(fd, int) and fd >= 0
        # The seed's idiom: poll with the monitor's own timeout after a change.
        _write(logind, "machine")
        poller = select.poll()
        poller.register(monitor, monitor.get_events())
        assert poller.poll(monitor.get_timeout_ms()) == [(fd, select.POLLIN)]


def test_seed_example(logind: LogindState) -> None:
    m = sdlogin.Monitor("machine")
    p = select.poll()
    p.register(m, m.get_events())
    assert sdlogin.machine_names() == []
    logind.machine("vm1", klass="vm")
    assert p.poll() == [(m.fileno(), select.POLLIN)]
    assert sdlogin.machine_names() == ["vm1"]
    m.close()


def test_closed_monitor(logind: LogindState) -> None:
    monitor = sdlogin.Monitor("seat")
    fd = monitor.fileno()
    assert not monitor.closed
    monitor.close()
    assert monitor.closed
    monitor.close()  # idempotent
    calls: list[Callable[[], object]] = [
        monitor.fileno,
        monitor.get_events,
        monitor.get_timeout,
        monitor.get_timeout_ms,
    ]
    for call in calls:
        with pytest.raises(sdlogin.InvalidArgumentError, match="closed"):
            call()
    assert monitor.flush() is None  # type: ignore[func-returns-value] # nothing to reset (python-systemd: the same)
    assert "closed" in repr(monitor)
    # The fd went with it.
    with pytest.raises(OSError) as info:
        os.fstat(fd)
    assert info.value.errno == errno.EBADF


def test_context_manager_closes(logind: LogindState) -> None:
    with sdlogin.Monitor("uid") as monitor:
        assert monitor.category == "uid"
        assert f"fd={monitor.fileno()}" in repr(monitor)
    assert monitor.closed
    with pytest.raises(ValueError):
        monitor.fileno()
    # Closing inside the block is fine too.
    with sdlogin.Monitor() as other:
        other.close()
    assert other.closed


def test_many_monitors_do_not_leak_fds(logind: LogindState) -> None:
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(50):
        with sdlogin.Monitor():
            pass
        sdlogin.Monitor("session")  # dropped without close(): __del__ frees it
    assert len(os.listdir("/proc/self/fd")) <= before + 1


def test_unknown_category_is_a_valueerror(logind: LogindState) -> None:
    for category in ("bogus", "sessions", "users", "Session", ""):
        with pytest.raises(ValueError, match="category"):
            sdlogin.Monitor(category)
    with pytest.raises(TypeError):
        sdlogin.Monitor(1)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("category", "directory"),
    [("session", "sessions"), ("seat", "seats"), ("uid", "users"), ("machine", "machines")],
)
def test_missing_directory_is_enoent_naming_the_call(
    logind: LogindState, category: str, directory: str
) -> None:
    (logind.root / directory).rmdir()
    with pytest.raises(OSError) as info:
        sdlogin.Monitor(category)
    assert info.value.errno == errno.ENOENT
    assert not isinstance(info.value, ValueError)
    assert "sd_login_monitor_new" in str(info.value)
    assert category in str(info.value)
    with pytest.raises(OSError) as info:
        sdlogin.Monitor()
    assert info.value.errno == errno.ENOENT
    # The other categories still work.
    for other in CATEGORIES:
        if other != category:
            sdlogin.Monitor(other).close()


def test_monitor_survives_directory_recreation_only_by_reopening(logind: LogindState) -> None:
    # A monitor watches directories, not paths: once logind's directory is replaced, a new one
    # is needed. This documents the behaviour the agent's resync has to cope with.
    monitor = sdlogin.Monitor("session")
    try:
        logind.remove_directories()
        time.sleep(0.01)
        LogindState(logind.root)  # recreates the directories
        monitor.flush()
        logind.session("20", uid=1000)
        assert not _woke(monitor, QUIET_MS)
        with sdlogin.Monitor("session") as fresh:
            logind.session("21", uid=1000)
            assert _woke(fresh, WAKE_MS)
    finally:
        monitor.close()
