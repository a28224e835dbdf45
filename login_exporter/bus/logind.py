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
GetNameOwner); the calls to logind carry NO_AUTO_START so a stopped logind is never started by
us. Nothing blocks: the agent's selector drives everything through :meth:`fds`,
:meth:`handle`, :meth:`deadline` and :meth:`tick`.

Any local user can address a signal to our unique name (a unicast signal bypasses match rules),
so nothing is believed for its contents alone. From each message's header, before its body is
parsed: logind's signals are taken only from the unique name that owns org.freedesktop.login1
(GetNameOwner, then NameOwnerChanged), NameOwnerChanged only from the bus itself, a reply only
from the connection that was called and only while the call is pending; each with the
signature its member has. Properties of another type than logind's are ignored. Everything
refused is counted in :attr:`LogindBus.dropped` by reason (:data:`DROP_REASONS`), and nothing a
message holds can raise out of :meth:`LogindBus.handle`: an error there resets the bus side.
"""

from __future__ import annotations

import errno
import logging
import os
import selectors
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jeepney.bus_messages import MatchRule, message_bus
from jeepney.low_level import Header, HeaderFields, Message, MessageFlag, MessageType
from jeepney.wrappers import DBusAddress, new_method_call

from login_exporter.bus.connection import MAX_MESSAGE, Connection, ConnectionLost
from login_exporter.bus.dirwatch import SHUTDOWN_DIR, DirectoryWatch, open_watch
from login_exporter.bus.socketwatch import SocketWatch
from login_exporter.bus.view import DISCONNECTED, Inhibitor, Presence, presence_from_properties

log = logging.getLogger("login_exporter.bus")

LOGIN1 = "org.freedesktop.login1"
BUS_NAME = "org.freedesktop.DBus"  # the bus itself: the sender of NameOwnerChanged
MANAGER_PATH = "/org/freedesktop/login1"
MANAGER = "org.freedesktop.login1.Manager"
SEAT = "org.freedesktop.login1.Seat"
SESSION = "org.freedesktop.login1.Session"
PROPERTIES = "org.freedesktop.DBus.Properties"
SEAT_PREFIX = "/org/freedesktop/login1/seat/"
SESSION_PREFIX = "/org/freedesktop/login1/session/"
INHIBITED = frozenset({"BlockInhibited", "DelayInhibited", "BlockWeakInhibited"})
# connect() failures that only a change of the socket can end: wait for one (no timer).
WAIT_FOR_SOCKET = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ECONNREFUSED, errno.EACCES,
                             errno.EPERM})
RETRY_FIRST = 0.1
RETRY_MAX = 5.0
# The system bus refuses more than max_replies_per_connection (128 on Debian) pending calls.
MAX_IN_FLIGHT = 64
# More queued calls than logind can have objects (SessionsMax 8192 + seats + inhibitors)
# means something is wrong: start over rather than grow.
MAX_QUEUED = 20000

# Why a message was dropped: not from who may send it; nothing we asked for (a method call to
# us, a reply to no pending call); over MAX_MESSAGE (skipped unread); a body of another
# signature than its member's; a property of another type than logind's (counted per property).
DROP_REASONS = ("sender", "unexpected", "size", "signature", "property")
# Dropped-message counts are published at most this often (seconds): a flood of forgeries must
# not make the exporter re-render its exposition for every message.
DROPS_PUBLISH_DELAY = 1.0

# The signals followed, by (interface, member), with the signature each has.
SIGNALS = {
    (PROPERTIES, "PropertiesChanged"): "sa{sv}as",
    (MANAGER, "SessionNew"): "so",
    (MANAGER, "SessionRemoved"): "so",
    (MANAGER, "SeatNew"): "so",
    (MANAGER, "SeatRemoved"): "so",
    (MANAGER, "PrepareForShutdown"): "b",
    (MANAGER, "PrepareForSleep"): "b",
}
NAME_OWNER_CHANGED = (BUS_NAME, "NameOwnerChanged")
# The signature of each method's reply.
REPLIES = {
    "Hello": "s",
    "AddMatch": "",
    "GetNameOwner": "s",
    "GetAll": "a{sv}",
    "ListSeats": "a(so)",
    "ListSessions": "a(susso)",
    "ListInhibitors": "a(ssssuu)",
}
# The properties read, by interface, with logind's type of each; others are not kept.
PROPERTY_TYPES = {
    MANAGER: {
        "IdleHint": "b", "IdleSinceHint": "t", "PreparingForShutdown": "b",
        "PreparingForSleep": "b", "ScheduledShutdown": "(st)", "LidClosed": "b",
        "Docked": "b", "OnExternalPower": "b", "BlockInhibited": "s", "DelayInhibited": "s",
        "BlockWeakInhibited": "s",
    },
    SEAT: {"Id": "s", "IdleHint": "b", "IdleSinceHint": "t"},
    SESSION: {
        "Seat": "(so)", "Remote": "b", "Type": "s", "Class": "s", "IdleHint": "b",
        "LockedHint": "b",
    },
}  # fmt: skip

Handler = Callable[[bool, tuple[Any, ...]], None]


@dataclass(frozen=True, slots=True)
class _Call:
    """A call awaiting its reply: from whom, with which signature, to whom it goes."""

    generation: int
    handler: Handler
    callee: str
    signature: str


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
        self.errors: Counter[str] = Counter()
        self.messages = 0
        self.dropped: Counter[str] = Counter({reason: 0 for reason in DROP_REASONS})
        # Grows whenever fds() may name a new file under an old fd number: re-register them all.
        self.fd_epoch = 0
        self._view_changed = True
        self._counts_changed = False
        self._drops_due: float | None = None
        self._connection = Connection(address)
        self._clock = clock
        self._wall_clock = wall_clock
        self._shutdown_dir = shutdown_dir
        self._watch: DirectoryWatch | None = None
        self._socket_watch: SocketWatch | None = None
        self._failure: str | None = None  # why the last connect failed, logged once per kind
        self._connected = False
        self._owner: str | None = None
        self._generation = 0
        self._queue: deque[tuple[Any, Message, Handler]] = deque()
        self._queued_keys: set[Any] = set()
        self._in_flight: dict[int, _Call] = {}
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
        for watch in (self._watch, self._socket_watch):
            if watch is not None:
                wanted[watch.fileno()] = selectors.EVENT_READ
        return wanted

    @property
    def changed(self) -> bool:
        """Whether :meth:`view` or the counters would differ from what was last taken."""
        return self._view_changed or self._counts_changed

    def handle(self, fd: int, events: int) -> None:
        """Process a ready fd: read and apply messages, write queued calls. Never raises for
        anything the bus or a peer on it does (the bus side is reset and retried later)."""
        try:
            if self._watch is not None and fd == self._watch.fileno():
                if self._watch.drain() and self._owner is not None:
                    self._request(("GetAll", MANAGER_PATH), _get_all(MANAGER_PATH, MANAGER),
                                  self._on_manager)
                    self._pump()
                return
            if self._socket_watch is not None and fd == self._socket_watch.fileno():
                if self._socket_watch.drain():
                    self._connect()
                return
            if fd != self._connection.fileno():
                return
            if events & selectors.EVENT_WRITE:
                self._connection.flush()
            if events & selectors.EVENT_READ:
                for message in self._connection.read(self._admit):
                    self._dispatch(message)
        except ConnectionLost as exc:
            self._lost(str(exc))
        except Exception as exc:  # a message nothing here foresaw: never the process's end
            log.exception("unexpected error following logind's bus")
            self._lost(f"unexpected error: {exc!r}")

    def deadline(self) -> float | None:
        """When tick() should run next (a reconnect attempt, or dropped messages to publish),
        in clock() seconds; None: never."""
        due = [at for at in (self._retry_at, self._drops_due) if at is not None]
        return min(due) if due else None

    def tick(self, now: float) -> None:
        """Reconnect when the back-off has passed; mark dropped messages for publication."""
        if self._drops_due is not None and now >= self._drops_due:
            self._drops_due = None
            self._counts_changed = True
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
        if self._view_changed:
            self._view = self._build_view()
            self._view_changed = False
        self._counts_changed = False
        return self._view

    def close(self) -> None:
        """Close the connection and the directory watches."""
        self._stop_waiting()
        self._connection.close()
        if self._watch is not None:
            self._watch.close()
            self._watch = None

    # -- connection life cycle ----------------------------------------------------------------

    def _connect(self) -> None:
        self.fd_epoch += 1  # fds closed and opened here may share numbers with the old ones
        self._stop_waiting()
        try:
            self._connection.open()
        except OSError as exc:
            self._connect_failed(exc)
            return
        try:
            self._send_raw(message_bus.Hello(), self._on_hello, BUS_NAME)
            for rule in (
                MatchRule(type="signal", sender=LOGIN1),
                self._owner_rule(),
            ):
                self._send_raw(message_bus.AddMatch(rule), self._on_match_added, BUS_NAME)
            self._send_raw(message_bus.GetNameOwner(LOGIN1), self._on_owner, BUS_NAME)
        except ConnectionLost as exc:
            self._lost(str(exc))

    @staticmethod
    def _owner_rule() -> MatchRule:
        rule = MatchRule(type="signal", sender=BUS_NAME, interface=BUS_NAME,
                         member="NameOwnerChanged")
        rule.add_arg_condition(0, LOGIN1)
        return rule

    def _connect_failed(self, exc: OSError) -> None:
        """Count a connect() that failed, say so once per kind of failure, and wait: for the
        socket to change where only that can help (missing, refused, denied), else a back-off."""
        self.errors["dbus"] += 1
        self._counts_changed = True
        failure = os.strerror(exc.errno) if exc.errno else str(exc)
        if failure != self._failure:
            self._failure = failure
            log.warning("cannot connect to the system bus: %s; waiting for %s", failure,
                        "its socket" if exc.errno in WAIT_FOR_SOCKET else "a retry",
                        extra={"address": self.address})
        if exc.errno in WAIT_FOR_SOCKET and not self._connection.path.startswith("\0"):
            try:
                self._socket_watch = SocketWatch(self._connection.path)
            except OSError:
                pass
            else:
                # Created between the attempt and the watch: nothing would announce it now.
                if exc.errno == errno.ENOENT and os.path.exists(self._connection.path):
                    self._retry_at = self._clock()
                return
        self._schedule_retry()

    def _stop_waiting(self) -> None:
        if self._socket_watch is not None:
            self._socket_watch.close()
            self._socket_watch = None

    def _schedule_retry(self) -> None:
        self._retry_at = self._clock() + self._retry_delay
        self._retry_delay = min(self._retry_delay * 2, RETRY_MAX)

    def _lost(self, reason: str) -> None:
        was_connected = self._connected
        self.fd_epoch += 1
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
        self._queue.clear()  # calls to the logind that was: their answers would not count
        self._queued_keys.clear()
        self._view_changed = True

    # -- calls ---------------------------------------------------------------------------------

    def _send_raw(self, message: Message, handler: Handler, callee: str) -> None:
        """Send a call whose reply ``handler`` takes; only ``callee`` (a unique name, or the
        bus) may answer it. Raises ConnectionLost."""
        member = message.header.fields[HeaderFields.member]
        serial = self._connection.send(message)
        self._in_flight[serial] = _Call(self._generation, handler, callee, REPLIES[member])

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
        while self._owner is not None and self._queue and len(self._in_flight) < MAX_IN_FLIGHT:
            key, message, handler = self._queue.popleft()
            self._queued_keys.discard(key)
            self._send_raw(message, handler, self._owner)

    def _drop(self, reason: str) -> bool:
        """Count a refused message (or property) under ``reason``; return False (not wanted)."""
        self.dropped[reason] += 1
        if self._drops_due is None:
            self._drops_due = self._clock() + DROPS_PUBLISH_DELAY
        return False

    def _admit(self, header: Header | None, size: int) -> bool:
        """Return whether a message is wanted, from its header alone (None: a header too large
        to read) and its size in bytes; count what is refused. Raises ConnectionLost when
        logind answers a call with more than MAX_MESSAGE bytes."""
        self.messages += 1
        if header is None:
            return self._drop("size")
        fields = header.fields
        sender = fields.get(HeaderFields.sender)
        signature = fields.get(HeaderFields.signature, "")
        kind = header.message_type
        if kind in (MessageType.method_return, MessageType.error):
            serial = fields.get(HeaderFields.reply_serial, 0)
            call = self._in_flight.get(serial)
            if call is None:
                return self._drop("unexpected")
            # The bus answers errors for a callee that is gone or never answers.
            if sender != call.callee and not (kind is MessageType.error and sender == BUS_NAME):
                return self._drop("sender")
            if size > MAX_MESSAGE:
                raise ConnectionLost(f"an answer of {size} bytes exceeds {MAX_MESSAGE}")
            if kind is MessageType.method_return and signature != call.signature:
                self._answer(serial, ok=False, body=())
                return self._drop("signature")
            return True
        if kind is not MessageType.signal:
            return self._drop("unexpected")
        member = (fields.get(HeaderFields.interface), fields.get(HeaderFields.member))
        if member == NAME_OWNER_CHANGED:
            expected: str | None = "sss"
            if sender != BUS_NAME:
                return self._drop("sender")
        elif sender == BUS_NAME:  # the bus's own notices to us (NameAcquired): not followed
            return False
        else:
            if sender is None or sender != self._owner:
                return self._drop("sender")
            expected = SIGNALS.get(member)
            if expected is None:  # logind's, but not one we follow
                return False
        if size > MAX_MESSAGE:
            return self._drop("size")
        if signature != expected:
            return self._drop("signature")
        return True

    def _answer(self, serial: int, ok: bool, body: tuple[Any, ...]) -> None:
        """Hand a reply to the call awaiting it (if it is still of this logind's time)."""
        call = self._in_flight.pop(serial, None)
        if call is not None and call.generation == self._generation:
            call.handler(ok, body)

    def _dispatch(self, message: Message) -> None:
        """Act on an admitted message (its sender and signature are checked)."""
        header = message.header
        kind = header.message_type
        if kind in (MessageType.method_return, MessageType.error):
            self._answer(header.fields[HeaderFields.reply_serial],
                         kind is MessageType.method_return, message.body)
        else:
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
        self._failure = None
        self._retry_delay = RETRY_FIRST
        self._view_changed = True
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
            self._manager.update(self._properties(MANAGER, body[0]))
            self._view_changed = True

    def _on_seat_list(self, ok: bool, body: tuple[Any, ...]) -> None:
        if ok:
            paths = [str(path) for _, path in body[0]]
            self._seats = {path: self._seats.get(path) for path in paths}
            for path in paths:
                self._read_object(path, SEAT, self._seats)
            self._view_changed = True

    def _on_session_list(self, ok: bool, body: tuple[Any, ...]) -> None:
        if ok:
            paths = [str(row[4]) for row in body[0]]
            self._sessions = {path: self._sessions.get(path) for path in paths}
            for path in paths:
                self._read_object(path, SESSION, self._sessions)
            self._view_changed = True

    def _read_object(self, path: str, interface: str,
                     objects: dict[str, dict[str, Any] | None]) -> None:
        def answered(ok: bool, body: tuple[Any, ...]) -> None:
            table = self._seats if interface == SEAT else self._sessions
            if not ok:  # gone meanwhile (UnknownObject): its Removed signal came or comes
                table.pop(path, None)
            elif path in table:
                table[path] = self._properties(interface, body[0])
            self._view_changed = True

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
        self._view_changed = True

    def _properties(self, interface: str, properties: dict[str, tuple[str, Any]]) -> dict[str, Any]:
        """Return the properties of ``interface`` that the view uses, from a{sv} as jeepney
        parses it ({name: (signature, value)}), as {name: value}; a value of another type than
        logind's is left out and counted."""
        types = PROPERTY_TYPES[interface]
        values: dict[str, Any] = {}
        for name, (signature, value) in properties.items():
            expected = types.get(name)
            if expected is None:
                continue
            if signature != expected:
                self._drop("property")
                continue
            values[name] = value
        return values

    # -- signals -------------------------------------------------------------------------------

    def _on_signal(self, path: str, interface: str, member: str, body: tuple[Any, ...]) -> None:
        if (interface, member) == NAME_OWNER_CHANGED:
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
                self._view_changed = True
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
            self._view_changed = True
        elif member in ("PrepareForShutdown", "PrepareForSleep"):
            self._manager["PreparingFor" + member.removeprefix("PrepareFor")] = bool(body[0])
            self._view_changed = True
            # Lid, dock and power may differ after a resume; a shutdown may have been cleared.
            self._request(("GetAll", MANAGER_PATH), _get_all(MANAGER_PATH, MANAGER),
                          self._on_manager)

    def _on_properties_changed(self, path: str, body: tuple[Any, ...]) -> None:
        interface, changed, invalidated = body
        if interface not in PROPERTY_TYPES:
            return
        values = self._properties(interface, changed)
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
        self._view_changed = True

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
