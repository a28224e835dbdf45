"""The Refresher over real libsystemd, reading state written into a private /run/systemd."""

from __future__ import annotations

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


def test_a_resync_rereads_exactly_the_listed_fields(logind: LogindState) -> None:
    logind.seat0()
    logind.session("1", uid=1000, type="tty", state="online", active=False)
    refresher = Refresher()
    first = refresher.refresh(EMPTY, Changes(everything=True))
    # Rewritten in place (no event named it): only SESSION_REREAD may follow.
    logind.session("1", uid=1000, type="wayland", state="active", active=True)
    second = refresher.refresh(first, Changes(everything=True))
    changed = {
        name for name in Session.__dataclass_fields__
        if getattr(first.sessions["1"], name) != getattr(second.sessions["1"], name)
    }  # fmt: skip
    assert changed == set(SESSION_REREAD) == {"state", "active"}
    assert second.sessions["1"].type == "tty"  # kept until an event names the session

