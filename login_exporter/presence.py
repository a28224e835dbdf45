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
        families = [
            gauge("logind_dbus_up", {(): 1.0 if presence.up else 0.0}),
            counter("logind_exporter_dbus_messages_total", {(): float(messages)}),
            counter("logind_exporter_bus_messages_dropped_total",
                    {(reason,): float(count) for reason, count in (dropped or {}).items()}),
        ]
        if presence.up:
            families.extend(self._power(presence))
            families.extend(self._presence(presence))
            families.extend(self._inhibitors(presence))
        return families

    def _power(self, presence: Presence) -> Iterator[Metric]:
        power = presence.power
        flags = (
            ("logind_idle", power.idle),
            ("logind_preparing_for_shutdown", power.preparing_for_shutdown),
            ("logind_preparing_for_sleep", power.preparing_for_sleep),
            ("logind_lid_closed", power.lid_closed),
            ("logind_docked", power.docked),
            ("logind_on_external_power", power.on_external_power),
        )
        for name, value in flags:
            if value is not None:
                yield gauge(name, {(): float(value)})
        if power.idle is not None:
            yield gauge("logind_idle_since_seconds", {(): power.idle_since})
        shutdown: dict[tuple[str, ...], float] = {(kind,): 0.0 for kind in COMMON_SHUTDOWNS}
        if power.scheduled_shutdown is not None:
            kind, when = power.scheduled_shutdown
            shutdown[(label_value(kind),)] = when
        name = "logind_scheduled_shutdown_timestamp_seconds"
        yield gauge(name, self._sticky.fill(name, shutdown))

    def _presence(self, presence: Presence) -> Iterator[Metric]:
        idle: dict[tuple[str, ...], float] = {}
        since: dict[tuple[str, ...], float] = {}
        for name, seat in presence.seats.items():
            idle[(name,)], since[(name,)] = float(seat.idle), seat.idle_since
        yield gauge("logind_seat_idle", self._sticky.fill("logind_seat_idle", idle))
        yield gauge("logind_seat_idle_since_seconds",
                    self._sticky.fill("logind_seat_idle_since_seconds", since))
        idle_sessions: Counter[tuple[str, ...]] = Counter()
        locked_sessions: Counter[tuple[str, ...]] = Counter()
        for s in presence.sessions.values():
            key = session_key(s.seat, s.remote, s.type, s.klass)
            idle_sessions[key] += s.idle
            locked_sessions[key] += s.locked
        for name, counts in (("logind_sessions_idle", idle_sessions),
                             ("logind_sessions_locked", locked_sessions)):
            yield gauge(name, self._sticky.fill(name, {k: float(v) for k, v in counts.items()}))

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
        yield gauge("logind_inhibitors", self._sticky.fill(
            "logind_inhibitors", {k: float(v) for k, v in counts.items()}))
        yield gauge("logind_inhibitor_since_seconds",
                    self._sticky.fill("logind_inhibitor_since_seconds", oldest))
        if self._inhibitor_info:
            yield gauge("logind_inhibitor_info", info)
