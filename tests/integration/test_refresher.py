"""The Refresher over real libsystemd, reading state written into a private /run/systemd."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest

from login_exporter.sdlogin import _ffi
from login_exporter.state import (
    EMPTY,
    SESSION_REREAD,
    Changes,
    Machine,
    Refresher,
    Seat,
    Session,
    User,
)
from tests.support.logind_state import LogindState


def test_refresher_reads_every_kind(logind: LogindState) -> None:
    logind.session("1", uid=1000, seat="seat0", type="x11", klass="user", state="online")
    logind.session("2", uid=1001, remote=True, remote_host="203.0.113.9")
    logind.seat0(sessions=[("1", 1000)], active="1", can_tty=False)
    logind.user(1000, state="online", sessions=["1"], seats=["seat0"])
    logind.user(1001, state="active", sessions=["2"])
    logind.machine("vm1", klass="vm")
    snap = Refresher(clock=lambda: 42.0).refresh(EMPTY, Changes(everything=True))
    assert snap.logind_up
    assert snap.taken_at == 42.0
    s1, s2 = snap.sessions["1"], snap.sessions["2"]
    assert (s1.seat, s1.type, s1.klass, s1.state, s1.remote) == (
        "seat0", "x11", "user", "online", False,
    )  # fmt: skip
    # Only the session info uses these: not read without details (three calls fewer each).
    assert (s1.uid, s1.service, s1.active) == (None, None, None)
    detailed = Refresher(details=True).refresh(EMPTY, Changes(everything=True)).sessions["1"]
    assert (detailed.uid, detailed.service, detailed.active) == (1000, "login", True)
    assert (s2.seat, s2.remote, s2.first_seen) == ("", True, 42.0)
    assert s2.remote_host is None  # details are opt-in
    assert snap.seats["seat0"] == Seat("seat0", "1", 1, True, False, True)
    assert snap.users == {1000: User(1000, "online"), 1001: User(1001, "active")}
    assert snap.machines == {"vm1": Machine("vm1", "vm")}


def test_refresher_without_seat0_reports_logind_down(logind: LogindState) -> None:
    logind.session("1", uid=1000)
    snap = Refresher().refresh(EMPTY, Changes(everything=True))
    assert not snap.logind_up
    assert set(snap.sessions) == {"1"}


def test_refresher_details_read_identifying_fields(logind: LogindState) -> None:
    logind.seat0()
    logind.session("5", uid=1000, user="alice", remote=True, remote_host="203.0.113.9", tty="pts/0")
    snap = Refresher(details=True).refresh(EMPTY, Changes(everything=True))
    s = snap.sessions["5"]
    assert (s.remote_host, s.tty) == ("203.0.113.9", "pts/0")


def test_refresher_skips_machines_when_disabled(logind: LogindState) -> None:
    logind.seat0()
    logind.machine("ct1")
    snap = Refresher(machines=False).refresh(EMPTY, Changes(everything=True))
    assert snap.machines == {}


def test_refresher_carries_over_unnamed_objects_and_rereads_named_ones(
    logind: LogindState,
) -> None:
    logind.seat0()
    logind.session("1", uid=1000, state="online")
    logind.session("2", uid=1001, state="online")
    refresher = Refresher(clock=lambda: 1.0)
    first = refresher.refresh(EMPTY, Changes(everything=True))
    logind.session("1", uid=1000, state="active")
    logind.session("2", uid=1001, state="active")
    second = refresher.refresh(first, Changes(sessions={"1"}))
    assert second.sessions["1"].state == "active"
    assert second.sessions["2"] is first.sessions["2"]  # not named: carried over as is
    third = refresher.refresh(second, Changes(everything=True))
    assert third.sessions["2"].state == "active"
    assert third.sessions["2"].first_seen == 1.0


def test_refresher_drops_a_deleted_session_even_when_not_named(logind: LogindState) -> None:
    logind.seat0()
    logind.session("1", uid=1000)
    logind.session("2", uid=1001)
    refresher = Refresher()
    first = refresher.refresh(EMPTY, Changes(everything=True))
    logind.remove("sessions", "2")
    second = refresher.refresh(first, Changes())
    assert set(second.sessions) == {"1"}


def test_refresher_rereads_the_static_part_of_a_rewritten_session(logind: LogindState) -> None:
    logind.seat0()
    logind.session("1", uid=1000, type="tty", klass="user-early")
    refresher = Refresher()
    first = refresher.refresh(EMPTY, Changes(everything=True))
    assert first.sessions["1"].klass == "user-early"
    logind.session("1", uid=1000, type="wayland", klass="user")  # SetType / SetClass
    second = refresher.refresh(first, Changes(sessions={"1"}))
    assert (second.sessions["1"].type, second.sessions["1"].klass) == ("wayland", "user")


def test_refresher_counts_an_unparsable_seat_as_read_error(logind: LogindState) -> None:
    logind.seat0()
    # SESSIONS and UIDS of different lengths: sd_seat_get_sessions fails with EUCLEAN.
    logind.seat("seat1", sessions=[("1", 1000)], uids=[1000, 1001])
    logind.session("1", uid=1000, seat="seat1")
    snap = Refresher().refresh(EMPTY, Changes(everything=True))
    assert "seat1" not in snap.seats
    assert snap.read_errors == {"read": 1}
    assert snap.read_races == 0


@pytest.mark.parametrize("details", [True, False])
def test_a_resync_rereads_exactly_the_listed_fields(logind: LogindState, details: bool) -> None:
    logind.seat0()
    logind.session("1", uid=1000, type="tty", state="online", active=False)
    refresher = Refresher(details=details)
    first = refresher.refresh(EMPTY, Changes(everything=True))
    # Rewritten in place (no event named it): only SESSION_REREAD may follow.
    logind.session("1", uid=1000, type="wayland", state="active", active=True)
    second = refresher.refresh(first, Changes(everything=True))
    changed = {
        name for name in Session.__dataclass_fields__
        if getattr(first.sessions["1"], name) != getattr(second.sessions["1"], name)
    }  # fmt: skip
    assert set(SESSION_REREAD) == {"state", "active"}
    assert changed == ({"state", "active"} if details else {"state"})  # active: session info only
    assert second.sessions["1"].type == "tty"  # kept until an event names the session



# -- names from monitors open throughout: nothing listed, O(names) (issue 20) --------------------

WATCHED = frozenset({"session", "seat", "uid", "machine"})


def _populate(logind: LogindState, n: int) -> None:
    logind.seat0()
    for i in range(1, n + 1):
        logind.session(str(i), uid=1000 + i % 7, state="online", active=False)
    for uid in range(1000, 1007):
        logind.user(uid)
    logind.machine("ct1")


def _calls_of_one_change(
    logind: LogindState, monkeypatch: pytest.MonkeyPatch, n: int
) -> Counter[str]:
    """The libsystemd calls of the refresh after one session's file was renamed, at N = n."""
    _populate(logind, n)
    refresher = Refresher()
    first = refresher.refresh(EMPTY, Changes(everything=True))
    logind.session("3", uid=1003, state="active", active=True)
    calls: Counter[str] = Counter()
    lib = _ffi.load()

    class Counting:
        def __getattr__(self, name: str) -> object:
            calls[name] += 1
            return getattr(lib, name)

    monkeypatch.setattr(_ffi, "load", lambda: Counting())
    second = refresher.refresh(first, Changes(sessions={"3"}, watched=WATCHED))
    monkeypatch.undo()
    assert second.sessions["3"].state == "active"
    assert second == replace(
        refresher.refresh(first, Changes(everything=True)),
        taken_at=second.taken_at, generation=second.generation, base=second.base,
        touched=second.touched,
    )  # fmt: skip
    return calls


def test_one_named_change_calls_libsystemd_the_same_at_10_and_1000_sessions(
    logind: LogindState, monkeypatch: pytest.MonkeyPatch
) -> None:
    small = _calls_of_one_change(logind, monkeypatch, 10)
    logind.clear()
    large = _calls_of_one_change(logind, monkeypatch, 1000)
    assert small == large, (small, large)
    assert not {"sd_get_sessions", "sd_get_seats", "sd_get_uids", "sd_get_machine_names"} & set(
        large
    ), large  # nothing listed
    assert 0 < sum(large.values()) <= 12, large  # one session's getters


def test_named_changes_alone_follow_every_kind_appearing_and_vanishing(
    logind: LogindState,
) -> None:
    _populate(logind, 3)
    logind.seat("seat1")
    refresher = Refresher()
    snap = refresher.refresh(EMPTY, Changes(everything=True))
    logind.session("9", uid=1009, seat="seat1")
    logind.remove("sessions", "2")
    logind.user(1009, sessions=["9"])
    logind.remove("users", "1001")
    logind.machine("vm2", klass="vm")
    logind.remove_machine("ct1")
    logind.remove("seats", "seat1")
    named = Changes(
        sessions={"9", "2"}, seats={"seat1"}, users={1009, 1001}, machines={"vm2", "ct1"},
        watched=WATCHED,
    )  # fmt: skip
    after = refresher.refresh(snap, named)
    full = Refresher().refresh(EMPTY, Changes(everything=True))
    assert set(after.sessions) == set(full.sessions) == {"1", "3", "9"}
    assert after.seats == full.seats and set(after.seats) == {"seat0"}
    assert after.users == full.users and 1001 not in after.users
    assert after.machines == full.machines == {"vm2": Machine("vm2", "vm")}
    assert after.logind_up and after.read_races == 0 and not after.read_errors
    assert after.touched == frozenset({"9", "2"}) and after.base == snap.generation
    logind.remove("seats", "seat0")
    down = refresher.refresh(after, Changes(seats={"seat0"}, watched=WATCHED))
    assert not down.logind_up


def test_kinds_not_watched_are_still_listed(logind: LogindState) -> None:
    _populate(logind, 3)
    refresher = Refresher()
    snap = refresher.refresh(EMPTY, Changes(everything=True))
    logind.session("9", uid=1009)
    logind.machine("vm2", klass="vm")
    # The machine monitor was not open: machines are listed; the session named nowhere is not.
    after = refresher.refresh(snap, Changes(watched=frozenset({"session", "seat", "uid"})))
    assert "vm2" in after.machines
    assert "9" not in after.sessions


def test_sessions_share_their_few_valued_strings(logind: LogindState) -> None:
    # 10,000 sessions hold a handful of distinct types, classes and states: one object each.
    _populate(logind, 4)
    snap = Refresher().refresh(EMPTY, Changes(everything=True))
    one, two = snap.sessions["1"], snap.sessions["2"]
    assert one.state == two.state and one.state is two.state
    assert one.klass is two.klass and one.type is two.type and one.service is two.service
