"""Liveness over a private /run/systemd: the invocation link of systemd-logind.service, watched
with real inotify, as systemd creates, replaces and removes it."""

from __future__ import annotations

import select
import shutil

from login_exporter.liveness import RULE_FILES, RULE_UNIT, Liveness, Status
from tests.support.logind_state import LogindState

LOGIND = "systemd-logind.service"
WAKE = 2.0  # an expected wake arrives at once; this only bounds a failure
QUIET = 0.05


def _woke(liveness: Liveness, timeout: float) -> bool:
    fd = liveness.fileno()
    assert fd is not None
    return bool(select.select([fd], [], [], timeout)[0])


def test_without_the_units_directory_the_files_rule_is_in_force(logind: LogindState) -> None:
    liveness = Liveness()
    assert not liveness.open()
    assert liveness.fileno() is None
    assert liveness.status() == Status(RULE_FILES, None, 0)
    assert not liveness.drain()


def test_stop_start_and_restart_are_seen(logind: LogindState) -> None:
    logind.invocation(LOGIND, "aaaa")
    liveness = Liveness()
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
    liveness = Liveness()
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
    liveness = Liveness()
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
    liveness = Liveness()
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
    liveness = Liveness()
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
