"""Snapshots, their differences, Changes, and the Refresher over real libsystemd."""

from __future__ import annotations

import pytest

from login_exporter.state import (
    EMPTY,
    Changes,
    Machine,
    Refresher,
    Seat,
    User,
    difference,
)
from tests.support.logind_state import LogindState
from tests.support.snapshots import session, snapshot

# -- difference() ---------------------------------------------------------------------------------


def test_difference_of_identical_snapshots_is_empty() -> None:
    a = snapshot([session("1"), session("2")], machines=[Machine("vm1", "vm")])
    change = difference(a, a)
    assert change.started == change.ended == ()
    assert change.machines_started == change.machines_stopped == ()


def test_difference_names_started_and_ended_sessions() -> None:
    before = snapshot([session("1"), session("2")])
    after = snapshot([session("2"), session("3"), session("4")])
    change = difference(before, after)
    assert sorted(s.id for s in change.started) == ["3", "4"]
    assert [s.id for s in change.ended] == ["1"]


def test_difference_ignores_a_session_whose_state_changed() -> None:
    before = snapshot([session("1", state="online")])
    after = snapshot([session("1", state="active")])
    change = difference(before, after)
    assert change.started == change.ended == ()


def test_difference_ended_session_keeps_its_attributes_from_before() -> None:
    before = snapshot([session("7", seat="seat0", type="x11", klass="greeter")])
    (ended,) = difference(before, EMPTY).ended
    assert (ended.seat, ended.type, ended.klass) == ("seat0", "x11", "greeter")


def test_difference_names_machines_started_and_stopped() -> None:
    before = snapshot(machines=[Machine("vm1", "vm"), Machine("ct1", "container")])
    after = snapshot(machines=[Machine("ct1", "container"), Machine("ct2", "container")])
    change = difference(before, after)
    assert [m.name for m in change.machines_started] == ["ct2"]
    assert [m.name for m in change.machines_stopped] == ["vm1"]


def test_difference_from_empty_counts_everything_as_started() -> None:
    after = snapshot([session("1"), session("2")], machines=[Machine("vm1", "vm")])
    change = difference(EMPTY, after)
    assert len(change.started) == 2
    assert len(change.machines_started) == 1


# -- Session, Changes -----------------------------------------------------------------------------


def test_session_started_prefers_libsystemd_start_time() -> None:
    assert session("1", start_time=50.0, first_seen=90.0).started == 50.0
    assert session("1", start_time=None, first_seen=90.0).started == 90.0


def test_snapshot_is_immutable() -> None:
    snap = snapshot([session("1")])
    with pytest.raises(AttributeError):
        snap.logind_up = False  # type: ignore[misc]
    with pytest.raises(TypeError):
        snap.sessions["2"] = session("2")  # type: ignore[index]


def test_empty_changes_are_false_and_any_name_makes_them_true() -> None:
    assert not Changes()
    assert Changes(everything=True)
    assert Changes(sessions={"1"})
    assert Changes(seats={"seat0"})
    assert Changes(users={1000})
    assert Changes(machines={"vm1"})


def test_changes_merge_unions_names_and_everything() -> None:
    a = Changes(sessions={"1"}, users={1})
    a.merge(Changes(sessions={"2"}, machines={"vm1"}))
    assert a.sessions == {"1", "2"} and a.users == {1} and a.machines == {"vm1"}
    assert not a.everything
    a.merge(Changes(everything=True))
    assert a.everything


# -- Refresher over real libsystemd (private tmpfs /run/systemd) ----------------------------------


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
    assert (s1.uid, s1.seat, s1.type, s1.klass, s1.state, s1.remote) == (
        1000, "seat0", "x11", "user", "online", False,
    )  # fmt: skip
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
