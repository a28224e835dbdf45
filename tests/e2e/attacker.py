"""An unprivileged local user attacking the exporter's connection to the system bus (issue 16).

Runs INSIDE the e2e container, as the attacking user, with the container's own python3 and
python3-jeepney (the wheel in the repository root when jeepney is missing)::

    runuser -u USER -- python3 /project/tests/e2e/attacker.py --pid EXPORTER_PID ATTACK ...

It finds the exporter's unique name (ListNames, then GetConnectionUnixProcessID of each unique
name against the exporter's pid), sends the ATTACK's messages addressed to it (unicast signals
reach a connection whatever its match rules say), then makes one round trip to the bus so that
everything sent before has been routed, and prints one JSON line::

    {"target": ":1.42", "sent": {label: n}, "broadcast": {label: n},
     "refused": {label: [error names the bus answered]}, "answers": {label: text},
     "delivered": n, "seconds": s}

``delivered`` counts the unicast messages the bus did not refuse. Messages the bus refuses come
back as errors (AccessDenied, ...); they are recorded, not fatal. Malformed messages are built
from jeepney's low-level Header/Message with the signature header field set by hand.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from jeepney.io.blocking import open_dbus_connection
from jeepney.low_level import Endianness, Header, HeaderFields, Message, MessageType

LOGIN1 = "org.freedesktop.login1"
MANAGER_PATH = "/org/freedesktop/login1"
MANAGER = "org.freedesktop.login1.Manager"
SESSION = "org.freedesktop.login1.Session"
SEAT = "org.freedesktop.login1.Seat"
PROPERTIES = "org.freedesktop.DBus.Properties"
BUS = "org.freedesktop.DBus"
BUS_PATH = "/org/freedesktop/DBus"
MIB = 1024 * 1024


def message(
    kind: MessageType,
    *,
    path: str | None = None,
    interface: str | None = None,
    member: str | None = None,
    destination: str | None = None,
    signature: str | None = None,
    body: tuple[Any, ...] = (),
    reply_serial: int | None = None,
    error_name: str | None = None,
) -> Any:
    """A message with exactly the header fields given (no checks of body against member)."""
    fields: dict[Any, Any] = {}
    for field, value in ((HeaderFields.path, path), (HeaderFields.interface, interface),
                         (HeaderFields.member, member), (HeaderFields.destination, destination),
                         (HeaderFields.signature, signature),
                         (HeaderFields.reply_serial, reply_serial),
                         (HeaderFields.error_name, error_name)):
        if value is not None:
            fields[field] = value
    return Message(Header(Endianness.little, kind, 0, 1, 0, 0, fields), body)


def signal(path: str, interface: str, member: str, signature: str | None = None,
           body: tuple[Any, ...] = ()) -> Any:
    return message(MessageType.signal, path=path, interface=interface, member=member,
                   signature=signature, body=body)


def properties_changed(path: str, interface: str, values: dict[str, tuple[str, Any]]) -> Any:
    return signal(path, PROPERTIES, "PropertiesChanged", "sa{sv}as", (interface, values, []))


class Attacker:
    """One connection to the system bus, aimed at the connection of process ``pid``."""

    def __init__(self, pid: int) -> None:
        self.started = time.monotonic()
        self.conn = open_dbus_connection(bus="SYSTEM")
        self.labels: dict[int, tuple[str, bool]] = {}  # serial -> (label, unicast)
        self.sent: Counter[str] = Counter()
        self.broadcast: Counter[str] = Counter()
        self.refused: dict[str, list[str]] = {}
        self.refused_unicast = 0
        self.answers: dict[str, str] = {}
        self.target = self._find(pid)

    # -- calls to the bus and to logind (allowed to any user) -----------------------------

    def call(self, msg: Any, timeout: float = 5.0) -> Any:
        """Send a method call and return its reply (a method_return or an error message);
        errors answering earlier messages that arrive meanwhile are recorded."""
        serial = next(self.conn.outgoing_serial)
        self.conn.send(msg, serial=serial)
        deadline = time.monotonic() + timeout
        while True:
            reply = self.conn.receive(timeout=max(deadline - time.monotonic(), 0.001))
            if reply.header.fields.get(HeaderFields.reply_serial) == serial:
                return reply
            self.note(reply)

    def note(self, reply: Any) -> None:
        """Record an error the bus sent back for one of our messages."""
        if reply.header.message_type is not MessageType.error:
            return
        entry = self.labels.get(reply.header.fields.get(HeaderFields.reply_serial, -1))
        if entry is not None:
            name = str(reply.header.fields.get(HeaderFields.error_name, "?"))
            self.refused.setdefault(entry[0], []).append(name)
            self.refused_unicast += entry[1]

    def bus(self, member: str, signature: str | None = None, body: tuple[Any, ...] = ()) -> Any:
        reply = self.call(message(MessageType.method_call, path=BUS_PATH, interface=BUS,
                                  member=member, destination=BUS, signature=signature,
                                  body=body))
        if reply.header.message_type is MessageType.error:
            raise RuntimeError(f"{member}: {reply.header.fields.get(HeaderFields.error_name)}")
        return reply.body

    def get(self, path: str, interface: str, name: str) -> Any:
        reply = self.call(message(MessageType.method_call, path=path, interface=PROPERTIES,
                                  member="Get", destination=LOGIN1, signature="ss",
                                  body=(interface, name)))
        if reply.header.message_type is MessageType.error:
            raise RuntimeError(f"Get {path} {name}: {reply.body}")
        return reply.body[0][1]

    def _find(self, pid: int) -> str:
        found = []
        for name in self.bus("ListNames")[0]:
            if not name.startswith(":") or name == self.conn.unique_name:
                continue
            try:
                if self.bus("GetConnectionUnixProcessID", "s", (name,))[0] == pid:
                    found.append(name)
            except RuntimeError:
                continue  # gone meanwhile
        if len(found) != 1:
            raise SystemExit(f"want one bus connection of pid {pid}, found {found}")
        return str(found[0])

    # -- sending ------------------------------------------------------------------------------

    def send(self, label: str, msg: Any, *, unicast: bool = True) -> None:
        """Send ``msg`` to the exporter (``unicast``) or to nobody in particular."""
        if unicast:
            msg.header.fields[HeaderFields.destination] = self.target
        else:
            msg.header.fields.pop(HeaderFields.destination, None)
        serial = next(self.conn.outgoing_serial)
        self.labels[serial] = (label, unicast)
        self.conn.send(msg, serial=serial)
        (self.sent if unicast else self.broadcast)[label] += 1

    def send_raw(self, label: str, data: bytes, serial: int) -> None:
        """Send bytes already serialised (with ``serial``) and addressed to the exporter."""
        self.labels[serial] = (label, True)
        self.conn.sock.sendall(data)
        self.sent[label] += 1

    def report(self) -> dict[str, Any]:
        """Round-trip to the bus (everything sent before is routed then) and say what happened."""
        self.bus("GetId")
        return {
            "target": self.target,
            "sent": dict(self.sent),
            "broadcast": dict(self.broadcast),
            "refused": self.refused,
            "answers": self.answers,
            "delivered": sum(self.sent.values()) - self.refused_unicast,
            "seconds": round(time.monotonic() - self.started, 3),
        }


# -- the attacks -----------------------------------------------------------------------------

def forge_values(a: Attacker, args: argparse.Namespace) -> None:
    """PropertiesChanged with the opposite of what logind says: the Manager's IdleHint and
    PreparingForShutdown, a ScheduledShutdown, a session's IdleHint and LockedHint, a seat's
    IdleHint. With --broadcast the same set goes out without a destination first."""
    now = int(time.time() * 1e6)

    def flipped(path: str, interface: str, name: str) -> tuple[str, bool]:
        return ("b", not a.get(path, interface, name))

    forged: list[tuple[str, str, str, dict[str, tuple[str, Any]]]] = [
        ("manager IdleHint", MANAGER_PATH, MANAGER,
         {"IdleHint": flipped(MANAGER_PATH, MANAGER, "IdleHint"), "IdleSinceHint": ("t", now)}),
        ("manager PreparingForShutdown", MANAGER_PATH, MANAGER,
         {"PreparingForShutdown": flipped(MANAGER_PATH, MANAGER, "PreparingForShutdown")}),
        ("manager ScheduledShutdown", MANAGER_PATH, MANAGER,
         {"ScheduledShutdown": ("(st)", ("poweroff", now + 3600 * 10**6))}),
        ("session IdleHint", args.session, SESSION,
         {"IdleHint": flipped(args.session, SESSION, "IdleHint"), "IdleSinceHint": ("t", now)}),
        ("session LockedHint", args.session, SESSION,
         {"LockedHint": flipped(args.session, SESSION, "LockedHint")}),
        ("seat IdleHint", args.seat, SEAT,
         {"IdleHint": flipped(args.seat, SEAT, "IdleHint"), "IdleSinceHint": ("t", now)}),
    ]
    for unicast in ((False, True) if args.broadcast else (True,)):
        for label, path, interface, values in forged:
            a.send(label, properties_changed(path, interface, values), unicast=unicast)


def forge_removed(a: Attacker, args: argparse.Namespace) -> None:
    """SessionRemoved of a real session, SeatRemoved of a real seat."""
    seat_id = args.seat.rsplit("/", 1)[-1]
    for unicast in ((False, True) if args.broadcast else (True,)):
        a.send("SessionRemoved", signal(MANAGER_PATH, MANAGER, "SessionRemoved", "so",
                                        (args.session_id, args.session)), unicast=unicast)
        a.send("SeatRemoved", signal(MANAGER_PATH, MANAGER, "SeatRemoved", "so",
                                     (seat_id, args.seat)), unicast=unicast)


def forge_owner(a: Attacker, args: argparse.Namespace) -> None:
    """NameOwnerChanged(login1, its real owner, ""): "logind left the bus"."""
    owner = a.bus("GetNameOwner", "s", (LOGIN1,))[0]
    for unicast in ((False, True) if args.broadcast else (True,)):
        a.send("NameOwnerChanged", signal(BUS_PATH, BUS, "NameOwnerChanged", "sss",
                                          (LOGIN1, owner, "")), unicast=unicast)


def prepare(a: Attacker, args: argparse.Namespace) -> None:
    """PrepareForShutdown(true) and PrepareForSleep(true) every --interval for --seconds."""
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        for member in ("PrepareForShutdown", "PrepareForSleep"):
            a.send(member, signal(MANAGER_PATH, MANAGER, member, "b", (True,)))
        time.sleep(args.interval)


def malformed(a: Attacker, args: argparse.Namespace) -> None:
    """Bodies that do not fit their member, and properties of the wrong type."""
    a.send("PropertiesChanged as s", signal(MANAGER_PATH, PROPERTIES, "PropertiesChanged", "s",
                                            (MANAGER,)))
    a.send("PrepareForShutdown without argument",
           signal(MANAGER_PATH, MANAGER, "PrepareForShutdown"))
    a.send("NameOwnerChanged with one argument",
           signal(BUS_PATH, BUS, "NameOwnerChanged", "s", (LOGIN1,)))
    a.send("SessionNew with one argument",
           signal(MANAGER_PATH, MANAGER, "SessionNew", "s", ("c1",)))
    a.send("IdleSinceHint as a string",
           properties_changed(MANAGER_PATH, MANAGER, {"IdleSinceHint": ("s", "soon")}))
    a.send("LockedHint as a string",
           properties_changed(args.session, SESSION, {"LockedHint": ("s", "yes")}))


def _lock_with_bytes(a: Attacker, session: str, size: int, element: str) -> tuple[bytes, int]:
    """A Session.Lock signal (which has no arguments) to the exporter with one array of
    ``size`` bytes of zeros as body: 'ay' (cheap to parse) or 'au' (one Python object per four
    bytes in jeepney: slow to parse). Serialised as 'ay', then the signature field is patched:
    both arrays lay out the same from a body start aligned to 8."""
    msg = signal(session, SESSION, "Lock", "ay", (bytes(size),))
    msg.header.fields[HeaderFields.destination] = a.target
    serial = next(a.conn.outgoing_serial)
    data = msg.serialise(serial=serial)
    if element != "y":
        field = b"\x08\x01g\x00\x02ay\x00"
        head = data[:512]
        if head.count(field) != 1:
            raise SystemExit("cannot find the signature field to patch")
        data = head.replace(field, b"\x08\x01g\x00\x02a" + element.encode() + b"\x00") + \
            data[512:]
    return data, serial


def oversized(a: Attacker, args: argparse.Namespace) -> None:
    """One signal of --mib MiB (over the exporter's 16 MiB bound, under the bus's 32 MiB)."""
    data, serial = _lock_with_bytes(a, args.session, args.mib * MIB, "y")
    a.send_raw(f"{args.mib} MiB signal", data, serial)


def big_bodies(a: Attacker, args: argparse.Namespace) -> None:
    """--count signals of --mib MiB each whose bodies are millions of small elements."""
    for _ in range(args.count):
        data, serial = _lock_with_bytes(a, args.session, args.mib * MIB, "u")
        a.send_raw(f"{args.mib} MiB 'au' body", data, serial)


def storm(a: Attacker, args: argparse.Namespace) -> None:
    """--count SessionNew signals naming sessions that do not exist."""
    for i in range(args.count):
        a.send("SessionNew", signal(MANAGER_PATH, MANAGER, "SessionNew", "so",
                                    (f"forged{i}", f"/org/freedesktop/login1/session/forged{i}")))


def calls(a: Attacker, args: argparse.Namespace) -> None:
    """A method call to the exporter, and a reply and an error it never asked for."""
    ping = message(MessageType.method_call, path="/", interface="org.freedesktop.DBus.Peer",
                   member="Ping", destination=a.target)
    serial = next(a.conn.outgoing_serial)
    a.labels[serial] = ("method call", True)
    a.sent["method call"] += 1
    a.conn.send(ping, serial=serial)
    try:
        deadline = time.monotonic() + 1.0
        while True:
            reply = a.conn.receive(timeout=max(deadline - time.monotonic(), 0.001))
            if reply.header.fields.get(HeaderFields.reply_serial) == serial:
                a.note(reply)
                a.answers["method call"] = (
                    str(reply.header.fields.get(HeaderFields.error_name))
                    if reply.header.message_type is MessageType.error else "method_return")
                break
            a.note(reply)
    except TimeoutError:
        a.answers["method call"] = "no answer in 1 s"
    a.send("unrequested method_return",
           message(MessageType.method_return, reply_serial=1, signature="s", body=("forged",)))
    a.send("unrequested error",
           message(MessageType.error, reply_serial=2,
                   error_name="org.freedesktop.DBus.Error.Failed", signature="s",
                   body=("forged",)))


ATTACKS: dict[str, Callable[[Attacker, argparse.Namespace], None]] = {
    "forge-values": forge_values,
    "forge-removed": forge_removed,
    "forge-owner": forge_owner,
    "prepare": prepare,
    "malformed": malformed,
    "oversized": oversized,
    "big-bodies": big_bodies,
    "storm": storm,
    "calls": calls,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pid", type=int, required=True, help="the exporter's process id")
    parser.add_argument("attack", choices=sorted(ATTACKS))
    parser.add_argument("--session", default="", help="a real session's object path")
    parser.add_argument("--session-id", default="", help="its id")
    parser.add_argument("--seat", default=f"{MANAGER_PATH}/seat/seat0")
    parser.add_argument("--broadcast", action="store_true",
                        help="also send the forgeries without a destination, first")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--mib", type=int, default=17)
    parser.add_argument("--count", type=int, default=1)
    args = parser.parse_args(argv)
    a = Attacker(args.pid)
    ATTACKS[args.attack](a, args)
    print(json.dumps(a.report()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
