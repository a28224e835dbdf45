"""The multi-seat golden fixture (tests/fixtures/real-262-multiseat: what a booted systemd 262
wrote with seat0..seat3 and graphical sessions on them) read by this machine's libsystemd and by
the exporter: every per-seat figure is the one loginctl gave of the same state."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from login_exporter import sdlogin
from tests.support.exporter import running_exporter
from tests.support.exposition import Samples, parse_samples
from tests.support.golden import loginctl_262_multiseat
from tests.support.logind_state import LogindState

ROOT = Path(__file__).resolve().parents[2]
SAID: dict[str, Any] = loginctl_262_multiseat()
Key = tuple[str, frozenset[tuple[str, str]]]


def k(name: str, **labels: str) -> Key:
    return (name, frozenset(labels.items()))


def expected() -> dict[Key, float]:
    """What loginctl said of the tree, as the exporter's state-file samples."""
    out: dict[Key, float] = {k("logind_up"): 1}
    sessions: Counter[Key] = Counter()
    for p in SAID["session_properties"].values():
        sessions[k("logind_sessions", seat=p["Seat"], remote="true" if p["Remote"] == "yes"
                   else "false", type=p["Type"], state=p["State"], **{"class": p["Class"]})] += 1
    out.update(sessions)
    users = Counter(SAID["user_states"].values())
    for state in ("offline", "lingering", "online", "active", "closing"):
        out[k("logind_users", state=state)] = users[state]
    for seat, p in SAID["seat_properties"].items():
        out[k("logind_seat_present", seat=seat)] = 1
        out[k("logind_seat_sessions", seat=seat)] = len(p["Sessions"].split())
        out[k("logind_seat_active_session", seat=seat)] = float(bool(p["ActiveSession"]))
        out[k("logind_seat_can_graphical", seat=seat)] = float(p["CanGraphical"] == "yes")
        out[k("logind_seat_can_tty", seat=seat)] = float(p["CanTTY"] == "yes")
        out[k("logind_seat_can_multi_session", seat=seat)] = 1  # always, since systemd 246
    return out


def assert_as_loginctl_said(samples: Samples) -> None:
    """Every expected sample has loginctl's value, and no seat or session series is extra."""
    want = expected()
    wrong = {key: (samples.get(key), value) for key, value in want.items()
             if samples.get(key) != value}
    assert not wrong, f"(got, want): {wrong}"
    for name in ("logind_sessions", "logind_seat_present", "logind_seat_sessions"):
        got = {key for key in samples if key[0] == name}
        assert got == {key for key in want if key[0] == name}, name


def test_the_fixture_has_seats_beyond_seat0_with_graphical_sessions() -> None:
    # Guards the comparisons below against a capture that lost what makes it multi-seat.
    seats = SAID["seat_properties"]
    assert sorted(seats) == ["seat0", "seat1", "seat2", "seat3"]
    assert all(len(seats[s]["Sessions"].split()) == 2 for s in ("seat1", "seat2"))
    kinds = {(p["Seat"], p["Type"], p["Class"]) for p in SAID["session_properties"].values()}
    assert {("seat1", "x11", "greeter"), ("seat1", "x11", "user"),
            ("seat2", "wayland", "user")} <= kinds
    assert SAID["systemd"].startswith("262")


def test_sd_login_reads_each_seat_as_loginctl_said(real_262_multiseat: LogindState) -> None:
    assert sorted(sdlogin.seats()) == sorted(SAID["seat_properties"])
    uids = {s["session"]: s["uid"] for s in SAID["sessions"]}
    for seat, p in SAID["seat_properties"].items():
        active, uid = sdlogin.seat_get_active(seat)
        assert (active or "") == p["ActiveSession"], seat
        if active:
            assert uid == uids[active]
        assert sdlogin.seat_get_sessions(seat) == p["Sessions"].split(), seat
        assert sdlogin.seat_can_tty(seat) is (p["CanTTY"] == "yes")
        assert sdlogin.seat_can_graphical(seat) is (p["CanGraphical"] == "yes")
    for session, p in SAID["session_properties"].items():
        got = (sdlogin.session_get_seat(session) or "", sdlogin.session_get_type(session),
               sdlogin.session_get_class(session), sdlogin.session_get_state(session),
               sdlogin.session_is_active(session))
        assert got == (p["Seat"], p["Type"], p["Class"], p["State"], p["Active"] == "yes"), session


def test_once_gives_the_per_seat_numbers_loginctl_gave(real_262_multiseat: LogindState) -> None:
    result = subprocess.run([sys.executable, "-m", "login_exporter", "--once"], cwd=ROOT,
                            capture_output=True, text=True, timeout=20)
    assert result.returncode == 0, result.stderr
    assert_as_loginctl_said(parse_samples(result.stdout))


def test_the_server_gives_the_same_and_follows_a_seat_going(
    real_262_multiseat: LogindState,
) -> None:
    with running_exporter() as exporter:
        assert_as_loginctl_said(parse_samples(exporter.get().text))
        # seat3 (no sessions) goes as logind removes it: its file first. It stays exported at 0.
        real_262_multiseat.remove("seats", "seat3")

        def gone() -> Samples | None:
            samples = parse_samples(exporter.get().text)
            return samples if samples.get(k("logind_seat_present", seat="seat3")) == 0 else None

        samples = wait(gone)
        for name in ("logind_seat_sessions", "logind_seat_active_session",
                     "logind_seat_can_graphical"):
            assert samples[k(name, seat="seat3")] == 0, name
        assert samples[k("logind_seat_present", seat="seat2")] == 1


def wait(probe: Callable[[], Samples | None], timeout: float = 2.0) -> Samples:
    """Call ``probe`` until it returns samples; raise AssertionError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = probe()
        if got is not None:
            return got
        time.sleep(0.02)
    raise AssertionError(f"no such samples within {timeout} s")
