"""A scripted peer for :class:`~login_exporter.bus.LogindBus` over a real unix socket: it plays
dbus-daemon and a small logind (seat0, one x11 session) in the test's own thread, and can
deliver messages from any sender, as the daemon would relay them. Pure logic tests only: the
real bus and logind are in tests/e2e.
"""

from __future__ import annotations

import selectors
import socket
from pathlib import Path
from typing import Any

from jeepney.low_level import HeaderFields, Message, MessageType, Parser
from jeepney.wrappers import new_header

from login_exporter.bus import LogindBus

DAEMON = "org.freedesktop.DBus"
LOGIND = ":1.5"
ATTACKER = ":1.66"
US = ":1.42"
SEAT0 = "/org/freedesktop/login1/seat/seat0"
SESSION = "/org/freedesktop/login1/session/_31"
_OK = b"DATA\r\nOK 0123456789abcdef0123456789abcdef\r\n"


def signal(sender: str, path: str, interface: str, member: str, signature: str,
           body: tuple[Any, ...], destination: str | None = US) -> Message:
    """A signal as the daemon relays it (sender set by the daemon; unicast to us by default)."""
    header = new_header(MessageType.signal)
    header.fields[HeaderFields.path] = path
    header.fields[HeaderFields.interface] = interface
    header.fields[HeaderFields.member] = member
    header.fields[HeaderFields.sender] = sender
    if destination is not None:
        header.fields[HeaderFields.destination] = destination
    if signature:
        header.fields[HeaderFields.signature] = signature
    return Message(header, body)


def reply(sender: str, reply_serial: int, signature: str, body: tuple[Any, ...],
          error: str | None = None) -> Message:
    """A method return (or an error named ``error``) to our call ``reply_serial``."""
    header = new_header(MessageType.error if error else MessageType.method_return)
    header.fields[HeaderFields.reply_serial] = reply_serial
    header.fields[HeaderFields.sender] = sender
    header.fields[HeaderFields.destination] = US
    if error:
        header.fields[HeaderFields.error_name] = error
    if signature:
        header.fields[HeaderFields.signature] = signature
    return Message(header, body)


def properties_changed(sender: str, path: str, interface: str, values: dict[str, Any],
                       invalidated: tuple[str, ...] = ()) -> Message:
    """PropertiesChanged with ``values`` as {name: (signature, value)}."""
    return signal(sender, path, "org.freedesktop.DBus.Properties", "PropertiesChanged",
                  "sa{sv}as", (interface, values, list(invalidated)))


class ScriptedBus:
    """Accepts the LogindBus's connection on ``path`` and answers its calls as the daemon and
    logind would. ``manager``, ``seat`` and ``session`` hold the properties served; ``sessions``
    maps each session's path to its properties (``session`` is SESSION's), ``seats`` each seat's
    (``seat`` is SEAT0's); ``inhibitors`` is what ListInhibitors answers."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.manager: dict[str, tuple[str, Any]] = {
            "IdleHint": ("b", False), "IdleSinceHint": ("t", 0),
            "PreparingForShutdown": ("b", False), "PreparingForSleep": ("b", False),
            "ScheduledShutdown": ("(st)", ("", 0)), "LidClosed": ("b", False),
            "Docked": ("b", False), "OnExternalPower": ("b", True),
            "BlockInhibited": ("s", ""), "DelayInhibited": ("s", ""),
            "BlockWeakInhibited": ("s", ""),
        }  # fmt: skip
        self.seat: dict[str, tuple[str, Any]] = {
            "Id": ("s", "seat0"), "IdleHint": ("b", False), "IdleSinceHint": ("t", 0)}
        self.session: dict[str, tuple[str, Any]] = {
            "Seat": ("(so)", ("seat0", SEAT0)), "Remote": ("b", False), "Type": ("s", "x11"),
            "Class": ("s", "user"), "IdleHint": ("b", False), "LockedHint": ("b", False)}
        self.sessions = {SESSION: self.session}
        self.seats = {SEAT0: self.seat}
        self.inhibitors: list[tuple[str, str, str, str, int, int]] = []
        self.most_in_flight = 0  # the most calls the bus had waiting for an answer at once
        self.calls: list[Message] = []
        self.held: list[Message] = []  # calls left unanswered while ``hold`` is set
        self.hold = False
        self._out = bytearray()
        self._out_at = 0
        self._serial = 1000
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        self._server.listen(1)
        self._peer: socket.socket | None = None
        self._parser = Parser()
        self._handshake = b""

    @property
    def address(self) -> str:
        return f"unix:path={self.path}"

    def connect(self, bus: LogindBus) -> None:
        """Start ``bus``, accept it and answer until it has read everything."""
        bus.start()
        self._peer, _ = self._server.accept()
        self._peer.setblocking(False)
        self.exchange(bus)

    def close(self) -> None:
        if self._peer is not None:
            self._peer.close()
        self._server.close()

    def send(self, *messages: Message) -> None:
        """Queue ``messages`` for the bus (delivered by exchange())."""
        for message in messages:
            self._serial += 1
            self._out += message.serialise(serial=self._serial)

    def send_raw(self, data: bytes) -> None:
        self._out += data

    def release(self) -> None:
        """Answer the held calls (delivered by exchange())."""
        held, self.held = self.held, []
        for call in held:
            self.send(self._answer(call))

    def exchange(self, bus: LogindBus, rounds: int = 10_000) -> None:
        """Let ``bus`` read and write, and answer its calls, until neither side has more."""
        assert self._peer is not None
        with selectors.DefaultSelector() as selector:
            for _ in range(rounds):
                progressed = self._answer_calls()
                wanted = bus.fds()
                for fd, events in wanted.items():
                    selector.register(fd, events)
                ready = selector.select(0)
                for key, events in ready:
                    bus.handle(key.fd, events)
                for key in list(selector.get_map().values()):
                    selector.unregister(key.fd)
                if not ready and not progressed:
                    return
        raise AssertionError("the exchange did not settle")

    def _answer_calls(self) -> bool:
        assert self._peer is not None
        progressed = False
        if self._out_at < len(self._out):
            try:  # a view, not a copy: tests measure the bus's memory, not ours
                sent = self._peer.send(memoryview(self._out)[self._out_at:])
            except BlockingIOError:
                sent = 0
            self._out_at += sent
            if self._out_at == len(self._out):
                self._out, self._out_at = bytearray(), 0
            progressed = sent > 0
        try:
            data = self._peer.recv(1 << 20)
        except BlockingIOError:
            return progressed
        if not data:
            return progressed
        if b"BEGIN\r\n" not in self._handshake:
            self._handshake += data
            if b"BEGIN\r\n" not in self._handshake:
                return True
            data = self._handshake.split(b"BEGIN\r\n", 1)[1]
            self.send_raw(_OK)
        calls = self._parser.feed(data)
        self.most_in_flight = max(self.most_in_flight, len(calls) + len(self.held))
        for call in calls:
            self.calls.append(call)
            if self.hold:
                self.held.append(call)
            else:
                self.send(self._answer(call))
        return True

    def _answer(self, call: Message) -> Message:
        fields = call.header.fields
        serial = call.header.serial
        member = fields[HeaderFields.member]
        path = fields.get(HeaderFields.path)
        if fields.get(HeaderFields.destination) == DAEMON:
            answers: dict[str, tuple[str, tuple[Any, ...]]] = {
                "Hello": ("s", (US,)), "AddMatch": ("", ()), "GetNameOwner": ("s", (LOGIND,))}
            signature, body = answers[member]
            return reply(DAEMON, serial, signature, body)
        if member == "GetAll":
            table = {"/org/freedesktop/login1": self.manager, **self.seats,
                     **self.sessions}.get(str(path))
            if table is None:
                return reply(LOGIND, serial, "s", ("no such object",),
                             error="org.freedesktop.DBus.Error.UnknownObject")
            return reply(LOGIND, serial, "a{sv}", (table,))
        lists: dict[str, tuple[str, tuple[Any, ...]]] = {
            "ListSeats": ("a(so)", ([(props["Id"][1], p) for p, props in self.seats.items()],)),
            "ListSessions": ("a(susso)", ([(p.rsplit("/", 1)[1], 1000, "alice", "seat0", p)
                                           for p in self.sessions],)),
            "ListInhibitors": ("a(ssssuu)", (self.inhibitors,)),
        }
        signature, body = lists[member]
        return reply(LOGIND, serial, signature, body)
