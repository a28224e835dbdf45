"""Metric families of what only logind's bus knows: presence (idle, locked) and power
(inhibitors, shutdown, sleep, lid). Built from a :class:`~login_exporter.bus.Presence`;
nothing here touches the bus.

While the bus is not connected or logind does not own its name, only ``logind_dbus_up 0`` is
exported: the other values are unknown, not zero.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping

from prometheus_client.core import Metric

from login_exporter.bus.view import Presence
from login_exporter.collector import label_value, session_key
from login_exporter.families import Sticky, counter, gauge

SESSION_LABELS = ["seat", "remote", "type", "class"]
# Exported from the start (at 0), like the five user states, so dashboards and alerts on the
# usual operations and shutdown types have a series before the first lock or schedule.
COMMON_INHIBITORS = tuple((what, mode) for what in ("shutdown", "sleep", "idle")
                          for mode in ("block", "delay"))
COMMON_SHUTDOWNS = ("poweroff", "reboot")


class PresenceFamilies:
    """Turns presence views into families; remembers label sets (they stay exported at 0)."""

    def __init__(self, inhibitor_info: bool = False) -> None:
        self._inhibitor_info = inhibitor_info
        self._sticky = Sticky()

    def build(self, presence: Presence, messages: int = 0,
              dropped: Mapping[str, int] | None = None) -> list[Metric]:
        """Return the families for ``presence`` (logind_dbus_up alone while it is not up);
        ``messages`` counts what the bus sent so far, ``dropped`` what was refused of it, by
        reason."""
        families = [gauge(
            "logind_dbus_up",
            "1 while connected to the system bus and org.freedesktop.login1 has an owner.",
            [], {(): 1.0 if presence.up else 0.0},
        ), counter(
            "logind_exporter_dbus_messages_total",
            "Messages (signals and replies) received from the system bus.",
            [], {(): float(messages)},
        ), counter(
            "logind_exporter_bus_messages_dropped_total",
            "Messages from the system bus that were not acted on, by reason: sender (not from "
            "who may send it), unexpected (a call to us, a reply to no pending call), size "
            "(over 16 MiB, skipped unread), signature (not the member's), property (a value of "
            "another type than logind's; counted per property).",
            ["reason"], {(reason,): float(count) for reason, count in (dropped or {}).items()},
        )]
        if presence.up:
            families.extend(self._power(presence))
            families.extend(self._presence(presence))
            families.extend(self._inhibitors(presence))
        return families

    def _power(self, presence: Presence) -> Iterator[Metric]:
        power = presence.power
        flags = (
            ("logind_idle", "logind's IdleHint: 1 when every session is idle.", power.idle),
            ("logind_preparing_for_shutdown", "logind's PreparingForShutdown.",
             power.preparing_for_shutdown),
            ("logind_preparing_for_sleep", "logind's PreparingForSleep.",
             power.preparing_for_sleep),
            ("logind_lid_closed", "logind's LidClosed (read at connect, on sleep/resume and "
             "on resync: logind announces no change).", power.lid_closed),
            ("logind_docked", "logind's Docked (read like logind_lid_closed).", power.docked),
            ("logind_on_external_power", "logind's OnExternalPower (read like "
             "logind_lid_closed).", power.on_external_power),
        )  # fmt: skip
        for name, doc, value in flags:
            if value is not None:
                yield gauge(name, doc, [], {(): float(value)})
        if power.idle is not None:
            yield gauge("logind_idle_since_seconds",
                        "logind's IdleSinceHint as Unix time, 0 while not idle.",
                        [], {(): power.idle_since})
        shutdown: dict[tuple[str, ...], float] = {(kind,): 0.0 for kind in COMMON_SHUTDOWNS}
        if power.scheduled_shutdown is not None:
            kind, when = power.scheduled_shutdown
            shutdown[(label_value(kind),)] = when
        yield gauge(
            "logind_scheduled_shutdown_timestamp_seconds",
            "Unix time of the shutdown logind has scheduled, by type (poweroff, reboot, ...); "
            "0 when none.",
            ["type"], self._sticky.fill("logind_scheduled_shutdown_timestamp_seconds", shutdown),
        )

    def _presence(self, presence: Presence) -> Iterator[Metric]:
        idle: dict[tuple[str, ...], float] = {}
        since: dict[tuple[str, ...], float] = {}
        for name, seat in presence.seats.items():
            idle[(name,)], since[(name,)] = float(seat.idle), seat.idle_since
        yield gauge("logind_seat_idle", "The seat's IdleHint.", ["seat"],
                    self._sticky.fill("logind_seat_idle", idle))
        yield gauge("logind_seat_idle_since_seconds",
                    "The seat's IdleSinceHint as Unix time, 0 while not idle.", ["seat"],
                    self._sticky.fill("logind_seat_idle_since_seconds", since))
        idle_sessions: Counter[tuple[str, ...]] = Counter()
        locked_sessions: Counter[tuple[str, ...]] = Counter()
        for s in presence.sessions.values():
            key = session_key(s.seat, s.remote, s.type, s.klass)
            idle_sessions[key] += s.idle
            locked_sessions[key] += s.locked
        yield gauge("logind_sessions_idle", "Sessions whose IdleHint is set.", SESSION_LABELS,
                    self._sticky.fill("logind_sessions_idle",
                                      {k: float(v) for k, v in idle_sessions.items()}))
        yield gauge("logind_sessions_locked", "Sessions whose LockedHint is set.",
                    SESSION_LABELS,
                    self._sticky.fill("logind_sessions_locked",
                                      {k: float(v) for k, v in locked_sessions.items()}))

    def _inhibitors(self, presence: Presence) -> Iterator[Metric]:
        counts: Counter[tuple[str, ...]] = Counter({key: 0 for key in COMMON_INHIBITORS})
        oldest: dict[tuple[str, ...], float] = {key: 0.0 for key in COMMON_INHIBITORS}
        info: dict[tuple[str, ...], float] = {}
        for lock in presence.inhibitors:
            mode = label_value(lock.mode)
            for what in lock.what.split(":"):
                key = (label_value(what), mode)
                counts[key] += 1
                oldest[key] = min(oldest.get(key) or lock.since, lock.since)
                if self._inhibitor_info:
                    labels = (key[0], mode, lock.who, lock.why, str(lock.uid))
                    info[labels] = info.get(labels, 0.0) + 1.0
        yield gauge("logind_inhibitors",
                    "Inhibitor locks held, one count per operation they inhibit, by mode.",
                    ["what", "mode"],
                    self._sticky.fill("logind_inhibitors",
                                      {k: float(v) for k, v in counts.items()}))
        yield gauge("logind_inhibitor_since_seconds",
                    "Unix time the oldest of these locks was first seen by the exporter (logind "
                    "does not say when a lock was taken; locks held at start-up count from "
                    "then); 0 when none is held.", ["what", "mode"],
                    self._sticky.fill("logind_inhibitor_since_seconds", oldest))
        if self._inhibitor_info:
            yield gauge("logind_inhibitor_info",
                        "Inhibitor locks by operation, mode, holder and reason (opt-in: "
                        "--collector.inhibitor-info): 1 per lock.",
                        ["what", "mode", "who", "why", "uid"], info)
