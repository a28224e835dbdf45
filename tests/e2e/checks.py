"""Compare the exporter's exposition with what logind / machined report in the same container."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

from tests.e2e.scenario import (
    USER_STATES,
    Exposition,
    MachineTruth,
    Scene,
    SeatTruth,
    SessionTruth,
    label,
    scrape,
)

SESSION_KEYS = ("seat", "remote", "type", "class", "state")
# Every per-seat family built from the state files (collector.py's _seats). A seat that has gone
# stays exported, at 0 in each.
SEAT_FAMILIES = ("logind_seat_present", "logind_seat_sessions", "logind_seat_active_session",
                 "logind_seat_can_graphical", "logind_seat_can_tty",
                 "logind_seat_can_multi_session")


def exported_seats(exp: Exposition, families: tuple[str, ...]) -> set[str]:
    """Every seat label value any of ``families`` carries in ``exp``."""
    return {dict(labels)["seat"] for name in families for labels in exp.series(name)
            if "seat" in dict(labels)}


def gone_seat_differences(exp: Exposition, seats: set[str], families: tuple[str, ...]
                          ) -> list[str]:
    """Every seat the exporter still shows though logind no longer has it: a seat not in
    ``seats`` may stay exported (the family keeps its label set), but only at 0 in each of
    ``families``. Returns the complaints ([] when there is none)."""
    out = []
    for seat in sorted(exported_seats(exp, families) - seats):
        for name in families:
            got = exp.get(name, seat=seat)
            if got:  # absent or 0
                out.append(f"{name}{{seat={seat!r}}} = {got}, but logind has no seat {seat}")
    return out


@dataclass(frozen=True)
class LoginAnswers:
    """What loginctl, machinectl and the users' state files say at one moment."""

    sessions: list[SessionTruth]
    user_file_states: Counter[str]
    seats: list[SeatTruth]
    machines: list[MachineTruth]

    @classmethod
    def collect(cls, scene: Scene) -> LoginAnswers:
        """Ask the container now (a few seconds at most; raises ContainerError)."""
        truth = scene.truth
        return cls(truth.sessions(), truth.user_file_states(), truth.seats(), truth.machines())


def differences(scene: Scene, exp: Exposition) -> list[str]:
    """Every way ``exp`` disagrees with the container right now ([] when it agrees)."""
    return login_differences(LoginAnswers.collect(scene), exp)


def login_differences(want: LoginAnswers, exp: Exposition) -> list[str]:
    """Every way ``exp`` disagrees with ``want`` ([] when it agrees)."""
    out: list[str] = []

    if exp.get("logind_up") != 1.0:
        out.append(f"logind_up = {exp.get('logind_up')}, want 1")

    sessions = want.sessions
    want_sessions = Counter(s.key for s in sessions)
    got_sessions = exp.nonzero("logind_sessions", SESSION_KEYS)
    if got_sessions != want_sessions:
        out.append(f"logind_sessions {dict(got_sessions)} != loginctl {dict(want_sessions)}")

    # sd_uid_get_state() reads /run/systemd/users/UID; loginctl asks logind's memory over
    # D-Bus. They differ for a user who became lingering when their last session ended (logind
    # does not save the user file then, notes §2); the exporter reports what sd-login reports.
    want_users = want.user_file_states
    for state in USER_STATES:
        got = exp.get("logind_users", state=state)
        if got is None:
            out.append(f"logind_users{{state={state!r}}} missing (all five are always exported)")
        elif got != want_users.get(state, 0):
            out.append(f"logind_users{{state={state!r}}} = {got}, /run/systemd/users says "
                       f"{want_users.get(state, 0)} ({dict(want_users)})")

    seats = want.seats
    for seat in seats:
        want_seat = {
            "logind_seat_present": 1.0,
            "logind_seat_sessions": float(len(seat.sessions)),
            "logind_seat_active_session": 1.0 if seat.active_session else 0.0,
            "logind_seat_can_graphical": 1.0 if seat.can_graphical else 0.0,
            "logind_seat_can_tty": 1.0 if seat.can_tty else 0.0,
            # systemd >= 246: sd_seat_can_multi_session() is always true (loginctl no longer
            # shows the property).
            "logind_seat_can_multi_session": 1.0,
        }
        for name, value in want_seat.items():
            got = exp.get(name, seat=seat.name)
            if got != value:
                out.append(f"{name}{{seat={seat.name!r}}} = {got}, loginctl says {value}")
    out += gone_seat_differences(exp, {seat.name for seat in seats}, SEAT_FAMILIES)

    machines = want.machines
    want_classes = Counter(m.machine_class for m in machines)
    got_classes = exp.nonzero("logind_machines", ("class",))
    if Counter({k[0]: v for k, v in got_classes.items()}) != want_classes:
        out.append(f"logind_machines {dict(got_classes)} != machinectl {dict(want_classes)}")
    want_info = {(m.name, m.machine_class) for m in machines}
    got_info = set(exp.nonzero("logind_machine_info", ("machine", "class")))
    if got_info != want_info:
        out.append(f"logind_machine_info {sorted(got_info)} != machinectl {sorted(want_info)}")

    want_info_s = {
        (s.id, str(s.uid), s.user, s.seat, label(s.type), label(s.session_class),
         label(s.state), "true" if s.remote else "false", s.remote_host, s.service)
        for s in sessions
    }
    got_info_s = set(exp.nonzero("logind_session_info", (
        "session", "uid", "user", "seat", "type", "class", "state", "remote", "remote_host",
        "service")))
    if got_info_s != want_info_s:
        out.append(f"logind_session_info: exporter only {sorted(got_info_s - want_info_s)}, "
                   f"loginctl only {sorted(want_info_s - got_info_s)}")
    return out


def assert_agrees(scene: Scene, port: int, timeout: float = 5.0) -> Exposition:
    """Poll until the exporter at ``port`` agrees with logind in everything; return that scrape.

    Raises AssertionError listing the differences of the last attempt.
    """
    deadline = time.monotonic() + timeout
    while True:
        exp = scrape(port)
        diffs = differences(scene, exp)
        if not diffs:
            return exp
        if time.monotonic() >= deadline:
            raise AssertionError("exporter disagrees with logind:\n  " + "\n  ".join(diffs))
        time.sleep(0.1)


def wait_for_session(port: int, session_id: str, timeout: float = 5.0) -> Exposition:
    """Poll until logind_session_info shows ``session_id``; return that scrape."""
    deadline = time.monotonic() + timeout
    while True:
        exp = scrape(port)
        if any(dict(lbl).get("session") == session_id and v
               for lbl, v in exp.series("logind_session_info").items()):
            return exp
        if time.monotonic() >= deadline:
            raise AssertionError(f"exporter never showed session {session_id}")
        time.sleep(0.05)
