"""Faults injected for real: broken state files, objects vanishing mid-read, storms, signals.

Broken files and races run the in-process :class:`login_exporter.state.Refresher` on real files
(real libsystemd); storms, signals and the short soak run the real exporter process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from bench import soak
from login_exporter.state import EMPTY, Changes, RefreshCancelled, Refresher, Snapshot
from tests.support import proc
from tests.support.exporter import ROOT, Exporter, Samples, start_exporter
from tests.support.logind_state import HEADER, LogindState

GOOD_SESSION = "1"


def _good_session_text() -> str:
    return (
        f"{HEADER}UID=1000\nUSER=alice\nACTIVE=1\nIS_DISPLAY=0\nSTATE=active\nREMOTE=0\n"
        "TYPE=tty\nORIGINAL_TYPE=tty\nCLASS=user\nSCOPE=session-9.scope\n"
        "FIFO=/run/systemd/sessions/9.ref\nSEAT=seat0\nSERVICE=login\nPOSITION=0\nLEADER=1\n"
        "REALTIME=1795345858635963\nMONOTONIC=2572222987\n"
    )


def _write_healthy(logind: LogindState) -> None:
    """seat0 with one good session and its user: the part that must stay served."""
    logind.session(GOOD_SESSION, uid=1000, seat="seat0", type="tty", klass="user")
    logind.seat0(sessions=[(GOOD_SESSION, 1000)], active=GOOD_SESSION)
    logind.user(1000, sessions=[GOOD_SESSION], seats=["seat0"])


@dataclass(frozen=True)
class BadFile:
    """One broken state file: where it goes, its bytes, and what libsystemd makes of it."""

    category: str
    name: str
    content: Callable[[], bytes]
    errno_seen: str  # what sd-login returns, for the reader of a failure


BINARY = bytes(range(256)) * 16  # NULs and high bytes: libsystemd's parser says EBADMSG
BAD_FILES = [
    BadFile("sessions", "20", lambda: b"", "EIO (no STATE)"),
    BadFile("sessions", "21", lambda: f"{HEADER}UID=10".encode(), "EIO: truncated before STATE"),
    BadFile(
        "sessions",
        "22",
        lambda: _good_session_text()[: _good_session_text().index("REMOTE=")].encode(),
        "ENODATA: truncated before REMOTE",
    ),
    BadFile("sessions", "23", lambda: BINARY, "EBADMSG: binary"),
    BadFile("sessions", "24", lambda: b"\x00\x01garbage=== =\n=\nUID\n", "EBADMSG: garbled"),
    BadFile(
        "sessions",
        "25",
        lambda: b"junk line\nUID=7\nSTATE=online\n===\nACTIVE=maybe\n",
        "EINVAL: ACTIVE is not a boolean",
    ),
    BadFile("sessions", "26", lambda: BINARY * 256, "EBADMSG: 1 MiB of binary"),
    BadFile(
        "sessions",
        "27",
        lambda: f"{HEADER}UID=5\n".encode() + b"X=" + b"A" * (1 << 20) + b"\n",
        "EIO: 1 MiB long, no STATE",
    ),
    BadFile("sessions", "28", lambda: f"{HEADER}UID=nobody\nSTATE=x\n".encode(), "EINVAL uid"),
    BadFile("seats", "seat1", lambda: BINARY, "EBADMSG: binary seat"),
    BadFile(
        "seats",
        "seat2",
        lambda: (
            f"{HEADER}IS_SEAT0=0\nCAN_MULTI_SESSION=1\nCAN_TTY=1\nCAN_GRAPHICAL=1\n"
            "SESSIONS=1 30\nUIDS=1000\n"
        ).encode(),
        "EUCLEAN: SESSIONS and UIDS differ in length",
    ),
    BadFile("users", "1234", lambda: BINARY, "EBADMSG: binary user"),
    BadFile("machines", "vm9", lambda: BINARY, "EBADMSG: binary machine"),
]


def _bad_id(bad: BadFile) -> str:
    return f"{bad.category}/{bad.name}"


def _present(snapshot: Snapshot, bad: BadFile) -> bool:
    table = {
        "sessions": snapshot.sessions,
        "seats": snapshot.seats,
        "users": {str(k): v for k, v in snapshot.users.items()},
        "machines": snapshot.machines,
    }[bad.category]
    return bad.name in table


def _assert_healthy_part(snapshot: Snapshot) -> None:
    assert snapshot.logind_up
    assert GOOD_SESSION in snapshot.sessions
    assert snapshot.sessions[GOOD_SESSION].state == "active"
    assert snapshot.seats["seat0"].sessions == 1
    assert snapshot.users[1000].state == "active"


@pytest.mark.parametrize("bad", BAD_FILES, ids=_bad_id)
def test_broken_state_file_is_skipped_and_counted_as_a_read_error(
    logind: LogindState, bad: BadFile
) -> None:
    _write_healthy(logind)
    logind.write_raw(bad.category, bad.name, bad.content())

    snapshot = Refresher().refresh(EMPTY, Changes(everything=True))

    assert not _present(snapshot, bad), f"{bad.errno_seen}: object should be skipped"
    assert dict(snapshot.read_errors) == {"read": 1}, bad.errno_seen
    assert snapshot.read_races == 0
    _assert_healthy_part(snapshot)


def test_session_file_cut_after_its_state_reads_as_a_seatless_session(
    logind: LogindState,
) -> None:
    # What actually happens: libsystemd's parser accepts any prefix that still has UID, STATE,
    # ACTIVE and REMOTE; the missing SEAT/SERVICE read as "no data", so the session counts as
    # seatless with its type and class kept. Not an error, and nothing crashes.
    _write_healthy(logind)
    text = _good_session_text()
    logind.write_raw("sessions", "40", text[: text.index("SEAT=")])

    snapshot = Refresher(details=True).refresh(EMPTY, Changes(everything=True))

    cut = snapshot.sessions["40"]
    assert (cut.uid, cut.seat, cut.type, cut.klass, cut.service) == (1000, "", "tty", "user", None)
    assert dict(snapshot.read_errors) == {}
    _assert_healthy_part(snapshot)


def test_valid_session_padded_to_one_mebibyte_reads_normally(logind: LogindState) -> None:
    _write_healthy(logind)
    padding = ("#" + "x" * 1023 + "\n") * 1024
    logind.write_raw("sessions", "41", _good_session_text() + padding)

    snapshot = Refresher().refresh(EMPTY, Changes(everything=True))

    assert snapshot.sessions["41"].seat == "seat0"
    assert dict(snapshot.read_errors) == {}


def _sample(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def _sessions_total(samples: Samples) -> float:
    return sum(v for (name, _), v in samples.items() if name == "logind_sessions")


def test_real_exporter_skips_and_counts_every_broken_file_and_serves_the_rest(
    logind: LogindState,
) -> None:
    _write_healthy(logind)
    for bad in BAD_FILES:
        logind.write_raw(bad.category, bad.name, bad.content())
    exporter = start_exporter("--refresh.resync-interval=0")
    try:
        samples = exporter.samples()
        # One refresh so far (start-up): each broken object counted exactly once.
        assert _sample(samples, "logind_exporter_refreshes_total", reason="startup") == 1
        assert _sample(samples, "logind_exporter_errors_total", kind="read") == len(BAD_FILES)
        assert _sample(samples, "logind_up") == 1
        assert _sessions_total(samples) == 1
        assert _sample(samples, "logind_seat_present", seat="seat0") == 1
        assert _sample(samples, "logind_seat_present", seat="seat2") is None
        assert _sample(samples, "logind_users", state="active") == 1

        # A broken file arriving later is counted too, and the good change beside it served.
        logind.write_raw("sessions", "50", BINARY)
        logind.session("2", uid=1001, seat=None, remote=True, remote_host="203.0.113.9")
        samples = exporter.wait_for(lambda s: _sessions_total(s) == 2, what="session 2 served")
        errors = _sample(samples, "logind_exporter_errors_total", kind="read")
        assert errors is not None and errors > len(BAD_FILES)
        assert exporter.process.poll() is None
    finally:
        status, stderr = exporter.stop()
    assert status == 0, stderr
    assert "Traceback" not in stderr


# -- objects vanishing while a refresh reads them ---------------------------------------------


def _session_files(logind: LogindState) -> set[str]:
    return {
        name
        for name in os.listdir(logind.root / "sessions")
        if not name.startswith(".") and "." not in name
    }


def test_objects_vanishing_during_refreshes_never_surface_and_the_end_state_is_exact(
    logind: LogindState,
) -> None:
    logind.seat0()
    stop = threading.Event()
    failures: list[BaseException] = []
    written = {"count": 0}

    def churn() -> None:
        alive: list[str] = []
        serial = 100
        try:
            while not stop.is_set():
                serial += 1
                sid = str(serial)
                logind.session(sid, uid=2000 + serial % 7, seat=None)
                logind.user(2000 + serial % 7, sessions=[sid])
                alive.append(sid)
                if len(alive) > 20:
                    logind.remove("sessions", alive.pop(0))
                if serial % 3 == 0 and alive:
                    logind.remove("sessions", alive.pop(len(alive) // 2))
                if serial % 11 == 0:
                    with_uid = 2000 + (serial // 11) % 7
                    path = logind.root / "users" / str(with_uid)
                    if path.exists():
                        path.unlink()
                written["count"] += 1
        except BaseException as exc:  # reported by the test thread
            failures.append(exc)

    writer = threading.Thread(target=churn, name="churn")
    refresher = Refresher(details=True)
    snapshot = refresher.refresh(EMPTY, Changes(everything=True))
    races = errors = refreshes = 0
    writer.start()
    deadline = time.monotonic() + 4.0
    try:
        while time.monotonic() < deadline:
            # Alternate full re-reads and name-driven ones, as the agent does.
            names = set(list(snapshot.sessions)[:5])
            changes = Changes(everything=refreshes % 2 == 0, sessions=names)
            snapshot = refresher.refresh(snapshot, changes)
            races += snapshot.read_races
            errors += sum(snapshot.read_errors.values())
            refreshes += 1
    finally:
        stop.set()
        writer.join()
    assert not failures, failures
    print(f"{refreshes} refreshes, {written['count']} writer turns, {races} races")
    assert written["count"] > 1000, "the writer did not churn enough to race"
    assert races > 0, "no refresh ever raced with a removal: the test did not exercise it"
    assert errors == 0, "a vanished object was counted as a read error"

    final = refresher.refresh(snapshot, Changes(everything=True))
    fresh = Refresher(details=True).refresh(EMPTY, Changes(everything=True))
    assert set(final.sessions) == _session_files(logind)
    for sid, session in final.sessions.items():
        expected = fresh.sessions[sid]
        assert (session.uid, session.seat, session.state, session.active) == (
            expected.uid, expected.seat, expected.state, expected.active,
        )  # fmt: skip
        assert session.uid == 2000 + int(sid) % 7
    assert dict(final.users) == dict(fresh.users)
    assert final.read_races == 0 and dict(final.read_errors) == {}


# -- a storm of changes against the real process -----------------------------------------------

STORM = """
import sys, time
from tests.support.logind_state import LogindState
state = LogindState()
renames, seconds = int(sys.argv[1]), float(sys.argv[2])
pause = seconds / renames
for i in range(renames):
    sid = str(1 + i % 200)
    if i % 10 == 9:
        (state.root / "sessions" / sid).unlink(missing_ok=True)
    else:
        state.session(sid, uid=1000 + i % 5, seat=None,
                      state="active" if i % 2 else "online", active=bool(i % 2))
    if i % 50 == 0:
        time.sleep(pause * 50)
"""


def _expected_after_storm(renames: int) -> dict[str, int]:
    """state -> count of sessions the storm leaves behind (the last write of each id wins)."""
    last: dict[str, str | None] = {}
    for i in range(renames):
        sid = str(1 + i % 200)
        last[sid] = None if i % 10 == 9 else ("active" if i % 2 else "online")
    counts: dict[str, int] = {}
    for value in last.values():
        if value is not None:
            counts[value] = counts.get(value, 0) + 1
    return counts


def _sessions_by_state(samples: Samples) -> dict[str, int]:
    counts: dict[str, int] = {}
    for (name, labels), value in samples.items():
        if name == "logind_sessions" and value:
            state = dict(labels)["state"]
            counts[state] = counts.get(state, 0) + int(value)
    return counts


def test_storm_of_renames_keeps_memory_flat_refreshes_debounced_and_ends_exact(
    logind: LogindState,
) -> None:
    logind.seat0()
    renames, seconds, debounce = 2000, 3.0, 0.1
    exporter = start_exporter("--refresh.debounce=100ms", "--refresh.resync-interval=0")
    try:
        pid = exporter.process.pid
        exporter.samples()
        rss_start = proc.rss_kib(pid)
        started = time.monotonic()
        storm = subprocess.Popen(
            [sys.executable, "-c", STORM, str(renames), str(seconds)], cwd=ROOT
        )
        peak = rss_start
        while storm.poll() is None:
            peak = max(peak, proc.rss_kib(pid))
            time.sleep(0.05)
        assert storm.returncode == 0
        expected = _expected_after_storm(renames)
        samples = exporter.wait_for(
            lambda s: _sessions_by_state(s) == expected, timeout=10, what=f"final {expected}"
        )
        elapsed = time.monotonic() - started
        peak = max(peak, proc.rss_kib(pid))
        events = _sample(samples, "logind_exporter_refreshes_total", reason="event") or 0
        wakeups = _sample(samples, "logind_exporter_monitor_wakeups_total") or 0
        print(
            f"storm: {renames} renames in {elapsed:.1f} s, {wakeups:.0f} wake-ups, "
            f"{events:.0f} refreshes, RSS {rss_start} -> peak {peak} KiB"
        )
        assert events <= elapsed / debounce + 2, "refreshes were not bounded by the debounce"
        assert (peak - rss_start) < 20 * 1024, "RSS grew by more than 20 MiB during the storm"
    finally:
        status, stderr = exporter.stop()
    assert status == 0 and "Traceback" not in stderr, stderr


# -- SIGTERM in the middle of things -----------------------------------------------------------


def _write_sessions(logind: LogindState, count: int, state: str = "active") -> None:
    for i in range(1, count + 1):
        logind.session(str(i), uid=1000 + i % 50, seat=None, state=state)


def _stop_timed(exporter: Exporter) -> tuple[float, int, str]:
    started = time.monotonic()
    exporter.process.send_signal(signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        exporter.process.wait(timeout=5)
    took = time.monotonic() - started
    status, stderr = exporter.stop(signal.SIGKILL)
    return took, status, stderr


def _watching(pid: int) -> bool:
    """Whether the exporter opened its sd-login monitors (it refreshes right after)."""
    try:
        links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
    except OSError:
        return False
    return "anon_inode:inotify" in links


def _busy(pid: int, window: float = 0.05) -> bool:
    """Whether pid burned more than half a core over the next ``window`` seconds."""
    before = proc.cpu_seconds(pid)
    time.sleep(window)
    return proc.cpu_seconds(pid) - before > window / 2


def test_sigterm_during_the_startup_refresh_exits_0_within_a_second(
    logind: LogindState,
) -> None:
    logind.seat0()
    _write_sessions(logind, 10_000)  # the first full read takes more than a second
    exporter = start_exporter("--refresh.resync-interval=0", ready_path=None)
    # Generous: CI runs this beside the booted containers on two cores, where the imports
    # alone have taken several seconds; the timed part is only the exit after SIGTERM.
    deadline = time.monotonic() + 60
    while (not _watching(exporter.process.pid) and exporter.process.poll() is None
           and time.monotonic() < deadline):
        time.sleep(0.005)
    if not _watching(exporter.process.pid):
        status, stderr = exporter.stop(signal.SIGKILL)
        raise AssertionError(f"the exporter never opened its monitors (status {status}): {stderr}")
    time.sleep(0.1)
    took, status, stderr = _stop_timed(exporter)
    print(f"exit after SIGTERM mid-startup-refresh: {took:.3f} s")
    assert status == 0, stderr
    assert "Traceback" not in stderr, stderr
    assert took < 1.0, f"took {took:.2f} s to exit"


@pytest.mark.parametrize("trigger", ["burst", "resync"])
def test_sigterm_during_a_long_refresh_exits_0_within_a_second(
    logind: LogindState, trigger: str
) -> None:
    logind.seat0()
    _write_sessions(logind, 10_000)
    # A long debounce gathers the whole burst into one refresh that re-reads every session.
    exporter = start_exporter(
        "--refresh.resync-interval=0", "--refresh.debounce=1s", timeout=30
    )
    pid = exporter.process.pid
    exporter.samples()
    if trigger == "burst":
        logind.session("1", uid=1001, seat=None, state="online", active=False)
        time.sleep(0.2)  # that first change is refreshed at once; the burst then waits 1 s
        for i in range(1, 10_001):
            logind.session(str(i), uid=1000 + i % 50, seat=None, state="online", active=False)
    else:
        exporter.process.send_signal(signal.SIGHUP)  # a full re-read of 10,000 sessions
    deadline = time.monotonic() + 5
    while not _busy(pid) and time.monotonic() < deadline:
        pass
    took, status, stderr = _stop_timed(exporter)
    print(f"exit after SIGTERM mid-refresh ({trigger}): {took:.3f} s")
    assert status == 0, stderr
    assert "Traceback" not in stderr, stderr
    assert took < 1.0, f"took {took:.2f} s to exit"


def test_sigterm_during_scrapes_exits_0_within_a_second(real_252: LogindState) -> None:
    exporter = start_exporter()
    stop = threading.Event()
    answered = {"count": 0}

    def scrape() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                try:
                    session.get(exporter.url + "/metrics", timeout=2)
                    answered["count"] += 1
                except requests.RequestException:
                    return

    threads = [threading.Thread(target=scrape) for _ in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    try:
        took, status, stderr = _stop_timed(exporter)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    print(f"exit after SIGTERM mid-scrapes: {took:.3f} s, {answered['count']} scrapes answered")
    assert answered["count"] > 0
    assert status == 0, stderr
    assert "Traceback" not in stderr, stderr
    assert took < 1.0, f"took {took:.2f} s to exit"


# -- fds and memory over churn -----------------------------------------------------------------


def test_short_soak_returns_to_its_fd_count_and_keeps_rss_flat(logind: LogindState) -> None:
    result = soak.run(logind, seconds=20.0, interval=2.0, out=sys.stdout)
    assert result.logins > 100 and result.logouts > 100
    assert result.fds_end == result.fds_start, result.table()
    assert result.rss_growth_kib < 10 * 1024, result.table()


def test_proc_helpers_read_this_process() -> None:
    pid = os.getpid()
    assert proc.rss_kib(pid) > 0
    assert proc.open_fds(pid) >= 3
    assert Path(f"/proc/{pid}/stat").exists() and proc.cpu_seconds(pid) > 0


def test_a_cancelled_refresh_stops_before_reading_the_next_session(logind: LogindState) -> None:
    _write_healthy(logind)
    asked = {"count": 0}

    def cancelled() -> bool:
        asked["count"] += 1
        return True

    with pytest.raises(RefreshCancelled):
        Refresher(cancelled=cancelled).refresh(EMPTY, Changes(everything=True))
    assert asked["count"] == 1
