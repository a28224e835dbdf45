"""The real exporter process on a fixture tree: values, live changes, resilience, signals, web.

Every test starts ``python -m login_exporter`` in the test's private mount namespace (its
/run/systemd is a tmpfs holding the state the test writes) and scrapes it over HTTP. Nothing is
mocked: libsystemd reads the files, inotify wakes the agent, the web server answers.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import bcrypt
import pytest
import requests
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)

from login_exporter import sdlogin
from login_exporter.collector import SEAT_FAMILIES
from tests.support.exporter import (
    ROOT,
    Exporter,
    Samples,
    free_port,
    parse_samples,
    running_exporter,
    start_exporter,
)
from tests.support.flags import help_flags, landing_flags
from tests.support.golden import REAL_252, loginctl_252
from tests.support.logind_state import CATEGORIES, LogindState
from tests.support.unprivileged import as_nobody

LOGINCTL = loginctl_252()
# The agent refreshes within the debounce (10 ms in these tests) of an event; the margin is for a
# loaded CI machine. Timing itself is measured by the benchmarks, not asserted here.
EVENT_TIMEOUT = 1.5
Key = tuple[str, frozenset[tuple[str, str]]]


def k(name: str, **labels: str) -> Key:
    return (name, frozenset(labels.items()))


def klass(value: str) -> dict[str, str]:
    return {"class": value}


def sessions_k(seat: str, remote: str, type: str, cls: str, state: str) -> Key:
    return k("logind_sessions", seat=seat, remote=remote, type=type, state=state, **klass(cls))


def by_session(name: str, seat: str, remote: str, type: str, cls: str) -> Key:
    return k(name, seat=seat, remote=remote, type=type, **klass(cls))


def has(expected: Mapping[Key, float]) -> Callable[[Samples], bool]:
    return lambda samples: all(samples.get(key) == value for key, value in expected.items())


def family(samples: Samples, name: str) -> dict[Key, float]:
    return {key: value for key, value in samples.items() if key[0] == name}


def expected_252() -> dict[Key, float]:
    """What loginctl and machinectl said about tests/fixtures/real-252, as samples."""
    expected: dict[Key, float] = {k("logind_up"): 1}
    sessions: Counter[Key] = Counter()
    for p in LOGINCTL["session_properties"].values():
        remote = "true" if p["Remote"] == "yes" else "false"
        sessions[sessions_k(p["Seat"], remote, p["Type"], p["Class"], p["State"])] += 1
    expected.update(sessions)
    users = Counter(LOGINCTL["user_states"].values())
    for state in ("offline", "lingering", "online", "active", "closing"):
        expected[k("logind_users", state=state)] = users[state]
    seat0 = LOGINCTL["seat0"]
    expected[k("logind_seat_present", seat="seat0")] = 1
    expected[k("logind_seat_sessions", seat="seat0")] = len(seat0["Sessions"].split())
    expected[k("logind_seat_active_session", seat="seat0")] = int(bool(seat0["ActiveSession"]))
    expected[k("logind_seat_can_graphical", seat="seat0")] = int(seat0["CanGraphical"] == "yes")
    expected[k("logind_seat_can_tty", seat="seat0")] = int(seat0["CanTTY"] == "yes")
    machines = Counter(m["class"] for m in LOGINCTL["machines"])
    for cls, count in machines.items():
        expected[k("logind_machines", **klass(cls))] = count
    for m in LOGINCTL["machines"]:
        expected[k("logind_machine_info", machine=m["machine"], **klass(m["class"]))] = 1
    return expected


def assert_252(samples: Samples, *, fresh: bool = True) -> None:
    """Assert the samples say what loginctl said. ``fresh``: no series beyond those either (a
    process that saw other state before keeps those series at 0)."""
    expected = expected_252()
    wrong = {key: (samples.get(key), value) for key, value in expected.items()
             if samples.get(key) != value}  # fmt: skip
    assert not wrong, f"(got, want): {wrong}"
    for name in ("logind_sessions", "logind_users", "logind_machines", "logind_machine_info",
                 "logind_seat_present"):  # fmt: skip
        got = {key for key, value in family(samples, name).items() if fresh or value != 0}
        assert got == {key for key in expected if key[0] == name and (fresh or expected[key])}


# seats/ (where logind_up comes from) goes first and comes back last, so that no snapshot with
# logind up sees a half-removed tree: that would rightly count its sessions as ended.
SEATS_LAST = sorted(CATEGORIES, key=lambda category: category == "seats")


def remove_tree(logind: LogindState) -> None:
    """Remove the state directories (logind's view vanishing), seats/ first."""
    for category in reversed(SEATS_LAST):
        shutil.rmtree(logind.root / category)


def restore_tree(logind: LogindState, source: Path = REAL_252) -> None:
    """Put a captured tree back after its directories were removed, each directory appearing
    complete at once (renamed into place), seats/ last."""
    staging = logind.root / ".staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    for category in SEATS_LAST:
        target = staging / category
        if (source / category).is_dir():
            shutil.copytree(source / category, target, symlinks=True)
        else:
            target.mkdir()
    for category in SEATS_LAST:
        os.rename(staging / category, logind.root / category)
    staging.rmdir()


# -- the golden tree ------------------------------------------------------------------------------


def test_real_252_exposition_equals_what_loginctl_said(real_252: LogindState) -> None:
    with running_exporter() as exporter:
        samples = exporter.samples()
        assert_252(samples)
        assert samples[k("logind_seat_can_multi_session", seat="seat0")] == 1
        assert samples[k("logind_exporter_refreshes_total", reason="startup")] == 1
        # Sessions present at start-up are not counted as started.
        assert not family(samples, "logind_session_starts_total")
        assert not family(samples, "logind_machine_starts_total")


def test_once_prints_one_exposition_and_exits_0(real_252: LogindState) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "login_exporter", "--once"],
        cwd=ROOT, capture_output=True, text=True, timeout=20,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert_252(parse_samples(result.stdout))


# -- live changes ---------------------------------------------------------------------------------


def seat0_with(*extra: tuple[str, int], active: str = "125") -> dict[str, object]:
    return {"sessions": [("125", 1002), ("124", 1001), *extra], "active": active,
            "can_tty": False, "can_graphical": False}  # fmt: skip


def test_login_then_logout_update_every_affected_metric(real_252: LogindState) -> None:
    with running_exporter() as exporter:
        before = exporter.samples()
        pid = exporter.process.pid
        active_users = before[k("logind_users", state="active")]

        real_252.user(1010, name="kiosk2", state="active", sessions=["140"], seats=["seat0"])
        real_252.session("140", uid=1010, seat="seat0", type="wayland", klass="user", vtnr=2)
        real_252.seat0(**seat0_with(("140", 1010), active="140"))
        login = {
            sessions_k("seat0", "false", "wayland", "user", "active"): 1,
            k("logind_seat_sessions", seat="seat0"): 3,
            k("logind_users", state="active"): active_users + 1,
            by_session("logind_session_starts_total", "seat0", "false", "wayland", "user"): 1,
        }
        samples = exporter.wait_for(has(login), EVENT_TIMEOUT, "login")
        assert samples[k("logind_exporter_refreshes_total", reason="resync")] == 0
        assert samples[k("logind_exporter_refreshes_total", reason="event")] >= 1
        assert samples[k("logind_exporter_monitor_wakeups_total")] >= 1
        assert not family(samples, "logind_session_ends_total")

        real_252.remove("sessions", "140")
        real_252.remove("users", "1010")
        real_252.seat0(**seat0_with())
        hist = {"remote": "false", "type": "wayland", **klass("user")}
        logout = {
            sessions_k("seat0", "false", "wayland", "user", "active"): 0,  # stays, at 0
            k("logind_seat_sessions", seat="seat0"): 2,
            k("logind_seat_active_session", seat="seat0"): 1,  # the greeter's again
            k("logind_users", state="active"): active_users,
            by_session("logind_session_ends_total", "seat0", "false", "wayland", "user"): 1,
            by_session("logind_session_starts_total", "seat0", "false", "wayland", "user"): 1,
            k("logind_session_duration_seconds_count", **hist): 1,
            k("logind_session_duration_seconds_bucket", le="+Inf", **hist): 1,
        }
        samples = exporter.wait_for(has(logout), EVENT_TIMEOUT, "logout")
        assert samples[k("logind_session_duration_seconds_sum", **hist)] >= 0
        # Everything not touched is as loginctl said; same process throughout.
        assert_252(samples, fresh=False)
        assert exporter.process.pid == pid and exporter.process.poll() is None


def test_logout_of_a_session_present_at_start(real_252: LogindState) -> None:
    with running_exporter() as exporter:
        remote_tty_user = sessions_k("", "true", "tty", "user", "active")
        assert exporter.samples()[remote_tty_user] == 3
        real_252.remove("sessions", "132")  # r1's remote session
        real_252.remove("users", "1003")
        expected = {
            remote_tty_user: 2,
            k("logind_users", state="active"): 5,
            by_session("logind_session_ends_total", "", "true", "tty", "user"): 1,
            k("logind_session_duration_seconds_count", remote="true", type="tty",
              **klass("user")): 1,
        }  # fmt: skip
        samples = exporter.wait_for(has(expected), EVENT_TIMEOUT, "logout of session 132")
        assert not family(samples, "logind_session_starts_total")


def test_session_state_change_online_to_active(real_252: LogindState) -> None:
    with running_exporter() as exporter:
        assert exporter.value("logind_users", state="online") == 1
        real_252.session("124", uid=1001, user="k1", seat="seat0", type="x11", klass="user",
                         state="active", active=True, is_display=True, position=1)  # fmt: skip
        real_252.user(1001, name="k1", state="active", sessions=["124"], seats=["seat0"])
        expected = {
            sessions_k("seat0", "false", "x11", "user", "online"): 0,
            sessions_k("seat0", "false", "x11", "user", "active"): 1,
            k("logind_users", state="online"): 0,
            k("logind_users", state="active"): 7,
        }
        samples = exporter.wait_for(has(expected), EVENT_TIMEOUT, "online -> active")
        # A state change is neither a start nor an end.
        assert not family(samples, "logind_session_starts_total")
        assert not family(samples, "logind_session_ends_total")


def test_seat_appearing_and_vanishing(real_252: LogindState) -> None:
    with running_exporter() as exporter:
        assert exporter.value("logind_seat_present", seat="seat-kiosk1") is None
        real_252.session("141", uid=1011, seat="seat-kiosk1", type="x11", klass="user")
        real_252.seat("seat-kiosk1", sessions=[("141", 1011)], active="141", can_tty=False,
                      can_graphical=True, can_multi_session=False)  # fmt: skip
        values = {
            "logind_seat_present": 1, "logind_seat_sessions": 1, "logind_seat_active_session": 1,
            "logind_seat_can_graphical": 1, "logind_seat_can_tty": 0,
            # sd_seat_can_multi_session() answers yes for every seat since systemd 246.
            "logind_seat_can_multi_session": 1,
        }  # fmt: skip
        appeared = {k(name, seat="seat-kiosk1"): value for name, value in values.items()}
        appeared[sessions_k("seat-kiosk1", "false", "x11", "user", "active")] = 1
        exporter.wait_for(has(appeared), EVENT_TIMEOUT, "seat-kiosk1 to appear")

        real_252.remove("seats", "seat-kiosk1")
        real_252.remove("sessions", "141")
        gone = {k(name, seat="seat-kiosk1"): 0 for name in SEAT_FAMILIES}
        gone[sessions_k("seat-kiosk1", "false", "x11", "user", "active")] = 0
        gone[by_session("logind_session_ends_total", "seat-kiosk1", "false", "x11", "user")] = 1
        samples = exporter.wait_for(has(gone), EVENT_TIMEOUT, "seat-kiosk1 to vanish")
        assert samples[k("logind_seat_present", seat="seat0")] == 1


def test_machine_start_and_stop(real_252: LogindState) -> None:
    with running_exporter() as exporter:
        real_252.machine("ct2", klass="container")
        started = {
            k("logind_machines", **klass("container")): 2,
            k("logind_machines", **klass("vm")): 1,
            k("logind_machine_info", machine="ct2", **klass("container")): 1,
            k("logind_machine_starts_total", **klass("container")): 1,
        }
        exporter.wait_for(has(started), EVENT_TIMEOUT, "ct2 to start")
        real_252.remove_machine("vm1")
        stopped = {
            k("logind_machines", **klass("vm")): 0,
            k("logind_machine_info", machine="vm1", **klass("vm")): 0,
            k("logind_machine_stops_total", **klass("vm")): 1,
            k("logind_machines", **klass("container")): 2,
        }
        samples = exporter.wait_for(has(stopped), EVENT_TIMEOUT, "vm1 to stop")
        assert k("logind_machine_stops_total", **klass("container")) not in samples


# -- the resync safety net ------------------------------------------------------------------------


def test_resync_catches_a_write_no_monitor_saw(real_252: LogindState) -> None:
    real_252.session("150", uid=1020, type="web", klass="user-light", state="online")
    with running_exporter("--refresh.resync-interval=1s") as exporter:
        online = sessions_k("", "false", "web", "user-light", "online")
        exporter.wait_for(lambda s: s.get(online) == 1, EVENT_TIMEOUT, "session 150 online")
        # Rewritten in place: no rename, no new name, so no inotify event a monitor watches.
        real_252.session("150", uid=1020, type="web", klass="user-light", plain=True)
        new = sessions_k("", "false", "web", "user-light", "active")
        samples = exporter.wait_for(lambda s: s.get(new) == 1, 2.5, "resync to find session 150")
        assert samples[k("logind_exporter_refreshes_total", reason="resync")] >= 1
        assert samples[k("logind_exporter_refreshes_total", reason="event")] == 0


def test_without_resync_a_plain_write_stays_unseen(real_252: LogindState) -> None:
    """The control for the test above: events alone do not see an in-place rewrite."""
    real_252.session("150", uid=1020, type="web", klass="user-light", state="online")
    with running_exporter("--refresh.resync-interval=0") as exporter:
        online = sessions_k("", "false", "web", "user-light", "online")
        exporter.wait_for(lambda s: s.get(online) == 1, EVENT_TIMEOUT, "session 150 online")
        real_252.session("150", uid=1020, type="web", klass="user-light", plain=True)
        new = sessions_k("", "false", "web", "user-light", "active")
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            samples = exporter.samples()
            assert new not in samples, "a plain write was seen without resync"
            time.sleep(0.05)
        assert samples[k("logind_exporter_refreshes_total", reason="resync")] == 0
        # The next rename of that file (logind's next write of it) is seen at once.
        real_252.session("150", uid=1020, type="web", klass="user-light")
        exporter.wait_for(lambda s: s.get(new) == 1, EVENT_TIMEOUT, "event after plain write")


# -- bursts ---------------------------------------------------------------------------------------


def test_a_burst_of_logins_costs_few_refreshes_and_counts_exactly(logind: LogindState) -> None:
    logind.seat0()
    burst = 500
    with running_exporter("--refresh.debounce=50ms") as exporter:
        key = sessions_k("", "true", "tty", "user", "active")
        for i in range(burst):
            logind.session(str(1000 + i), uid=2000 + i, remote=True, remote_host="203.0.113.7")
        samples = exporter.wait_for(lambda s: s.get(key) == burst, 10.0, "500 sessions")
        assert samples[by_session("logind_session_starts_total", "", "true", "tty",
                                  "user")] == burst  # fmt: skip
        events_in = samples[k("logind_exporter_refreshes_total", reason="event")]
        assert 1 <= events_in < burst / 10, events_in

        for i in range(burst):
            logind.remove("sessions", str(1000 + i))
        hist = {"remote": "true", "type": "tty", **klass("user")}
        done = {
            key: 0,
            by_session("logind_session_ends_total", "", "true", "tty", "user"): burst,
            k("logind_session_duration_seconds_count", **hist): burst,
        }
        samples = exporter.wait_for(has(done), 10.0, "500 logouts")
        events_out = samples[k("logind_exporter_refreshes_total", reason="event")] - events_in
        assert 1 <= events_out < burst / 10, events_out
        assert samples[k("logind_exporter_read_races_total")] >= 0


# -- logind absent, vanishing, coming back --------------------------------------------------------


def test_logind_absent_at_start_then_appearing(logind: LogindState) -> None:
    logind.remove_directories()
    with running_exporter() as exporter:
        assert exporter.get("/-/ready").status_code == 200
        samples = exporter.samples()
        assert samples[k("logind_up")] == 0
        assert not family(samples, "logind_sessions")
        LogindState()  # logind starts: directories, seat0, a session
        logind.seat0(sessions=[("3", 1000)], active="3")
        logind.session("3", uid=1000, seat="seat0", type="x11", klass="greeter")
        expected = {
            k("logind_up"): 1,
            sessions_k("seat0", "false", "x11", "greeter", "active"): 1,
            k("logind_seat_sessions", seat="seat0"): 1,
        }
        # The monitor is retried with a back-off capped at 5 s.
        exporter.wait_for(has(expected), 6.5, "logind to be seen")


def test_run_systemd_removed_and_recreated_while_running(real_252: LogindState) -> None:
    with running_exporter() as exporter:
        pid = exporter.process.pid
        assert exporter.value("logind_up") == 1
        remove_tree(real_252)
        down = {
            k("logind_up"): 0,
            sessions_k("", "true", "tty", "user", "active"): 0,
            k("logind_seat_present", seat="seat0"): 0,
            k("logind_machines", **klass("vm")): 0,
        }
        samples = exporter.wait_for(has(down), 3.0, "logind to go")
        assert samples[k("logind_exporter_errors_total", kind="monitor")] > 0
        assert exporter.get("/-/healthy").status_code == 200

        restore_tree(real_252)
        samples = exporter.wait_for(has(expected_252()), 6.5, "logind to come back")
        assert_252(samples, fresh=False)
        # The same sessions came back: nothing started or ended meanwhile.
        assert not family(samples, "logind_session_starts_total")
        assert not family(samples, "logind_session_ends_total")
        assert samples[k("logind_exporter_errors_total", kind="monitor")] > 0
        assert exporter.process.pid == pid and exporter.process.poll() is None

        # And the re-created monitors work: a login is seen through events again.
        real_252.session("160", uid=1030, type="tty", klass="manager")
        exporter.wait_for(
            lambda s: s.get(sessions_k("", "false", "tty", "manager", "active")) == 1,
            EVENT_TIMEOUT, "a login after the comeback",
        )  # fmt: skip


def test_seats_restored_before_sessions_counts_no_logout(real_252: LogindState) -> None:
    # /run/systemd comes back in the unlucky order: seat0 says logind is up while sessions/ is
    # still missing. The sessions only look absent (their directory is unwatched): nothing may
    # count as ended, and when they come back nothing may count as started.
    with running_exporter() as exporter:
        remove_tree(real_252)
        exporter.wait_for(has({k("logind_up"): 0}), 3.0, "logind to go")
        staging = real_252.root / ".staging"
        for category in ("seats", "users", "machines", "sessions"):
            shutil.copytree(REAL_252 / category, staging, symlinks=True)
            os.rename(staging, real_252.root / category)
            if category == "seats":
                samples = exporter.wait_for(
                    lambda s: s.get(k("logind_up")) == 1
                    and s.get(sessions_k("", "true", "tty", "user", "active")) == 0,
                    3.0, "seat0 back, sessions still missing",
                )  # fmt: skip
                assert not family(samples, "logind_session_ends_total")
        samples = exporter.wait_for(has(expected_252()), 6.5, "sessions to come back")
        assert not family(samples, "logind_session_starts_total")
        assert not family(samples, "logind_session_ends_total")


def test_idle_agent_does_not_refresh(real_252: LogindState) -> None:
    with running_exporter() as exporter:
        time.sleep(0.5)
        for _ in range(20):
            samples = exporter.samples()
        assert samples[k("logind_exporter_monitor_wakeups_total")] == 0
        assert samples[k("logind_exporter_refreshes_total", reason="event")] == 0
        assert samples[k("logind_exporter_refreshes_total", reason="startup")] == 1
        rc, err = exporter.stop()
    lines = [line for line in err.splitlines() if line]
    assert rc == 0
    assert not any("/metrics" in line or "GET" in line for line in lines), lines
    assert len(lines) <= 4, lines  # start-up and shutdown only, nothing per scrape


# -- endpoints and options ------------------------------------------------------------------------


def test_endpoints(real_252: LogindState) -> None:
    with running_exporter() as exporter:
        landing = exporter.get("/")
        assert landing.status_code == 200
        assert landing.headers["Content-Type"].startswith("text/html")
        assert 'href="/metrics"' in landing.text
        assert exporter.get("/-/healthy").status_code == 200
        assert exporter.get("/-/ready").status_code == 200
        assert exporter.get("/nope").status_code == 404
        assert exporter.get("/metricsx").status_code == 404

        text = exporter.get("/metrics")
        assert text.status_code == 200
        assert text.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert not text.text.rstrip().endswith("# EOF")

        om = exporter.get("/metrics", headers={"Accept": "application/openmetrics-text"})
        assert om.status_code == 200
        assert om.headers["Content-Type"].startswith("application/openmetrics-text")
        assert om.text.endswith("# EOF\n")
        families = openmetrics_families(om.text)  # type: ignore[no-untyped-call]
        values = {
            (s.name, frozenset(s.labels.items())): s.value for fam in families for s in fam.samples
        }
        assert values[k("logind_up")] == 1
        assert values[k("logind_users", state="active")] == 6


def test_landing_page_lists_every_flag_in_force(real_252: LogindState) -> None:
    with running_exporter(
        "--log.level=warn", "--log.format=json", "--web.disable-exporter-metrics"
    ) as exporter:
        shown = landing_flags(exporter.get("/").text)
    assert set(shown) == help_flags()
    assert shown["--log.level"] == "warn" and shown["--log.format"] == "json"
    assert shown["--web.disable-exporter-metrics"] == "true"
    assert shown["--refresh.debounce"] == "10ms"  # start_exporter's


def test_custom_telemetry_path(real_252: LogindState) -> None:
    with running_exporter("--web.telemetry-path=/probe/logind") as exporter:
        assert exporter.get("/metrics").status_code == 404
        response = exporter.get("/probe/logind")
        assert response.status_code == 200 and "logind_up 1" in response.text
        assert 'href="/probe/logind"' in exporter.get("/").text


def test_exporter_metrics_on_by_default_and_can_be_disabled(real_252: LogindState) -> None:
    with running_exporter() as exporter:
        names = {name for name, _ in exporter.samples()}
    assert "process_cpu_seconds_total" in names and "python_info" in names
    with running_exporter("--web.disable-exporter-metrics") as exporter:
        names = {name for name, _ in exporter.samples()}
    assert not {n for n in names if n.startswith(("process_", "python_"))}
    assert "logind_up" in names


def test_machine_collectors_can_be_switched_off(real_252: LogindState) -> None:
    with running_exporter("--no-collector.machines") as exporter:
        names = {name for name, _ in exporter.samples()}
    assert not {n for n in names if n.startswith("logind_machine")}
    assert "logind_sessions" in names
    with running_exporter("--no-collector.machine-info") as exporter:
        names = {name for name, _ in exporter.samples()}
    assert "logind_machines" in names and "logind_machine_info" not in names


def test_no_default_series_identifies_a_user_or_session(real_252: LogindState) -> None:
    real_252.session("170", uid=0, user="root", remote=True, remote_host="198.51.100.4")
    props = LOGINCTL["session_properties"]
    identifying = ({p["Name"] for p in props.values()} | {p["RemoteHost"] for p in props.values()}
                   | set(props) | {"170", "root", "198.51.100.4"}) - {""}  # fmt: skip
    with running_exporter() as exporter:
        samples = exporter.samples()
    assert len(samples) > 50
    for name, labels in samples:
        label_names = {label for label, _ in labels}
        assert not label_names & {"user", "uid", "session", "remote_host", "machine_id"}, name
        leaked = {value for _, value in labels} & identifying
        assert not leaked, (name, leaked)


def test_session_info_is_opt_in_with_user_uid_and_remote_host(real_252: LogindState) -> None:
    real_252.session("170", uid=0, user="root", remote=True, remote_host="198.51.100.4",
                     tty="pts/3", service="sshd")  # fmt: skip
    with running_exporter("--collector.session-info") as exporter:
        samples = exporter.samples()
    infos = {dict(labels)["session"]: dict(labels)
             for name, labels in samples if name == "logind_session_info"}  # fmt: skip
    assert set(infos) == {*LOGINCTL["session_properties"], "170"}
    assert infos["170"]["user"] == "root" and infos["170"]["uid"] == "0"
    assert infos["170"]["remote_host"] == "198.51.100.4" and infos["170"]["remote"] == "true"
    assert infos["170"]["tty"] == "pts/3" and infos["170"]["service"] == "sshd"
    names_known = sdlogin.capabilities()["sd_session_get_username"]
    uids = {s["session"]: s["uid"] for s in LOGINCTL["sessions"]}
    for sid, p in LOGINCTL["session_properties"].items():
        info = infos[sid]
        assert info["uid"] == str(uids[sid])
        assert info["remote_host"] == p["RemoteHost"]
        assert info["seat"] == p["Seat"] and info["state"] == p["State"]
        assert info["type"] == p["Type"] and info["class"] == p["Class"]
        assert info["service"] == p["Service"]
        # Before libsystemd 254 the name comes from the passwd database (no such user here).
        assert info["user"] in ((p["Name"],) if names_known else (p["Name"], ""))


# -- signals, systemd -----------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_exits_0_within_a_second(real_252: LogindState, sig: int) -> None:
    exporter = start_exporter()
    try:
        exporter.samples()
        started = time.monotonic()
        exporter.process.send_signal(sig)
        exporter.process.wait(timeout=5)
        elapsed = time.monotonic() - started
    finally:
        rc, err = exporter.stop()
    assert rc == 0, err
    assert elapsed < 1.0, elapsed
    assert "Traceback" not in err


# A stand-in for systemd's exec: set the named variables to its own pid (LISTEN_PID,
# WATCHDOG_PID), move an inherited fd to 3, then become the exporter (same pid).
WRAPPER = """
import os, sys
pid_vars, fd, *args = sys.argv[1:]
for name in filter(None, pid_vars.split(",")):
    os.environ[name] = str(os.getpid())
if fd != "-":
    if int(fd) != 3:
        os.dup2(int(fd), 3)
        os.close(int(fd))
os.execv(sys.executable, [sys.executable, "-m", "login_exporter", *args])
"""


def spawn(
    *args: str,
    pid_vars: str = "",
    fd: int | None = None,
    env: Mapping[str, str] = {},
    unset: tuple[str, ...] = (),
) -> subprocess.Popen[bytes]:
    environment = {name: value for name, value in os.environ.items() if name not in unset}
    environment.update(env)
    return subprocess.Popen(
        [sys.executable, "-c", WRAPPER, pid_vars, "-" if fd is None else str(fd), *args],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        pass_fds=() if fd is None else (fd,),
    )


@pytest.fixture
def notify_socket() -> Iterator[socket.socket]:
    """A unix datagram socket playing systemd's notify socket (short path: sun_path limit)."""
    directory = tempfile.mkdtemp(prefix="notify-", dir="/tmp")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(os.path.join(directory, "sock"))
    sock.settimeout(5.0)
    try:
        yield sock
    finally:
        sock.close()
        shutil.rmtree(directory, ignore_errors=True)


def messages_until(sock: socket.socket, wanted: str, deadline: float) -> list[str]:
    """Read notify datagrams until one holds ``wanted`` (or the deadline); return them all."""
    got: list[str] = []
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recv(4096).decode()
        except TimeoutError:
            break
        got.append(data)
        if wanted in data.splitlines():
            break
    return got


def stop_process(process: subprocess.Popen[bytes]) -> tuple[int, str]:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        _, err = process.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
    return process.returncode, err.decode(errors="replace")


@pytest.mark.parametrize("watchdog_pid", ["unset", "own"])
def test_notify_ready_watchdog_stopping(
    real_252: LogindState, notify_socket: socket.socket, watchdog_pid: str
) -> None:
    port = free_port()
    process = spawn(
        f"--web.listen-address=127.0.0.1:{port}",
        pid_vars="WATCHDOG_PID" if watchdog_pid == "own" else "",
        env={"NOTIFY_SOCKET": notify_socket.getsockname(), "WATCHDOG_USEC": "200000"},
        unset=("WATCHDOG_PID",),
    )
    try:
        ready = messages_until(notify_socket, "READY=1", time.monotonic() + 10)
        assert ready and "READY=1" in ready[-1].splitlines(), ready
        assert not any("WATCHDOG=1" in m for m in ready), "WATCHDOG=1 before READY=1"
        # READY=1 means: bound, first snapshot there.
        exporter = Exporter(process, port)
        assert exporter.get("/-/ready").status_code == 200
        assert exporter.value("logind_up") == 1
        # WATCHDOG_USEC=200 ms: a ping about every 100 ms from the event loop, even when idle.
        pings = [m for m in messages_until(notify_socket, "never", time.monotonic() + 0.6)
                 if "WATCHDOG=1" in m.splitlines()]  # fmt: skip
        assert len(pings) >= 3, pings
        process.send_signal(signal.SIGTERM)
        stopping = messages_until(notify_socket, "STOPPING=1", time.monotonic() + 3)
        assert any("STOPPING=1" in m.splitlines() for m in stopping), stopping
    finally:
        rc, err = stop_process(process)
    assert rc == 0, err


def test_watchdog_meant_for_another_process_is_ignored(
    real_252: LogindState, notify_socket: socket.socket
) -> None:
    """sd_watchdog_enabled(3): WATCHDOG_PID naming another process means no pings from us."""
    port = free_port()
    process = spawn(
        f"--web.listen-address=127.0.0.1:{port}",
        env={"NOTIFY_SOCKET": notify_socket.getsockname(), "WATCHDOG_USEC": "200000",
             "WATCHDOG_PID": str(os.getpid())},
    )  # fmt: skip
    try:
        ready = messages_until(notify_socket, "READY=1", time.monotonic() + 10)
        assert any("READY=1" in m.splitlines() for m in ready), ready
        later = messages_until(notify_socket, "never", time.monotonic() + 0.5)
        assert not any("WATCHDOG=1" in m for m in ready + later), ready + later
    finally:
        rc, err = stop_process(process)
    assert rc == 0, err


def test_systemd_socket_activation(real_252: LogindState) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    try:
        process = spawn("--web.systemd-socket", pid_vars="LISTEN_PID", fd=listener.fileno(),
                        env={"LISTEN_FDS": "1"}, unset=("LISTEN_FDNAMES",))  # fmt: skip
    finally:
        listener.close()  # the exporter holds the only copy now
    exporter = Exporter(process, port)
    try:
        samples = exporter.wait_for(lambda s: s.get(k("logind_up")) == 1, 10.0, "a scrape")
        assert_252(samples)
        assert "--web.systemd-socket" in exporter.get("/").text
    finally:
        rc, err = stop_process(process)
    assert rc == 0, err


# -- TLS and basic auth through the real process ---------------------------------------------------


def test_tls_and_basic_auth(real_252: LogindState, tmp_path: Path) -> None:
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", "key.pem", "-out", "cert.pem", "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        cwd=tmp_path, check=True, capture_output=True,
    )  # fmt: skip
    hashed = bcrypt.hashpw(b"correct horse", bcrypt.gensalt(rounds=4)).decode()
    config = tmp_path / "web.yml"
    config.write_text(
        "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n"
        f"basic_auth_users:\n  prometheus: '{hashed}'\n"
    )
    cert = str(tmp_path / "cert.pem")
    with running_exporter(f"--web.config.file={config}", scheme="https", verify=cert) as exporter:
        good = exporter.get("/metrics", verify=cert, auth=("prometheus", "correct horse"))
        assert good.status_code == 200
        assert_252(parse_samples(good.text))
        anonymous = exporter.get("/metrics", verify=cert)
        assert anonymous.status_code == 401
        assert anonymous.headers["WWW-Authenticate"].startswith("Basic")
        assert "logind_" not in anonymous.text
        for user, password in (("prometheus", "wrong"), ("nobody", "x"), ("", "")):
            denied = exporter.get("/metrics", verify=cert, auth=(user, password))
            assert denied.status_code == 401, (user, password)
        with pytest.raises(requests.exceptions.SSLError):
            exporter.get("/metrics", auth=("prometheus", "correct horse"))  # unknown CA
        try:
            plain = requests.get(f"http://127.0.0.1:{exporter.port}/metrics", timeout=5,
                                 auth=("prometheus", "correct horse"))  # fmt: skip
            assert plain.status_code == 400 and "logind_" not in plain.text
        except requests.ConnectionError:
            pass  # refusing plain HTTP outright is fine too


# -- logs -----------------------------------------------------------------------------------------


def test_json_log_format_writes_json_lines(real_252: LogindState) -> None:
    with running_exporter("--log.format=json", "--log.level=debug") as exporter:
        real_252.session("180", uid=1040, type="tty", klass="user")
        exporter.wait_for(lambda s: s.get(sessions_k("", "false", "tty", "user", "active")) == 1,
                          EVENT_TIMEOUT, "session 180")  # fmt: skip
        rc, err = exporter.stop()
    assert rc == 0
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) >= 3
    records = [json.loads(line) for line in lines]
    for record in records:
        assert isinstance(record, dict)
        assert {"ts", "level", "msg"} <= record.keys()
    levels = {record["level"] for record in records}
    assert "info" in levels and "debug" in levels
    assert any(record["msg"] == "session started" for record in records)


def test_logfmt_is_the_default(real_252: LogindState) -> None:
    with running_exporter() as exporter:
        rc, err = exporter.stop()
    assert rc == 0
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines
    for line in lines:
        assert line.startswith("ts=") and " level=" in line and " msg=" in line, line


def test_unreadable_state_is_counted_served_and_recovered(real_252: LogindState) -> None:
    # Run as an unprivileged user over a sessions/ directory it may not read: listing fails
    # (EACCES). The exporter still becomes ready, counts the error, and picks the state up by
    # itself once the directory is readable again.
    (real_252.root / "sessions").chmod(0o700)
    port = free_port()
    command = as_nobody(sys.executable, "-m", "login_exporter",
                        f"--web.listen-address=127.0.0.1:{port}")  # fmt: skip
    exporter = Exporter(
        subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE), port
    )
    try:
        samples = exporter.wait_for(
            lambda s: s.get(k("logind_exporter_errors_total", kind="list"), 0) >= 1,
            10.0, "the failed listing to be counted",
        )  # fmt: skip
        assert samples[k("logind_up")] == 0
        assert exporter.get("/-/ready").status_code == 200
        (real_252.root / "sessions").chmod(0o755)
        samples = exporter.wait_for(has(expected_252()), 8.0, "the state once readable")
        assert not family(samples, "logind_session_starts_total")
    finally:
        status, stderr = exporter.stop()
    assert status == 0 and "Traceback" not in stderr, stderr


# -- logind liveness: the invocation link, and the files rule where it cannot be read ------------

LOGIND_UNIT = "systemd-logind.service"


def test_logind_up_follows_the_invocation_link_while_its_files_stay(
    real_252: LogindState,
) -> None:
    real_252.invocation(LOGIND_UNIT, "0f9a6c3e")
    with running_exporter("--refresh.resync-interval=0") as exporter:
        before = exporter.wait_for(has({k("logind_up"): 1}), EVENT_TIMEOUT, "logind up")
        assert before[k("logind_exporter_liveness_rule", rule="unit")] == 1
        assert before[k("logind_exporter_liveness_rule", rule="files")] == 0
        assert before[k("logind_restarts_total")] == 0
        sessions = family(before, "logind_sessions")

        real_252.invocation(LOGIND_UNIT, None)  # stopped: its state files stay
        during = exporter.wait_for(has({k("logind_up"): 0}), EVENT_TIMEOUT, "logind down")
        assert family(during, "logind_sessions") == sessions  # they still exist: still served
        assert during[k("logind_restarts_total")] == 0

        real_252.invocation(LOGIND_UNIT, "77d1e2b4")  # started again: a new invocation id
        after = exporter.wait_for(has({k("logind_up"): 1, k("logind_restarts_total"): 1}),
                                  EVENT_TIMEOUT, "logind up again")  # fmt: skip
        real_252.invocation(LOGIND_UNIT, "c2b81f00")  # restarted: the link replaced at once
        exporter.wait_for(has({k("logind_up"): 1, k("logind_restarts_total"): 2}),
                          EVENT_TIMEOUT, "the restart counted")  # fmt: skip
        assert after[k("logind_exporter_refreshes_total", reason="event")] == 0


def test_without_the_invocation_link_logind_up_follows_seat0(real_252: LogindState) -> None:
    assert not (real_252.root / "units").exists()
    with running_exporter("--refresh.resync-interval=0") as exporter:
        samples = exporter.wait_for(has({k("logind_up"): 1}), EVENT_TIMEOUT, "logind up")
        assert samples[k("logind_exporter_liveness_rule", rule="files")] == 1
        assert samples[k("logind_exporter_liveness_rule", rule="unit")] == 0
        real_252.remove("seats", "seat0")
        exporter.wait_for(has({k("logind_up"): 0}), EVENT_TIMEOUT, "seat0 gone")


def _once() -> Samples:
    result = subprocess.run(
        [sys.executable, "-m", "login_exporter", "--once"],
        cwd=ROOT, capture_output=True, text=True, timeout=20,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return parse_samples(result.stdout)


def _liveness(samples: Samples) -> dict[Key, float]:
    return {key: value for key, value in samples.items()
            if key[0] in ("logind_up", "logind_exporter_liveness_rule")}  # fmt: skip


@pytest.mark.parametrize(
    ("link", "up", "rule"),
    [("running", 1, "unit"), ("stopped", 0, "unit"), ("no units directory", 1, "files")],
)
def test_once_says_what_the_server_says_of_logind(
    real_252: LogindState, link: str, up: int, rule: str
) -> None:
    # A textfile collector fed from --once must see a stopped logind too: the same rules as the
    # server (issue 22).
    if link != "no units directory":
        real_252.invocation(LOGIND_UNIT, "0f9a6c3e")
    if link == "stopped":
        real_252.invocation(LOGIND_UNIT, None)  # its state files and the units directory stay
    once = _liveness(_once())
    rules = {k("logind_exporter_liveness_rule", rule=r): int(r == rule)
             for r in ("unit", "pidfile", "files")}  # fmt: skip
    assert once == {k("logind_up"): up, **rules}
    with running_exporter("--refresh.resync-interval=0") as exporter:
        served = exporter.wait_for(has(once), EVENT_TIMEOUT, f"the server saying {once}")
    assert _liveness(served) == once
