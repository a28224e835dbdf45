"""Presence families from hand-built bus views (pure logic; the real bus is in tests/e2e)."""

from __future__ import annotations

from collections.abc import Iterable
from types import MappingProxyType

from prometheus_client.core import Metric

from login_exporter.bus.view import (
    DISCONNECTED,
    Inhibitor,
    Power,
    Presence,
    SeatIdle,
    SessionHints,
)
from login_exporter.presence import PresenceFamilies

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(families: Iterable[Metric]) -> Samples:
    return {(s.name, frozenset(s.labels.items())): s.value for f in families for s in f.samples}


def value(got: Samples, name: str, **labels: str) -> float | None:
    return got.get((name, frozenset(labels.items())))


def presence(**kwargs: object) -> Presence:
    base: dict[str, object] = {"connected": True, "logind_owner": ":1.1", "power": Power(
        idle=False, preparing_for_shutdown=False, preparing_for_sleep=False, lid_closed=False)}
    base.update(kwargs)
    return Presence(**base)  # type: ignore[arg-type]


def lock(what: str, mode: str, since: float, who: str = "apt", uid: int = 0) -> Inhibitor:
    return Inhibitor(what, who, "upgrade", mode, uid, 42, since)


def test_disconnected_bus_exports_only_dbus_up_zero() -> None:
    got = samples(PresenceFamilies().build(DISCONNECTED))
    assert value(got, "logind_dbus_up") == 0.0
    assert {name for name, _ in got} == {"logind_dbus_up", "logind_exporter_dbus_messages_total"}


def test_connected_without_logind_owner_is_down_and_unknown() -> None:
    got = samples(PresenceFamilies().build(Presence(connected=True)))
    assert value(got, "logind_dbus_up") == 0.0
    assert value(got, "logind_idle") is None


def test_inhibitors_count_each_operation_and_keep_the_oldest_since() -> None:
    view = presence(inhibitors=(
        lock("sleep:shutdown", "delay", 200.0),
        lock("shutdown", "delay", 100.0),
        lock("idle", "block", 300.0),
    ))
    got = samples(PresenceFamilies().build(view))
    assert value(got, "logind_inhibitors", what="shutdown", mode="delay") == 2
    assert value(got, "logind_inhibitors", what="sleep", mode="delay") == 1
    assert value(got, "logind_inhibitors", what="idle", mode="block") == 1
    assert value(got, "logind_inhibitor_since_seconds", what="shutdown", mode="delay") == 100.0
    assert value(got, "logind_inhibitor_since_seconds", what="sleep", mode="delay") == 200.0
    assert not any(name == "logind_inhibitor_info" for name, _ in got)


def test_released_locks_stay_exported_at_zero() -> None:
    families = PresenceFamilies()
    families.build(presence(inhibitors=(lock("sleep", "block", 5.0),)))
    got = samples(families.build(presence()))
    assert value(got, "logind_inhibitors", what="sleep", mode="block") == 0
    assert value(got, "logind_inhibitor_since_seconds", what="sleep", mode="block") == 0


def test_inhibitor_info_is_opt_in_and_names_who_and_why() -> None:
    view = presence(inhibitors=(lock("sleep", "delay", 1.0, who="NetworkManager", uid=7),))
    got = samples(PresenceFamilies(inhibitor_info=True).build(view))
    assert value(got, "logind_inhibitor_info", what="sleep", mode="delay",
                 who="NetworkManager", why="upgrade", uid="7") == 1.0


def test_odd_inhibitor_operation_names_become_other() -> None:
    got = samples(PresenceFamilies().build(presence(inhibitors=(lock("Bad Op", "block", 1),))))
    assert value(got, "logind_inhibitors", what="other", mode="block") == 1


def test_sessions_idle_and_locked_by_seat_remote_type_class() -> None:
    sessions = {
        "/s/1": SessionHints("seat0", False, "x11", "user", idle=True, locked=True),
        "/s/2": SessionHints("seat0", False, "x11", "user", idle=True, locked=False),
        "/s/3": SessionHints("", True, "tty", "user", idle=False, locked=False),
    }
    got = samples(PresenceFamilies().build(presence(sessions=MappingProxyType(sessions))))
    desk = {"seat": "seat0", "remote": "false", "type": "x11", "class": "user"}
    ssh = {"seat": "", "remote": "true", "type": "tty", "class": "user"}
    assert value(got, "logind_sessions_idle", **desk) == 2
    assert value(got, "logind_sessions_locked", **desk) == 1
    assert value(got, "logind_sessions_idle", **ssh) == 0  # known session, exported as 0
    assert value(got, "logind_sessions_locked", **ssh) == 0


def test_seat_and_manager_idle_since_are_zero_while_not_idle() -> None:
    seats = {"seat0": SeatIdle(True, 1700.5), "seat1": SeatIdle(False, 0.0)}
    view = presence(seats=MappingProxyType(seats), power=Power(idle=True, idle_since=1600.0))
    got = samples(PresenceFamilies().build(view))
    assert value(got, "logind_seat_idle", seat="seat0") == 1
    assert value(got, "logind_seat_idle_since_seconds", seat="seat0") == 1700.5
    assert value(got, "logind_seat_idle_since_seconds", seat="seat1") == 0
    assert value(got, "logind_idle") == 1
    assert value(got, "logind_idle_since_seconds") == 1600.0


def test_scheduled_shutdown_reads_zero_after_cancel() -> None:
    families = PresenceFamilies()
    got = samples(families.build(presence(power=Power(scheduled_shutdown=("reboot", 9e8)))))
    assert value(got, "logind_scheduled_shutdown_timestamp_seconds", type="reboot") == 9e8
    got = samples(families.build(presence()))
    assert value(got, "logind_scheduled_shutdown_timestamp_seconds", type="reboot") == 0


def test_properties_logind_lacks_are_absent_not_zero() -> None:
    got = samples(PresenceFamilies().build(presence(power=Power(idle=False))))
    assert value(got, "logind_lid_closed") is None
    assert value(got, "logind_docked") is None
    assert value(got, "logind_idle") == 0


def test_common_inhibitors_and_shutdown_types_are_exported_at_zero_from_the_start() -> None:
    got = samples(PresenceFamilies().build(presence()))
    for what in ("shutdown", "sleep", "idle"):
        for mode in ("block", "delay"):
            assert value(got, "logind_inhibitors", what=what, mode=mode) == 0
            assert value(got, "logind_inhibitor_since_seconds", what=what, mode=mode) == 0
    assert value(got, "logind_scheduled_shutdown_timestamp_seconds", type="poweroff") == 0
    assert value(got, "logind_scheduled_shutdown_timestamp_seconds", type="reboot") == 0
