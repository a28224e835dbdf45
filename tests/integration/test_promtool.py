"""`promtool check metrics` (Prometheus' own linter) on the real exporter's exposition."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.support.exporter import ROOT, running_exporter
from tests.support.logind_state import LogindState


def promtool_check(exposition: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not found: install Debian's prometheus package (.ci/apt-packages)")
    return subprocess.run(
        [promtool, "check", "metrics"], input=exposition, capture_output=True, text=True,
        timeout=30,
    )  # fmt: skip


def assert_clean(exposition: str) -> None:
    result = promtool_check(exposition)
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), (
        f"promtool check metrics: rc={result.returncode}\n{result.stdout}{result.stderr}"
    )


def test_promtool_catches_a_bad_exposition() -> None:
    """The control: promtool does complain about a counter without _total, so a clean run
    below means something."""
    bad = "# HELP logind_bad A counter.\n# TYPE logind_bad counter\nlogind_bad 1\n"
    result = promtool_check(bad)
    assert result.returncode != 0 or result.stdout.strip() or result.stderr.strip()


@pytest.mark.parametrize("flags", [(), ("--collector.session-info",)])
def test_real_252_exposition_is_clean(real_252: LogindState, flags: tuple[str, ...]) -> None:
    with running_exporter(*flags) as exporter:
        text = exporter.get("/metrics").text
    assert "logind_sessions{" in text
    assert ("logind_session_info{" in text) == bool(flags)
    assert_clean(text)


def test_once_output_is_clean(real_252: LogindState) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "login_exporter", "--once", "--collector.session-info"],
        cwd=ROOT, capture_output=True, text=True, timeout=20,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert_clean(result.stdout)


def test_exposition_after_churn_is_clean(real_252: LogindState) -> None:
    with running_exporter("--collector.session-info") as exporter:
        real_252.session("140", uid=1010, seat="seat0", type="wayland", klass="user")
        real_252.machine("ct2", klass="container")
        real_252.seat("seat-kiosk1", sessions=[("141", 1011)], active="141")
        real_252.session("141", uid=1011, seat="seat-kiosk1", type="x11", klass="user-early")
        exporter.wait_for(
            lambda s: s.get(("logind_seat_present", frozenset({("seat", "seat-kiosk1")}))) == 1
            and any(name == "logind_machine_starts_total" for name, _ in s),
            5.0, "logins and a machine",
        )  # fmt: skip
        real_252.remove("sessions", "140")
        real_252.remove("sessions", "141")
        real_252.remove("seats", "seat-kiosk1")
        real_252.remove_machine("vm1")
        exporter.wait_for(
            lambda s: any(name == "logind_session_duration_seconds_count" for name, _ in s)
            and any(name == "logind_machine_stops_total" for name, _ in s)
            and s.get(("logind_seat_present", frozenset({("seat", "seat-kiosk1")}))) == 0,
            5.0, "logouts and a machine stop",
        )  # fmt: skip
        text = exporter.get("/metrics").text
    for needle in ("logind_session_starts_total{", "logind_session_ends_total{",
                   "logind_session_duration_seconds_bucket{", "logind_machine_starts_total{",
                   "logind_machine_stops_total{", 'logind_seat_present{seat="seat-kiosk1"} 0.0'):
        assert needle in text, needle  # fmt: skip
    assert_clean(text)
