"""What logind's bus interface says at one moment, as plain immutable values.

The collector turns a :class:`Presence` into metric families; it never sees the bus.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


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
