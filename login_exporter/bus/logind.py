"""Follows org.freedesktop.login1 on the system bus: one initial read, then signals.

On connecting: Hello, two match rules (every signal logind sends; NameOwnerChanged of its
name), GetNameOwner. While logind owns its name: GetAll on the Manager, ListSeats and
ListSessions with GetAll on each, ListInhibitors. After that only signals change the view:
PropertiesChanged (hints, inhibited modes), SessionNew/Removed (a new session's properties
are read when it appears), SeatNew/Removed, PrepareForShutdown/Sleep, NameOwnerChanged.
What logind changes without a signal is read again when something else says so (seen on
systemd 252): ScheduledShutdown when /run/systemd/shutdown changes (see dirwatch); the
inhibitor list when BlockInhibited / DelayInhibited / BlockWeakInhibited change, which logind
announces on every lock taken or released; the Manager's and the seats' IdleHint, computed
over their sessions, when a session appears or goes. What has no trigger at all (LidClosed, Docked,
OnExternalPower, a tty session's idle hint derived from its terminal's access time) is read
again on every Manager read and on :meth:`LogindBus.resync`.

Every method called is a read (Get/GetAll/List*, and the bus daemon's Hello, AddMatch,
GetNameOwner), sent with NO_AUTO_START so a stopped logind is never started by us.
Nothing blocks: the agent's selector drives everything through :meth:`fds`,
:meth:`handle`, :meth:`deadline` and :meth:`tick`.
"""

from __future__ import annotations

import logging
import selectors
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from jeepney.bus_messages import MatchRule, message_bus
from jeepney.low_level import HeaderFields, Message, MessageFlag, MessageType
from jeepney.wrappers import DBusAddress, new_method_call

from login_exporter.bus.connection import Connection, ConnectionLost
from login_exporter.bus.dirwatch import SHUTDOWN_DIR, DirectoryWatch, open_watch
from login_exporter.bus.view import DISCONNECTED, Inhibitor, Presence, presence_from_properties

log = logging.getLogger("login_exporter.bus")

LOGIN1 = "org.freedesktop.login1"
MANAGER_PATH = "/org/freedesktop/login1"
MANAGER = "org.freedesktop.login1.Manager"
SEAT = "org.freedesktop.login1.Seat"
SESSION = "org.freedesktop.login1.Session"
PROPERTIES = "org.freedesktop.DBus.Properties"
SEAT_PREFIX = "/org/freedesktop/login1/seat/"
SESSION_PREFIX = "/org/freedesktop/login1/session/"
INHIBITED = frozenset({"BlockInhibited", "DelayInhibited", "BlockWeakInhibited"})
RETRY_FIRST = 0.1
RETRY_MAX = 5.0
# The system bus refuses more than max_replies_per_connection (128 on Debian) pending calls.
MAX_IN_FLIGHT = 64
# More queued calls than logind can have objects (SessionsMax 8192 + seats + inhibitors)
# means something is wrong: start over rather than grow.
MAX_QUEUED = 20000

Handler = Callable[[bool, tuple[Any, ...]], None]


def _unwrap(properties: dict[str, tuple[str, Any]]) -> dict[str, Any]:
    """a{sv} as jeepney parses it ({name: (signature, value)}) -> {name: value}."""
    return {name: value[1] for name, value in properties.items()}


def _login1_call(path: str, interface: str, method: str, signature: str | None = None,
                 body: tuple[Any, ...] = ()) -> Message:
    message = new_method_call(DBusAddress(path, LOGIN1, interface), method, signature, body)
    message.header.flags |= MessageFlag.no_auto_start
    return message


def _get_all(path: str, interface: str) -> Message:
    return _login1_call(path, PROPERTIES, "GetAll", "s", (interface,))


class LogindBus:
    """The bus connection and what logind said on it. ``changed`` turns true whenever
    :meth:`view` would differ from the last one taken."""

    def __init__(
        self,
        address: str,
        *,
        shutdown_dir: str = SHUTDOWN_DIR,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.address = address
        self.changed = True
        self.errors: Counter[str] = Counter()
        self.messages = 0
        self._connection = Connection(address)
        self._clock = clock
        self._wall_clock = wall_clock
        self._shutdown_dir = shutdown_dir
        self._watch: DirectoryWatch | None = None
        self._connected = False
        self._owner: str | None = None
        self._generation = 0
        self._queue: deque[tuple[Any, Message, Handler]] = deque()
        self._queued_keys: set[Any] = set()
        self._in_flight: dict[int, tuple[int, Handler]] = {}
        self._manager: dict[str, Any] = {}
        self._seats: dict[str, dict[str, Any] | None] = {}
        self._sessions: dict[str, dict[str, Any] | None] = {}
        self._inhibitors: tuple[Inhibitor, ...] = ()
        self._retry_delay = RETRY_FIRST
        self._retry_at: float | None = None
        self._view: Presence = DISCONNECTED

    # -- driving it from a selector -----------------------------------------------------------

    def start(self) -> None:
        """Watch the shutdown directory and make the first connection attempt."""
        if self._watch is None:
            self._watch = open_watch(self._shutdown_dir)
        self._connect()

    def fds(self) -> dict[int, int]:
        """fd -> selector events wanted now (the socket, and the directory watch)."""
        wanted: dict[int, int] = {}
        if self._connection.is_open:
            events = selectors.EVENT_READ
            if self._connection.wants_write:
                events |= selectors.EVENT_WRITE
            wanted[self._connection.fileno()] = events
        if self._watch is not None:
            wanted[self._watch.fileno()] = selectors.EVENT_READ
        return wanted

    def handle(self, fd: int, events: int) -> None:
        """Process a ready fd: read and apply messages, write queued calls. Never raises for
        anything the bus does (a broken connection is closed and retried later)."""
        try:
            if self._watch is not None and fd == self._watch.fileno():
                if self._watch.drain() and self._owner is not None:
                    self._request(("GetAll", MANAGER_PATH), _get_all(MANAGER_PATH, MANAGER),
                                  self._on_manager)
                    self._pump()
                return
            if fd != self._connection.fileno():
                return
            if events & selectors.EVENT_WRITE:
                self._connection.flush()
            if events & selectors.EVENT_READ:
                for message in self._connection.read():
                    self.messages += 1
                    self._dispatch(message)
        except ConnectionLost as exc:
            self._lost(str(exc))

    def deadline(self) -> float | None:
        """When tick() should run next (a reconnect attempt), in clock() seconds; None: never."""
        return self._retry_at

    def tick(self, now: float) -> None:
        """Reconnect when the back-off has passed."""
        if self._retry_at is not None and now >= self._retry_at:
            self._retry_at = None
            self._connect()

    def resync(self) -> None:
        """Read everything again (the agent's safety net; SIGHUP)."""
        if self._owner is not None:
            try:
                self._load_all()
            except ConnectionLost as exc:
                self._lost(str(exc))

    @property
    def settled(self) -> bool:
        """Whether no answer is awaited: every call answered, or no connection (for --once)."""
        if not self._connection.is_open:
            return True
        return self._connected and not self._in_flight and not self._queue

    def view(self) -> Presence:
        """Return the current view (immutable; rebuilt only after a change) and clear
        ``changed``."""
        if self.changed:
            self._view = self._build_view()
            self.changed = False
        return self._view

    def close(self) -> None:
        """Close the connection and the directory watch."""
        self._connection.close()
        if self._watch is not None:
            self._watch.close()
            self._watch = None

    # -- connection life cycle ----------------------------------------------------------------

    def _connect(self) -> None:
        try:
            self._connection.open()
        except OSError as exc:
            log.debug("system bus unavailable: %s", exc)
            self._schedule_retry()
            return
        try:
            self._send_raw(message_bus.Hello(), self._on_hello)
            for rule in (
                MatchRule(type="signal", sender=LOGIN1),
                self._owner_rule(),
            ):
                self._send_raw(message_bus.AddMatch(rule), self._on_match_added)
            self._send_raw(message_bus.GetNameOwner(LOGIN1), self._on_owner)
        except ConnectionLost as exc:
            self._lost(str(exc))

    @staticmethod
    def _owner_rule() -> MatchRule:
        rule = MatchRule(type="signal", sender="org.freedesktop.DBus",
                         interface="org.freedesktop.DBus", member="NameOwnerChanged")
        rule.add_arg_condition(0, LOGIN1)
        return rule

    def _schedule_retry(self) -> None:
        self._retry_at = self._clock() + self._retry_delay
        self._retry_delay = min(self._retry_delay * 2, RETRY_MAX)

    def _lost(self, reason: str) -> None:
        was_connected = self._connected
        self._connection.close()
        self.errors["dbus"] += 1
        if was_connected:
            log.warning("lost the system bus: %s; reconnecting", reason)
        else:
            log.warning("system bus connection failed: %s", reason)
        self._connected = False
        self._forget_logind()
        self._queue.clear()
        self._queued_keys.clear()
        self._in_flight.clear()
        self._schedule_retry()

    def _forget_logind(self) -> None:
        self._owner = None
        self._generation += 1
        self._manager = {}
        self._seats = {}
        self._sessions = {}
        self._inhibitors = ()
        self.changed = True

    # -- calls ---------------------------------------------------------------------------------

    def _send_raw(self, message: Message, handler: Handler) -> None:
        serial = self._connection.send(message)
        self._in_flight[serial] = (self._generation, handler)

    def _request(self, key: Any, message: Message, handler: Handler) -> None:
        """Queue a call to logind; a call already queued (not yet sent) under ``key`` makes
        this one redundant: its answer will be at least as new."""
        if key in self._queued_keys:
            return
        if len(self._queue) >= MAX_QUEUED:
            raise ConnectionLost(f"more than {MAX_QUEUED} calls queued")
        self._queued_keys.add(key)
        self._queue.append((key, message, handler))

    def _pump(self) -> None:
        while self._queue and len(self._in_flight) < MAX_IN_FLIGHT:
            key, message, handler = self._queue.popleft()
            self._queued_keys.discard(key)
            self._send_raw(message, handler)

    def _dispatch(self, message: Message) -> None:
        header = message.header
        kind = header.message_type
        if kind in (MessageType.method_return, MessageType.error):
            entry = self._in_flight.pop(header.fields.get(HeaderFields.reply_serial, -1), None)
            if entry is not None and entry[0] == self._generation:
                entry[1](kind is MessageType.method_return, message.body)
            self._pump()
        elif kind is MessageType.signal:
            self._on_signal(
                header.fields.get(HeaderFields.path, ""),
                header.fields.get(HeaderFields.interface, ""),
                header.fields.get(HeaderFields.member, ""),
                message.body,
            )
            self._pump()

    # -- answers -------------------------------------------------------------------------------

    def _on_hello(self, ok: bool, body: tuple[Any, ...]) -> None:
        if not ok:
            raise ConnectionLost(f"the bus refused Hello: {body!r}")
        self._connected = True
        self._retry_delay = RETRY_FIRST
        self.changed = True
        log.info("connected to the system bus", extra={"address": self.address})

    def _on_match_added(self, ok: bool, body: tuple[Any, ...]) -> None:
        if not ok:
            raise ConnectionLost(f"the bus refused a match rule: {body!r}")

    def _on_owner(self, ok: bool, body: tuple[Any, ...]) -> None:
        self._set_owner(str(body[0]) if ok and body else "")

    def _set_owner(self, owner: str) -> None:
        if owner == (self._owner or ""):
            return
        self._forget_logind()
        if owner:
            self._owner = owner
            log.info("logind is on the bus", extra={"owner": owner})
            self._load_all()
        else:
            log.info("logind left the bus")

    def _load_all(self) -> None:
        self._request(("GetAll", MANAGER_PATH), _get_all(MANAGER_PATH, MANAGER), self._on_manager)
        self._request("ListSeats", _login1_call(MANAGER_PATH, MANAGER, "ListSeats"),
                      self._on_seat_list)
        self._request("ListSessions", _login1_call(MANAGER_PATH, MANAGER, "ListSessions"),
                      self._on_session_list)
        self._request_inhibitors()
        self._pump()

    def _request_inhibitors(self) -> None:
        self._request("ListInhibitors", _login1_call(MANAGER_PATH, MANAGER, "ListInhibitors"),
                      self._on_inhibitors)

    def _on_manager(self, ok: bool, body: tuple[Any, ...]) -> None:
        if ok:
            self._manager.update(_unwrap(body[0]))
            self.changed = True

    def _on_seat_list(self, ok: bool, body: tuple[Any, ...]) -> None:
        if ok:
            paths = [str(path) for _, path in body[0]]
            self._seats = {path: self._seats.get(path) for path in paths}
            for path in paths:
                self._read_object(path, SEAT, self._seats)
            self.changed = True

    def _on_session_list(self, ok: bool, body: tuple[Any, ...]) -> None:
        if ok:
            paths = [str(row[4]) for row in body[0]]
            self._sessions = {path: self._sessions.get(path) for path in paths}
            for path in paths:
                self._read_object(path, SESSION, self._sessions)
            self.changed = True

    def _read_object(self, path: str, interface: str,
                     objects: dict[str, dict[str, Any] | None]) -> None:
        def answered(ok: bool, body: tuple[Any, ...]) -> None:
            table = self._seats if interface == SEAT else self._sessions
            if not ok:  # gone meanwhile (UnknownObject): its Removed signal came or comes
                table.pop(path, None)
            elif path in table:
                table[path] = _unwrap(body[0])
            self.changed = True

        objects.setdefault(path, None)
        self._request(("GetAll", path), _get_all(path, interface), answered)

    def _on_inhibitors(self, ok: bool, body: tuple[Any, ...]) -> None:
        if not ok:
            return
        now = self._wall_clock()
        # Keep each lock's first sighting: match the new list against the old one by content.
        known: dict[tuple[Any, ...], list[float]] = {}
        for old in self._inhibitors:
            key = (old.what, old.who, old.why, old.mode, old.uid, old.pid)
            known.setdefault(key, []).append(old.since)
        fresh = []
        for what, who, why, mode, uid, pid in body[0]:
            key = (what, who, why, mode, uid, pid)
            seen = known.get(key)
            since = seen.pop(0) if seen else now
            fresh.append(Inhibitor(what, who, why, mode, int(uid), int(pid), since))
        self._inhibitors = tuple(fresh)
        self.changed = True

    # -- signals -------------------------------------------------------------------------------

    def _on_signal(self, path: str, interface: str, member: str, body: tuple[Any, ...]) -> None:
        if member == "NameOwnerChanged" and interface == "org.freedesktop.DBus":
            if body and body[0] == LOGIN1:
                self._set_owner(str(body[2]))
            return
        if self._owner is None:
            return
        if member == "PropertiesChanged" and interface == PROPERTIES:
            self._on_properties_changed(path, body)
        elif path != MANAGER_PATH or interface != MANAGER:
            return
        elif member in ("SessionNew", "SessionRemoved"):
            if member == "SessionNew":
                self._read_object(str(body[1]), SESSION, self._sessions)
            else:
                self._sessions.pop(str(body[1]), None)
                self.changed = True
            # The Manager's and the seats' idle hints are computed over their sessions: one
            # more or one fewer changes them, and logind announces no change of them then.
            self._request(("GetAll", MANAGER_PATH), _get_all(MANAGER_PATH, MANAGER),
                          self._on_manager)
            for seat in list(self._seats):
                self._read_object(seat, SEAT, self._seats)
        elif member == "SeatNew":
            self._read_object(str(body[1]), SEAT, self._seats)
        elif member == "SeatRemoved":
            self._seats.pop(str(body[1]), None)
            self.changed = True
        elif member in ("PrepareForShutdown", "PrepareForSleep"):
            self._manager["PreparingFor" + member.removeprefix("PrepareFor")] = bool(body[0])
            self.changed = True
            # Lid, dock and power may differ after a resume; a shutdown may have been cleared.
            self._request(("GetAll", MANAGER_PATH), _get_all(MANAGER_PATH, MANAGER),
                          self._on_manager)

    def _on_properties_changed(self, path: str, body: tuple[Any, ...]) -> None:
        interface, changed, invalidated = body
        values = _unwrap(changed)
        if path == MANAGER_PATH and interface == MANAGER:
            self._manager.update(values)
            if INHIBITED.intersection(values) or INHIBITED.intersection(invalidated):
                self._request_inhibitors()
            if invalidated:
                self._request(("GetAll", path), _get_all(path, MANAGER), self._on_manager)
        elif path.startswith(SEAT_PREFIX) and interface == SEAT:
            self._apply(self._seats, path, SEAT, values, invalidated)
        elif path.startswith(SESSION_PREFIX) and interface == SESSION:
            self._apply(self._sessions, path, SESSION, values, invalidated)
        else:
            return
        self.changed = True

    def _apply(self, objects: dict[str, dict[str, Any] | None], path: str, interface: str,
               values: dict[str, Any], invalidated: list[str]) -> None:
        known = objects.get(path)
        if known is None:  # not read yet: the pending GetAll answers with newer values
            if path not in objects:
                self._read_object(path, interface, objects)
            return
        known.update(values)
        if invalidated:
            self._read_object(path, interface, objects)

    # -- the view ------------------------------------------------------------------------------

    def _build_view(self) -> Presence:
        if not self._connected:
            return DISCONNECTED
        if self._owner is None:
            return Presence(connected=True)
        return presence_from_properties(self._owner, self._manager, self._seats.values(),
                                        self._sessions, self._inhibitors)
