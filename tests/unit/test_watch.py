"""inotify event parsing, the names they yield, and the Watcher over real sd-login monitors."""

from __future__ import annotations

import os
import select
import shutil
import struct
import time

import pytest

from login_exporter.inotify import (
    IN_ATTRIB,
    IN_CREATE,
    IN_DELETE,
    IN_IGNORED,
    IN_MOVED_TO,
    IN_Q_OVERFLOW,
    IN_UNMOUNT,
    parse_events,
)
from login_exporter.state import Changes
from login_exporter.watch import Watcher, changes_from_events
from tests.support.logind_state import LogindState

IN_CLOSE_WRITE = 0x8


def event(mask: int, name: str = "", wd: int = 1, pad_to: int = 16) -> bytes:
    """One inotify event as the kernel lays it out (name NUL-padded)."""
    raw = name.encode()
    length = 0 if not raw else ((len(raw) + 1 + pad_to - 1) // pad_to) * pad_to
    return struct.pack("iIII", wd, mask, 0, length) + raw.ljust(length, b"\0")


# -- parse_events ---------------------------------------------------------------------------------


def test_parse_events_reads_mask_and_name_of_each_event() -> None:
    data = event(IN_MOVED_TO, "12") + event(IN_DELETE, "seat-kiosk1") + event(IN_Q_OVERFLOW, wd=-1)
    assert parse_events(data) == [(1, IN_MOVED_TO, "12"), (1, IN_DELETE, "seat-kiosk1"),
                                  (-1, IN_Q_OVERFLOW, "")]  # fmt: skip


def test_parse_events_of_nothing_is_empty() -> None:
    assert parse_events(b"") == []


def test_parse_events_keeps_undecodable_names() -> None:
    data = struct.pack("iIII", 1, IN_MOVED_TO, 0, 16) + b"caf\xe9".ljust(16, b"\0")
    ((_wd, mask, name),) = parse_events(data)
    assert mask == IN_MOVED_TO and name.encode("utf-8", "surrogateescape") == b"caf\xe9"


@pytest.mark.parametrize("cut", [1, 8, 15, 17, 20, 31])
def test_parse_events_rejects_truncated_bytes(cut: int) -> None:
    data = event(IN_MOVED_TO, "12") + event(IN_DELETE, "13")  # 32 + 32 bytes
    with pytest.raises(ValueError):
        parse_events(data[: 32 + cut])


# -- changes_from_events --------------------------------------------------------------------------


def test_session_events_name_sessions() -> None:
    changes, dead = changes_from_events(
        "session", [(IN_MOVED_TO, "12"), (IN_DELETE, "c3"), (IN_MOVED_TO, "12")]
    )
    assert changes.sessions == {"12", "c3"}
    assert not changes.everything and not dead
    assert not (changes.seats or changes.users or changes.machines)


def test_seat_user_and_machine_events_name_their_kind() -> None:
    seats, _ = changes_from_events("seat", [(IN_MOVED_TO, "seat0"), (IN_DELETE, "seat-kiosk1")])
    assert seats.seats == {"seat0", "seat-kiosk1"} and not seats.sessions
    users, _ = changes_from_events("uid", [(IN_MOVED_TO, "1000"), (IN_DELETE, "1001")])
    assert users.users == {1000, 1001}
    machines, _ = changes_from_events("machine", [(IN_MOVED_TO, "vm1"), (IN_DELETE, "ct1")])
    assert machines.machines == {"vm1", "ct1"}


@pytest.mark.parametrize(
    ("category", "name"),
    [
        ("session", ".#12.abcdef"),  # logind's temp file before the rename
        ("session", ".#12"),
        ("session", "12.ref"),  # the session FIFO
        ("seat", ".#seat0XyZ12"),
        ("uid", ".#1000abc"),
        ("uid", "not-a-uid"),
        ("machine", "unit:vm1-leader.service"),
        ("machine", ".#vm1"),
    ],
)
def test_temporary_and_auxiliary_names_are_ignored(category: str, name: str) -> None:
    changes, dead = changes_from_events(category, [(IN_MOVED_TO, name), (IN_DELETE, name)])
    assert not changes and not dead


def test_events_other_than_moved_to_create_and_delete_name_nothing() -> None:
    changes, dead = changes_from_events("session", [(IN_CLOSE_WRITE, "12"), (IN_ATTRIB, "12")])
    assert not changes and not dead


@pytest.mark.parametrize(
    ("category", "name", "named"),
    [("session", "c2", {"c2"}), ("machine", "vm9", {"vm9"}), ("uid", "1000", {1000}),
     ("seat", "seat-kiosk2", {"seat-kiosk2"})],
)  # fmt: skip
def test_a_name_created_in_place_is_named(category: str, name: str, named: set[object]) -> None:
    # systemd 262 links a new file into place: IN_CREATE is its only event.
    changes, dead = changes_from_events(category, [(IN_CREATE, name), (IN_CLOSE_WRITE, name)])
    assert not dead
    assert (changes.sessions | changes.seats | changes.users | changes.machines) == named


@pytest.mark.parametrize("name", [".#c2XyZ12", "#429", ".#seat0abc", "#"])
def test_temporary_names_created_name_nothing(name: str) -> None:
    # 252/257 create ".#NAME..." before renaming it; these wake the monitor but never refresh.
    changes, dead = changes_from_events("session", [(IN_CREATE, name), (IN_DELETE, name)])
    assert not changes and not dead


def test_queue_overflow_asks_for_everything() -> None:
    changes, dead = changes_from_events("session", [(IN_MOVED_TO, "1"), (IN_Q_OVERFLOW, "")])
    assert changes.everything and not dead


@pytest.mark.parametrize("mask", [IN_IGNORED, IN_UNMOUNT, IN_UNMOUNT | IN_IGNORED])
def test_removed_watch_is_dead_and_asks_for_everything(mask: int) -> None:
    changes, dead = changes_from_events("seat", [(mask, "")])
    assert dead and changes.everything


# -- Watcher over real sd-login monitors (private tmpfs) -----------------------------------------


def test_watcher_names_files_linked_into_place(logind: LogindState) -> None:
    logind.link_new_files = True
    watcher = Watcher(["session", "uid", "machine"])
    try:
        assert watcher.open_missing() == []
        logind.machine("vm3", klass="vm")
        logind.session("c5", uid=1000)
        logind.user(1000)
        total = Changes()
        for fd, category in watcher.fds().items():
            assert wait_readable(fd), category
            total.merge(watcher.drain(category))
        assert total.machines == {"vm3"} and total.sessions == {"c5"} and total.users == {1000}
        assert not total.everything
    finally:
        watcher.close()


def wait_readable(fd: int, timeout: float = 2.0) -> bool:
    return bool(select.select([fd], [], [], timeout)[0])


def test_watcher_drains_renamed_and_deleted_names(logind: LogindState) -> None:
    watcher = Watcher(["session", "seat", "uid", "machine"])
    try:
        assert watcher.open_missing() == []
        assert watcher.complete
        logind.session("7", uid=1000)
        logind.user(1000)
        logind.machine("vm1", klass="vm")
        fds = watcher.fds()
        assert sorted(fds.values()) == ["machine", "seat", "session", "uid"]
        total = Changes()
        for fd, category in fds.items():
            if category != "seat":
                assert wait_readable(fd), category
            total.merge(watcher.drain(category))
        assert total.sessions == {"7"} and total.users == {1000} and total.machines == {"vm1"}
        assert not total.everything
        # Drained and flushed: nothing pending now.
        assert not select.select(list(fds), [], [], 0)[0]
        logind.remove("sessions", "7")
        session_fd = next(fd for fd, c in fds.items() if c == "session")
        assert wait_readable(session_fd)
        assert watcher.drain("session").sessions == {"7"}
    finally:
        watcher.close()


def test_plain_rewrite_wakes_no_monitor(logind: LogindState) -> None:
    logind.session("8", uid=1000, plain=True)
    watcher = Watcher(["session"])
    try:
        watcher.open_missing()
        logind.session("8", uid=1000, state="closing", plain=True)
        assert not select.select(list(watcher.fds()), [], [], 0.2)[0]
    finally:
        watcher.close()


def test_watcher_opens_nothing_without_directories_and_closes_dead_watches(
    logind: LogindState,
) -> None:
    logind.remove_directories()
    watcher = Watcher(["session", "seat"])
    try:
        failures = watcher.open_missing()
        assert sorted(category for category, _ in failures) == ["seat", "session"]
        assert not watcher.complete and watcher.fds() == {}
        assert watcher.drain("session").everything  # no monitor: read everything
        LogindState()  # re-create the directories
        assert watcher.open_missing() == [] and watcher.complete
        seat_fd = next(fd for fd, c in watcher.fds().items() if c == "seat")
        shutil.rmtree(logind.root / "seats")
        assert wait_readable(seat_fd)
        changes = watcher.drain("seat")
        assert changes.everything
        assert "seat" not in watcher.monitors and not watcher.complete
        assert "session" in watcher.monitors
    finally:
        watcher.close()


# -- monitor timeouts (sd_login_monitor_get_timeout) ----------------------------------------------


def test_real_monitors_ask_for_no_timeout(logind: LogindState) -> None:
    watcher = Watcher(["session", "seat", "uid", "machine"])
    try:
        assert watcher.open_missing() == []
        assert watcher.next_timeout() is None
        assert not watcher.expire(time.monotonic())
    finally:
        watcher.close()


class TimedMonitor:
    """Stands in for a monitor whose library asks for a timeout (pure logic of expire())."""

    def __init__(self, timeout_usec: int, data: bytes) -> None:
        self.timeout_usec = timeout_usec
        self.read_fd, write_fd = os.pipe2(os.O_NONBLOCK)
        os.write(write_fd, data)
        os.close(write_fd)
        self.flushes = 0

    def get_timeout(self) -> int:
        return self.timeout_usec

    def fileno(self) -> int:
        return self.read_fd

    def flush(self) -> None:
        self.flushes += 1

    def close(self) -> None:
        os.close(self.read_fd)


def test_expired_monitor_is_drained_and_flushed_and_pending_one_is_not() -> None:
    now = time.monotonic()
    due = TimedMonitor(int((now - 1) * 1e6), event(IN_MOVED_TO, "42"))
    later = TimedMonitor(int((now + 60) * 1e6), event(IN_MOVED_TO, "vm7"))
    watcher = Watcher(["session", "machine"])
    watcher.monitors = {"session": due, "machine": later}  # type: ignore[dict-item]
    try:
        assert watcher.next_timeout() == pytest.approx(now - 1, abs=1e-3)
        changes = watcher.expire(now)
        assert changes.sessions == {"42"} and not changes.machines
        assert (due.flushes, later.flushes) == (1, 0)
    finally:
        watcher.close()
