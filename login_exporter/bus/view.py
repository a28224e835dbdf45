"""What logind's bus interface says at one moment, as plain immutable values.

The collector turns a :class:`Presence` into metric families; it never sees the bus.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True, slots=True)
class SessionHints:
    """A session's labels and the hints its owner sets (SetIdleHint, SetLockedHint)."""

    seat: str  # "" when seatless
    remote: bool
    type: str
    klass: str
    idle: bool
    locked: bool


@dataclass(frozen=True, slots=True)
class SeatIdle:
    """A seat's idle hint; ``idle_since`` is Unix time in seconds, 0 while not idle."""

    idle: bool
    idle_since: float


@dataclass(frozen=True, slots=True)
class Inhibitor:
    """One inhibitor lock (ListInhibitors). ``since`` is when this exporter first saw it:
    logind does not publish when a lock was taken."""

    what: str
    who: str
    why: str
    mode: str
    uid: int
    pid: int
    since: float


@dataclass(frozen=True, slots=True)
class Power:
    """The Manager's properties. None: logind has not answered yet, or lacks the property."""

    idle: bool | None = None
    idle_since: float = 0.0
    preparing_for_shutdown: bool | None = None
    preparing_for_sleep: bool | None = None
    scheduled_shutdown: tuple[str, float] | None = None  # (type, Unix time); None when none
    lid_closed: bool | None = None
    docked: bool | None = None
    on_external_power: bool | None = None


@dataclass(frozen=True, slots=True)
class Presence:
    """Everything the bus said. ``connected``: the bus answered our Hello; ``logind_owner``:
    the unique name owning org.freedesktop.login1 (None while nobody owns it)."""

    connected: bool = False
    logind_owner: str | None = None
    power: Power = field(default_factory=Power)
    seats: Mapping[str, SeatIdle] = field(default_factory=lambda: MappingProxyType({}))
    sessions: Mapping[str, SessionHints] = field(default_factory=lambda: MappingProxyType({}))
    inhibitors: tuple[Inhibitor, ...] = ()

    @property
    def up(self) -> bool:
        """logind_dbus_up: connected and org.freedesktop.login1 has an owner."""
        return self.connected and self.logind_owner is not None

    @property
    def logind_running(self) -> bool | None:
        """Whether logind owns its bus name; None while the bus is not connected (unknown).
        For combining with the file-based liveness into logind_up."""
        return self.logind_owner is not None if self.connected else None


DISCONNECTED = Presence()


def presence_from_properties(
    owner: str,
    manager: Mapping[str, Any],
    seats: Iterable[Mapping[str, Any] | None],
    sessions: Mapping[str, Mapping[str, Any] | None],
    inhibitors: tuple[Inhibitor, ...],
) -> Presence:
    """Return the view of a connected bus on which ``owner`` holds org.freedesktop.login1, from
    the properties read so far (None: an object whose GetAll has not answered yet)."""
    seat_idle: dict[str, SeatIdle] = {}
    for props in seats:
        if props is not None and "Id" in props:
            idle = bool(props.get("IdleHint", False))
            since = props.get("IdleSinceHint", 0) / 1e6 if idle else 0.0
            seat_idle[str(props["Id"])] = SeatIdle(idle, since)
    hints: dict[str, SessionHints] = {}
    for path, props in sessions.items():
        if props is None:
            continue
        seat = props.get("Seat", ("", "/"))
        hints[path] = SessionHints(
            seat=str(seat[0]), remote=bool(props.get("Remote", False)),
            type=str(props.get("Type", "")), klass=str(props.get("Class", "")),
            idle=bool(props.get("IdleHint", False)),
            locked=bool(props.get("LockedHint", False)),
        )
    return Presence(
        connected=True,
        logind_owner=owner,
        power=_power(manager),
        seats=MappingProxyType(seat_idle),
        sessions=MappingProxyType(hints),
        inhibitors=inhibitors,
    )


def _optional_bool(props: Mapping[str, Any], name: str) -> bool | None:
    value = props.get(name)
    return None if value is None else bool(value)


def _power(props: Mapping[str, Any]) -> Power:
    idle = _optional_bool(props, "IdleHint")
    scheduled = props.get("ScheduledShutdown")
    shutdown: tuple[str, float] | None = None
    if scheduled and scheduled[0] and scheduled[1]:
        shutdown = (str(scheduled[0]), scheduled[1] / 1e6)
    return Power(
        idle=idle,
        idle_since=props.get("IdleSinceHint", 0) / 1e6 if idle else 0.0,
        preparing_for_shutdown=_optional_bool(props, "PreparingForShutdown"),
        preparing_for_sleep=_optional_bool(props, "PreparingForSleep"),
        scheduled_shutdown=shutdown,
        lid_closed=_optional_bool(props, "LidClosed"),
        docked=_optional_bool(props, "Docked"),
        on_external_power=_optional_bool(props, "OnExternalPower"),
    )
