"""Who may tell the exporter what about logind: the bus follower against forged, malformed,
oversized and unrequested messages, delivered as dbus-daemon relays them (a scripted peer on a
real socket; the attacks on a booted system are in tests/e2e/test_bus_attacker.py)."""

from __future__ import annotations

import tempfile
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jeepney.low_level import HeaderFields, Message, MessageType
from jeepney.wrappers import new_header

from login_exporter.bus import LogindBus, Presence
from login_exporter.bus.logind import LOGIN1, MANAGER, MANAGER_PATH, SEAT
from login_exporter.bus.logind import SESSION as SESSION_IFACE
from tests.support.scripted_bus import (
    ATTACKER,
    DAEMON,
    LOGIND,
    SEAT0,
    SESSION,
    US,
    ScriptedBus,
    properties_changed,
    reply,
    signal,
)

DBUS_PATH = "/org/freedesktop/DBus"


@pytest.fixture
def wired(tmp_path: Path) -> Iterator[tuple[ScriptedBus, LogindBus]]:
    """A LogindBus connected to a scripted bus, everything read."""
    with Wired(tmp_path) as pair:
        yield pair


class Wired:
    """A LogindBus and its scripted bus, connected on entry, closed on exit."""

    def __init__(self, tmp_path: Path) -> None:
        self.peer = ScriptedBus(tmp_path / "bus")
        self.bus = LogindBus(self.peer.address, shutdown_dir=str(tmp_path))

    def __enter__(self) -> tuple[ScriptedBus, LogindBus]:
        self.peer.connect(self.bus)
        assert self.bus.view().up and self.bus.settled
        return self.peer, self.bus

    def __exit__(self, *exc: object) -> None:
        self.bus.close()
        self.peer.close()


def deliver(peer: ScriptedBus, bus: LogindBus, *messages: Message) -> Presence:
    """Deliver ``messages``, answer what the bus asks, return the view."""
    peer.send(*messages)
    peer.exchange(bus)
    return bus.view()


@dataclass(frozen=True)
class Forgery:
    """A signal that changes the view when its rightful sender sends it (``serve`` makes the
    scripted logind's properties agree, as the real one's would)."""

    name: str
    message: Callable[[str], Message]
    serve: Callable[[ScriptedBus], None] = lambda peer: None
    rightful: str = LOGIND


def _set(table: str, name: str, value: tuple[str, Any]) -> Callable[[ScriptedBus], None]:
    return lambda peer: getattr(peer, table).__setitem__(name, value)


FORGERIES = [
    Forgery("manager IdleHint", lambda s: properties_changed(
        s, MANAGER_PATH, MANAGER, {"IdleHint": ("b", True), "IdleSinceHint": ("t", 5 * 10**15)})),
    Forgery("ScheduledShutdown", lambda s: properties_changed(
        s, MANAGER_PATH, MANAGER, {"ScheduledShutdown": ("(st)", ("poweroff", 2 * 10**15))})),
    Forgery("PrepareForShutdown", lambda s: signal(
        s, MANAGER_PATH, MANAGER, "PrepareForShutdown", "b", (True,)),
        _set("manager", "PreparingForShutdown", ("b", True))),
    Forgery("PrepareForSleep", lambda s: signal(
        s, MANAGER_PATH, MANAGER, "PrepareForSleep", "b", (True,)),
        _set("manager", "PreparingForSleep", ("b", True))),
    Forgery("session LockedHint", lambda s: properties_changed(
        s, SESSION, SESSION_IFACE, {"LockedHint": ("b", True)})),
    Forgery("session IdleHint", lambda s: properties_changed(
        s, SESSION, SESSION_IFACE, {"IdleHint": ("b", True)})),
    Forgery("seat0 IdleHint", lambda s: properties_changed(
        s, SEAT0, SEAT, {"IdleHint": ("b", True), "IdleSinceHint": ("t", 5 * 10**15)})),
    Forgery("SessionRemoved", lambda s: signal(
        s, MANAGER_PATH, MANAGER, "SessionRemoved", "so", ("31", SESSION))),
    Forgery("SeatRemoved", lambda s: signal(
        s, MANAGER_PATH, MANAGER, "SeatRemoved", "so", ("seat0", SEAT0))),
    Forgery("NameOwnerChanged", lambda s: signal(
        s, DBUS_PATH, DAEMON, "NameOwnerChanged", "sss", (LOGIN1, LOGIND, "")),
        rightful=DAEMON),
]


@pytest.mark.parametrize("forgery", FORGERIES, ids=lambda f: f.name)
def test_a_forged_signal_changes_nothing_and_is_counted(
    wired: tuple[ScriptedBus, LogindBus], forgery: Forgery
) -> None:
    peer, bus = wired
    before = bus.view()
    after = deliver(peer, bus, forgery.message(ATTACKER))
    assert after == before
    assert bus.dropped["sender"] == 1
    assert bus.errors["dbus"] == 0 and after.up


@pytest.mark.parametrize("forgery", FORGERIES, ids=lambda f: f.name)
def test_the_same_signal_from_its_rightful_sender_is_followed(
    wired: tuple[ScriptedBus, LogindBus], forgery: Forgery
) -> None:
    peer, bus = wired
    before = bus.view()
    forgery.serve(peer)
    after = deliver(peer, bus, forgery.message(forgery.rightful))
    assert after != before
    assert sum(bus.dropped.values()) == 0


def test_a_broadcast_forgery_is_refused_too(wired: tuple[ScriptedBus, LogindBus]) -> None:
    peer, bus = wired
    before = bus.view()
    forged = properties_changed(ATTACKER, SESSION, SESSION_IFACE, {"LockedHint": ("b", True)})
    del forged.header.fields[HeaderFields.destination]
    assert deliver(peer, bus, forged) == before
    assert bus.dropped["sender"] == 1


def test_the_old_owner_is_not_believed_after_logind_restarts(
    wired: tuple[ScriptedBus, LogindBus],
) -> None:
    peer, bus = wired
    noc = "NameOwnerChanged"
    deliver(peer, bus, signal(DAEMON, DBUS_PATH, DAEMON, noc, "sss", (LOGIN1, LOGIND, "")),
            signal(DAEMON, DBUS_PATH, DAEMON, noc, "sss", (LOGIN1, "", ":1.9")))
    # The scripted logind answers as LOGIND; the new owner is :1.9: its answers are refused.
    assert bus.dropped["sender"] >= 1
    view = deliver(peer, bus, properties_changed(
        LOGIND, SESSION, SESSION_IFACE, {"LockedHint": ("b", True)}))
    assert not any(hints.locked for hints in view.sessions.values())


MALFORMED = [
    ("PropertiesChanged of signature s", LOGIND, lambda: signal(
        LOGIND, MANAGER_PATH, "org.freedesktop.DBus.Properties", "PropertiesChanged", "s",
        ("org.freedesktop.login1.Manager",))),
    ("PrepareForShutdown without its argument", LOGIND, lambda: signal(
        LOGIND, MANAGER_PATH, MANAGER, "PrepareForShutdown", "", ())),
    ("NameOwnerChanged with one argument", DAEMON, lambda: signal(
        DAEMON, DBUS_PATH, DAEMON, "NameOwnerChanged", "s", (LOGIN1,))),
    ("SessionNew of signature ss", LOGIND, lambda: signal(
        LOGIND, MANAGER_PATH, MANAGER, "SessionNew", "ss", ("9", "/x"))),
]


@pytest.mark.parametrize(("name", "sender", "message"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_a_malformed_signal_is_dropped_without_raising(
    wired: tuple[ScriptedBus, LogindBus], name: str, sender: str,
    message: Callable[[], Message],
) -> None:
    peer, bus = wired
    before = bus.view()
    assert deliver(peer, bus, message()) == before
    assert bus.dropped["signature"] == 1
    assert bus.errors["dbus"] == 0


def test_a_property_of_the_wrong_type_is_ignored_and_counted(
    wired: tuple[ScriptedBus, LogindBus],
) -> None:
    peer, bus = wired
    view = deliver(peer, bus, properties_changed(LOGIND, MANAGER_PATH, MANAGER, {
        "IdleHint": ("b", True), "IdleSinceHint": ("s", "yesterday")}))
    assert view.power.idle is True and view.power.idle_since == 0.0
    assert bus.dropped["property"] == 1
    view = deliver(peer, bus, properties_changed(LOGIND, SESSION, SESSION_IFACE, {
        "Seat": ("s", "seat0"), "LockedHint": ("u", 1)}))
    assert bus.dropped["property"] == 3
    assert view.sessions[SESSION].seat == "seat0" and not view.sessions[SESSION].locked


def _big_signal(sender: str, size: int) -> Message:
    return signal(sender, MANAGER_PATH, MANAGER, "PrepareForShutdown", "s", ("x" * size,))


@pytest.mark.parametrize("sender", [ATTACKER, LOGIND])
def test_an_oversized_signal_is_skipped_unread_and_the_connection_kept(
    wired: tuple[ScriptedBus, LogindBus], sender: str
) -> None:
    peer, bus = wired
    before = bus.view()
    peer.send(_big_signal(sender, 17 * 1024 * 1024))
    tracemalloc.start()
    try:
        peer.exchange(bus)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert bus.view() == before and bus.errors["dbus"] == 0
    assert bus.dropped["size" if sender == LOGIND else "sender"] == 1
    assert peak < 2 * 1024 * 1024, peak  # skipped as it arrived: never buffered whole
    # and the stream stays in step: the next real change is followed
    view = deliver(peer, bus, properties_changed(
        LOGIND, SESSION, SESSION_IFACE, {"LockedHint": ("b", True)}))
    assert view.sessions[SESSION].locked


def test_a_flood_of_big_forged_bodies_is_not_parsed(wired: tuple[ScriptedBus, LogindBus]) -> None:
    peer, bus = wired
    # 15 MiB of tiny array elements: slow to parse, were it parsed.
    body = list(range(15 * 1024 * 1024 // 4))
    forged = signal(ATTACKER, MANAGER_PATH, MANAGER, "PrepareForShutdown", "au", (body,))
    raw = forged.serialise(serial=7)
    for _ in range(3):
        peer.send_raw(raw)
    tracemalloc.start()
    try:
        peer.exchange(bus)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert bus.dropped["sender"] == 3 and peak < 2 * 1024 * 1024


def test_replies_only_from_the_callee_and_only_to_pending_calls(
    wired: tuple[ScriptedBus, LogindBus],
) -> None:
    peer, bus = wired
    peer.hold = True
    bus.resync()
    peer.exchange(bus)
    get_all = next(c for c in peer.held if c.header.fields[HeaderFields.member] == "GetAll"
                   and c.header.fields[HeaderFields.path] == MANAGER_PATH)
    forged = dict(peer.manager, IdleHint=("b", True))
    serial = get_all.header.serial
    view = deliver(peer, bus, reply(ATTACKER, serial, "a{sv}", (forged,)),
                   reply(LOGIND, 99_999, "a{sv}", (forged,)))
    assert view.power.idle is False
    assert (bus.dropped["sender"], bus.dropped["unexpected"]) == (1, 1)
    assert not bus.settled
    peer.hold = False
    peer.release()
    peer.exchange(bus)
    assert bus.settled and bus.view().power.idle is False


def test_logind_s_own_session_storm_ends_exact_with_bounded_calls(
    wired: tuple[ScriptedBus, LogindBus],
) -> None:
    peer, bus = wired
    peer.most_in_flight = 0
    news = []
    for n in range(1000):
        path = f"/org/freedesktop/login1/session/c{n}"
        peer.sessions[path] = dict(peer.session, IdleHint=("b", n % 3 == 0))
        news.append(signal(LOGIND, MANAGER_PATH, MANAGER, "SessionNew", "so", (f"c{n}", path),
                           destination=None))
    calls = len(peer.calls)
    view = deliver(peer, bus, *news)
    assert len(view.sessions) == 1001
    assert sum(hints.idle for hints in view.sessions.values()) == 334
    assert peer.most_in_flight <= 64  # what the bus lets a connection have pending: 128
    # each new session read once; the Manager and seat0 re-read as often as the storm lets
    # them be (a queued read absorbs the requests that come while it waits), never per signal
    assert len(peer.calls) - calls < 1000 * 1.5, len(peer.calls) - calls
    assert sum(bus.dropped.values()) == 0


def test_the_bus_s_own_notices_are_not_counted(wired: tuple[ScriptedBus, LogindBus]) -> None:
    peer, bus = wired
    deliver(peer, bus, signal(DAEMON, DBUS_PATH, DAEMON, "NameAcquired", "s", (US,)))
    assert sum(bus.dropped.values()) == 0


def test_a_method_call_to_the_exporter_is_dropped(wired: tuple[ScriptedBus, LogindBus]) -> None:
    peer, bus = wired
    header = new_header(MessageType.method_call)
    header.fields.update({HeaderFields.path: "/", HeaderFields.member: "Ping",
                          HeaderFields.interface: "org.freedesktop.DBus.Peer",
                          HeaderFields.sender: ATTACKER, HeaderFields.destination: US})
    before = bus.view()
    assert deliver(peer, bus, Message(header, ())) == before
    assert bus.dropped["unexpected"] == 1


def test_dropped_messages_are_published_within_a_second(
    wired: tuple[ScriptedBus, LogindBus],
) -> None:
    peer, bus = wired
    bus.view()
    assert not bus.changed
    deliver(peer, bus, *(FORGERIES[0].message(ATTACKER) for _ in range(100)))
    assert not bus.changed  # no re-render per forgery...
    due = bus.deadline()
    assert due is not None
    bus.tick(due)
    assert bus.changed  # ...but the counts reach /metrics within DROPS_PUBLISH_DELAY


# -- fuzz: random signatures and bodies, from logind, the bus and others -------------------

_LEAVES = st.one_of(
    st.booleans().map(lambda v: ("b", v)),
    st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\0"),
            max_size=20).map(lambda v: ("s", v)),
    st.sampled_from(["/", SESSION, SEAT0, MANAGER_PATH, "/org/x"]).map(lambda v: ("o", v)),
    st.integers(0, 2**64 - 1).map(lambda v: ("t", v)),
    st.integers(-(2**31), 2**31 - 1).map(lambda v: ("i", v)),
    st.integers(0, 255).map(lambda v: ("y", v)),
)


def _containers(children: st.SearchStrategy[tuple[str, Any]]) -> st.SearchStrategy[Any]:
    return st.one_of(
        children.map(lambda c: ("v", c)),
        st.lists(children, min_size=1, max_size=3).map(
            lambda cs: ("(" + "".join(c[0] for c in cs) + ")", tuple(c[1] for c in cs))),
        children.flatmap(lambda c: st.lists(st.just(c[1]), max_size=2).map(
            lambda vs: ("a" + c[0], vs))),
        children.flatmap(lambda c: st.dictionaries(st.text(max_size=8), st.just(c[1]),
                                                   max_size=2).map(
            lambda d: ("a{s" + c[0] + "}", d))),
    )


VALUES = st.recursive(_LEAVES, _containers, max_leaves=6)
NAMES = sorted({"IdleHint", "IdleSinceHint", "LockedHint", "Seat", "Id", "Remote", "Type",
                "Class", "ScheduledShutdown", "PreparingForShutdown", "BlockInhibited"})
PROPERTIES = st.tuples(
    st.sampled_from([MANAGER, SEAT, SESSION_IFACE, "x"]),
    st.dictionaries(st.sampled_from(NAMES), VALUES.map(lambda c: c), max_size=4),
    st.lists(st.sampled_from(NAMES), max_size=2),
).map(lambda b: ("sa{sv}as", b))
BODIES = st.one_of(
    st.lists(VALUES, max_size=3).map(
        lambda vs: ("".join(v[0] for v in vs), tuple(v[1] for v in vs))),
    PROPERTIES,
)
MEMBERS = st.sampled_from([
    ("org.freedesktop.DBus.Properties", "PropertiesChanged"), (MANAGER, "SessionNew"),
    (MANAGER, "SessionRemoved"), (MANAGER, "SeatNew"), (MANAGER, "SeatRemoved"),
    (MANAGER, "PrepareForShutdown"), (MANAGER, "PrepareForSleep"),
    (DAEMON, "NameOwnerChanged"), (MANAGER, "UserNew"), ("x.y", "z"),
])


@st.composite
def messages(draw: st.DrawFn) -> Message:
    sender = draw(st.sampled_from([LOGIND, DAEMON, ATTACKER]))
    signature, body = draw(BODIES)
    kind = draw(st.sampled_from(["signal", "reply", "error"]))
    if kind == "signal":
        interface, member = draw(MEMBERS)
        path = draw(st.sampled_from([MANAGER_PATH, SESSION, SEAT0, DBUS_PATH, "/x"]))
        return signal(sender, path, interface, member, signature, body,
                      destination=draw(st.sampled_from([US, None])))
    return reply(sender, draw(st.integers(1, 40)), signature, body,
                 error="org.x.Error" if kind == "error" else None)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(messages(), min_size=1, max_size=6))
def test_no_message_raises_or_loses_the_connection(batch: list[Message]) -> None:
    with tempfile.TemporaryDirectory() as tmp, Wired(Path(tmp)) as (peer, bus):
        peer.hold = True  # leave calls pending, so that replies can find one
        bus.resync()
        peer.send(*batch)
        peer.exchange(bus)
        peer.hold = False
        peer.release()
        peer.exchange(bus)
        view = bus.view()
        assert bus.errors["dbus"] == 0, "the bus side was reset"
        assert view.connected
