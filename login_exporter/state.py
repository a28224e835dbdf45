"""Logind's state as immutable snapshots, and what changed between two of them.

A :class:`Refresher` turns sd-login into one :class:`Snapshot`. Session ids are never reused
while the machine is up (sd-login(3)), so what never changes for a session (uid, seat, type,
class, remote, service, ...) is taken from the previous snapshot by id and only state and
active are read again. When the
caller knows which objects changed (the monitor's inotify events name the file renamed into
place or deleted), only those are read; everything else is carried over from the previous
snapshot. When the monitor of a kind was open since the previous snapshot (``Changes.watched``)
its names are complete and that kind is not even listed, so the refresh costs O(changes): the
libsystemd calls of the named objects and a C-level copy of the previous snapshot's dicts.
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import pwd
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, TypeVar

from login_exporter import sdlogin

# Errnos that mean "the object went away between listing and reading": a race, not an error.
VANISHED = frozenset({errno.ENXIO, errno.ENOENT})
SEAT0 = "seat0"
SHARED_MAX = 4096  # distinct values a Refresher shares between sessions (see Refresher._shared)
log = logging.getLogger("login_exporter.state")

K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class Session:
    """One login session. ``seat`` is "" when seatless; None: libsystemd had no data, or the
    field was not read (``uid``, ``service`` and ``active`` only feed the opt-in session info:
    a Refresher without ``details`` leaves them None)."""

    id: str
    uid: int | None
    seat: str
    type: str | None
    klass: str | None
    remote: bool
    service: str | None
    state: str | None
    active: bool | None
    start_time: float | None  # from libsystemd (v254+), seconds since the epoch
    first_seen: float  # wall-clock time this process first saw the session
    user: str | None = None
    remote_host: str | None = None
    tty: str | None = None
    desktop: str | None = None

    @property
    def started(self) -> float:
        """Best known start: libsystemd's start time, else first sight."""
        return self.start_time if self.start_time is not None else self.first_seen


# The one list of what a resync re-reads of a session it already has (name -> getter). Every
# other field of Session must be in SESSION_KEPT: fixed for the session id, kept by this process
# (first_seen), or changed only with a rewrite of the session's file, which is then read whole.
# tests/unit/test_state.py fails when a field of Session is in neither.
SESSION_REREAD: Mapping[str, Callable[[str], Any]] = MappingProxyType(
    {"state": sdlogin.session_get_state, "active": sdlogin.session_is_active}
)
# Read only for the opt-in session info (Refresher(details=True)); None otherwise.
SESSION_DETAILS = frozenset({"uid", "service", "active", "user", "remote_host", "tty", "desktop"})
SESSION_KEPT = frozenset(
    {"id", "uid", "seat", "type", "klass", "remote", "service", "start_time", "first_seen",
     "user", "remote_host", "tty", "desktop"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Seat:
    """One seat and what it can do, as its state file says. ``sessions`` counts the file's
    SESSIONS list, which on systemd 252 may still hold ended sessions: the collector counts live
    sessions instead. Reading the list still catches a torn file (EUCLEAN)."""

    name: str
    active_session: str | None
    sessions: int
    can_graphical: bool
    can_tty: bool
    can_multi_session: bool


@dataclass(frozen=True, slots=True)
class User:
    """A uid with login state."""

    uid: int
    state: str | None


@dataclass(frozen=True, slots=True)
class Machine:
    """A running VM or container registered with machined."""

    name: str
    klass: str | None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything sd-login said at one moment. ``logind_up`` is whether seat0 exists."""

    logind_up: bool
    sessions: Mapping[str, Session]
    seats: Mapping[str, Seat]
    users: Mapping[int, User]
    machines: Mapping[str, Machine]
    taken_at: float
    read_races: int = 0
    read_errors: Mapping[str, int] = field(default_factory=dict)
    # Which snapshot this one is (unique in this process), and, when it was built from the one
    # numbered ``base`` by reading only named sessions, those session ids (each read again or
    # dropped): whoever kept ``base``'s sessions can update from it in O(touched). None: anything
    # may differ (a full read).
    generation: int = 0
    base: int = -1
    touched: frozenset[str] | None = None


EMPTY = Snapshot(False, {}, {}, {}, {}, 0.0)
_generations = itertools.count(1)


@dataclass
class Changes:
    """Names of objects whose state files were renamed into place or deleted, per kind.

    ``everything`` means the names are unknown (start-up, resync, inotify overflow): read all.
    ``watched`` holds the monitor categories ("session", "seat", "uid", "machine") whose monitor
    was open since the previous snapshot, so that their names are every object of that kind
    that appeared, changed or vanished: those kinds are not listed again, which makes a
    refresh cost O(names) instead of O(objects). Kinds not in it are listed (a missing monitor
    would have named nothing).
    """

    everything: bool = False
    sessions: set[str] = field(default_factory=set)
    seats: set[str] = field(default_factory=set)
    users: set[int] = field(default_factory=set)
    machines: set[str] = field(default_factory=set)
    watched: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return self.everything or bool(self.sessions or self.seats or self.users or self.machines)

    def merge(self, other: Changes) -> None:
        """Add other's names (and its everything flag) to these."""
        self.everything |= other.everything
        self.sessions |= other.sessions
        self.seats |= other.seats
        self.users |= other.users
        self.machines |= other.machines


class RefreshCancelled(Exception):
    """A refresh was abandoned because its ``cancelled()`` check turned true (shutting down)."""


class _Tally:
    """Counts races and errors of one refresh."""

    def __init__(self) -> None:
        self.races = 0
        self.errors: dict[str, int] = {}

    def failed(self, exc: OSError) -> None:
        if exc.errno in VANISHED:
            self.races += 1
        else:
            self.errors["read"] = self.errors.get("read", 0) + 1
            log.debug("unreadable state file: %s", exc)


def _user_name(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


class Refresher:
    """Builds snapshots from libsystemd, reusing what it already knows.

    ``details`` also reads uid, user name, service, active, remote host, tty and desktop (for the
    opt-in session info; without it those are None, three libsystemd calls fewer per session).
    ``cancelled`` is asked before each session is read: when it answers True the refresh raises
    RefreshCancelled, so a stop request need not wait for 10,000 sessions to be read.
    """

    def __init__(
        self,
        *,
        machines: bool = True,
        details: bool = False,
        clock: Callable[[], float] = time.time,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> None:
        self.cancelled = cancelled
        self._machines = machines
        self._details = details
        self._clock = clock
        self._has_start_time: bool | None = None
        self._has_username: bool | None = None
        # One object per distinct value of the few-valued fields (seat, type, class, service,
        # state, uid), instead of one per session: about 2 MB less at 10,000 sessions. Bounded,
        # so that a stream of odd values cannot grow them.
        self._strings: dict[str, str] = {}
        self._uids: dict[int, int] = {}

    def _shared_value(self, value: object) -> object:
        return self._shared(value) if isinstance(value, str) else value

    def _shared(self, value: str | None) -> str | None:
        if value is None:
            return None
        known = self._strings.get(value)
        if known is not None:
            return known
        if len(self._strings) < SHARED_MAX:
            self._strings[value] = value
        return value

    def refresh(self, previous: Snapshot, changes: Changes) -> Snapshot:
        """Return a new snapshot; objects not named in ``changes`` are carried over from
        ``previous`` unless ``changes.everything``.

        Vanished objects are skipped and counted as races; unreadable ones are skipped and
        counted as errors. Raises OSError only when a listing itself fails, RefreshCancelled
        when ``cancelled()`` turns true.
        """
        now = self._clock()
        tally = _Tally()
        named = frozenset() if changes.everything else changes.watched
        touched: frozenset[str] | None = None
        if "session" in named:
            sessions = self._named_sessions(previous, changes.sessions, now, tally)
            touched = frozenset(changes.sessions)
        else:
            sessions = self._sessions(sdlogin.sessions(), previous, changes, now, tally)
        if "seat" in named:
            seats, gone = _named_each(previous.seats, changes.seats, _read_seat, tally)
            logind_up = (SEAT0 not in gone) if SEAT0 in changes.seats else previous.logind_up
        else:
            seat_names = sdlogin.seats()
            seats = _refresh_each(
                seat_names, previous.seats, changes.seats, changes.everything, _read_seat, tally
            )
            logind_up = SEAT0 in seat_names
        if "uid" in named:
            users, _ = _named_each(previous.users, changes.users, _read_named_user, tally)
        else:
            users = _refresh_each(
                sdlogin.uids(), previous.users, changes.users, changes.everything, _read_user,
                tally,
            )  # fmt: skip
        machines: dict[str, Machine] = {}
        if not self._machines:
            pass
        elif "machine" in named:
            machines, _ = _named_each(previous.machines, changes.machines, _read_machine, tally)
        else:
            machines = _refresh_each(
                sdlogin.machine_names(),
                previous.machines,
                changes.machines,
                changes.everything,
                _read_machine,
                tally,
            )
        return Snapshot(
            logind_up=logind_up,
            sessions=MappingProxyType(sessions),
            seats=MappingProxyType(seats),
            users=MappingProxyType(users),
            machines=MappingProxyType(machines),
            taken_at=now,
            read_races=tally.races,
            read_errors=MappingProxyType(tally.errors),
            generation=next(_generations),
            base=previous.generation,
            touched=touched,
        )

    def _named_sessions(
        self, previous: Snapshot, names: set[str], now: float, tally: _Tally
    ) -> dict[str, Session]:
        # Every change since ``previous`` is named: copy its sessions (one C-level dict copy,
        # no libsystemd call) and read only the named ones whole; a name whose file is gone
        # (ENXIO) ended. Nothing is listed.
        result = _copy(previous.sessions)
        for name in names:
            if self.cancelled():
                raise RefreshCancelled
            known = result.pop(name, None)
            try:
                result[name] = self._read_session(name, known, None, now)
            except OSError as exc:
                if exc.errno not in VANISHED:
                    tally.failed(exc)
        return result

    def _sessions(
        self,
        names: list[str],
        previous: Snapshot,
        changes: Changes,
        now: float,
        tally: _Tally,
    ) -> dict[str, Session]:
        result: dict[str, Session] = {}
        for name in names:
            known = previous.sessions.get(name)
            if known is not None and not changes.everything and name not in changes.sessions:
                result[name] = known
                continue
            if self.cancelled():
                raise RefreshCancelled
            # A file logind rewrote is read whole: anything in it may have changed (SetType,
            # SetClass). Otherwise what never changes for a session id is taken from before.
            reuse = known if name not in changes.sessions else None
            try:
                result[name] = self._read_session(name, known, reuse, now)
            except OSError as exc:
                tally.failed(exc)
        return result

    def _read_session(
        self, name: str, known: Session | None, reuse: Session | None, now: float
    ) -> Session:
        details = self._details
        if reuse is not None:
            rereads: dict[str, Any] = {
                field: self._shared_value(read(name))
                for field, read in SESSION_REREAD.items()
                if details or field not in SESSION_DETAILS
            }
            return replace(reuse, **rereads)
        if self._has_start_time is None:
            caps = sdlogin.capabilities()
            self._has_start_time = caps["sd_session_get_start_time"]
            self._has_username = caps["sd_session_get_username"]
        # uid, service and active feed only the session info: without it, three libsystemd
        # calls fewer per session (each opens and parses the session's file again).
        uid = sdlogin.session_get_uid(name) if details else None
        user: str | None = None
        if uid is not None:
            user = (
                sdlogin.session_get_username(name) if self._has_username else _user_name(uid)
            )
            uid = self._uids.setdefault(uid, uid) if len(self._uids) < SHARED_MAX else uid
        shared = self._shared
        seat = shared(sdlogin.session_get_seat(name)) or ""
        type_ = shared(sdlogin.session_get_type(name))
        klass = shared(sdlogin.session_get_class(name))
        remote = sdlogin.session_is_remote(name)
        service = shared(sdlogin.session_get_service(name)) if details else None
        start_time = sdlogin.session_get_start_time(name) if self._has_start_time else None
        remote_host = sdlogin.session_get_remote_host(name) if details else None
        tty = sdlogin.session_get_tty(name) if details else None
        desktop = sdlogin.session_get_desktop(name) if details else None
        # Read last: if the session vanished meanwhile, these raise ENXIO (a race, counted).
        state = shared(sdlogin.session_get_state(name))
        active = sdlogin.session_is_active(name) if details else None
        return Session(
            id=name,
            uid=uid,
            seat=seat,
            type=type_,
            klass=klass,
            remote=remote,
            service=service,
            state=state,
            active=active,
            start_time=start_time,
            first_seen=known.first_seen if known is not None else now,
            user=user,
            remote_host=remote_host,
            tty=tty,
            desktop=desktop,
        )


def _refresh_each(
    names: Iterable[K],
    previous: Mapping[K, V],
    changed: set[K],
    everything: bool,
    read: Callable[[K], V],
    tally: _Tally,
) -> dict[K, V]:
    result: dict[K, V] = {}
    for name in names:
        known = None if everything or name in changed else previous.get(name)
        if known is not None:
            result[name] = known
            continue
        try:
            result[name] = read(name)
        except OSError as exc:
            tally.failed(exc)
    return result


def _copy(mapping: Mapping[K, V]) -> dict[K, V]:
    # A snapshot's mappings are read-only views of dicts: copying the dict behind one is a
    # C-level copy, where dict(view) goes item by item through the view.
    if isinstance(mapping, MappingProxyType):
        copied: dict[K, V] = mapping.copy()
        return copied
    return dict(mapping)


def _named_each(
    previous: Mapping[K, V], names: set[K], read: Callable[[K], V], tally: _Tally
) -> tuple[dict[K, V], set[K]]:
    """Return ``previous`` with every named object read again, and the names whose file is gone
    (dropped, not counted: the event said they were deleted). Unreadable ones are dropped and
    counted as errors."""
    result, gone = _copy(previous), set()
    for name in names:
        result.pop(name, None)
        try:
            result[name] = read(name)
        except OSError as exc:
            if exc.errno in VANISHED:
                gone.add(name)
            else:
                tally.failed(exc)
    return result, gone


def _read_seat(name: str) -> Seat:
    active, _ = sdlogin.seat_get_active(name)
    return Seat(
        name=name,
        active_session=active,
        sessions=len(sdlogin.seat_get_sessions(name)),
        can_graphical=sdlogin.seat_can_graphical(name),
        can_tty=sdlogin.seat_can_tty(name),
        can_multi_session=sdlogin.seat_can_multi_session(name),
    )


def _read_user(uid: int) -> User:
    return User(uid=uid, state=sdlogin.uid_get_state(uid))


USERS_DIRECTORY = "/run/systemd/users"


def _read_named_user(uid: int) -> User:
    # sd_uid_get_state answers "offline" for a uid without a file instead of failing, so a named
    # uid's file is looked for first (raises ENOENT when gone, as the other kinds' getters do).
    os.stat(f"{USERS_DIRECTORY}/{uid}")
    return _read_user(uid)


def _read_machine(name: str) -> Machine:
    return Machine(name=name, klass=sdlogin.machine_get_class(name))


# -- differences between snapshots ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Difference:
    """What appeared and disappeared between two consecutive snapshots."""

    started: tuple[Session, ...]
    ended: tuple[Session, ...]
    machines_started: tuple[Machine, ...]
    machines_stopped: tuple[Machine, ...]


def difference(before: Snapshot, after: Snapshot) -> Difference:
    """Return the sessions and machines that appeared in or vanished from ``after``.

    When ``after`` was built from ``before`` by reading named sessions only, only those are
    compared (O(touched) instead of O(sessions)).
    """
    if after.touched is not None and after.base == before.generation:
        old, new = before.sessions, after.sessions
        started = tuple(new[k] for k in after.touched if k in new and k not in old)
        ended = tuple(old[k] for k in after.touched if k in old and k not in new)
    else:
        started = tuple(s for k, s in after.sessions.items() if k not in before.sessions)
        ended = tuple(s for k, s in before.sessions.items() if k not in after.sessions)
    return Difference(
        started=started,
        ended=ended,
        machines_started=tuple(m for k, m in after.machines.items() if k not in before.machines),
        machines_stopped=tuple(m for k, m in before.machines.items() if k not in after.machines),
    )

