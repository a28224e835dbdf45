"""The Watcher over real sd-login monitors on the test's private /run/systemd."""

from __future__ import annotations

import select
import shutil
import time

from login_exporter.state import Changes
from login_exporter.watch import Watcher
from tests.support.logind_state import LogindState

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
