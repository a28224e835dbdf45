"""Snapshots, their differences and Changes (pure logic; the Refresher: tests/integration)."""

from __future__ import annotations

import pytest

from login_exporter.state import (
    EMPTY,
    SESSION_KEPT,
    SESSION_REREAD,
    Changes,
    Machine,
    Session,
    difference,
)
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


# -- what a resync re-reads -----------------------------------------------------------------------


def test_every_session_field_is_either_reread_or_declared_kept() -> None:
    # A new field of Session must be added to one of the two lists in state.py, or a resync would
    # silently keep its first value forever.
    fields = set(Session.__dataclass_fields__)
    assert set(SESSION_REREAD) | SESSION_KEPT == fields, "state.py: SESSION_REREAD or SESSION_KEPT"
    assert not set(SESSION_REREAD) & SESSION_KEPT

