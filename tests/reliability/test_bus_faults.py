"""A bus that refuses us, sends garbage, announces huge messages or floods signals: the
exporter keeps serving sd-login's numbers, reports ``logind_dbus_up 0``, counts the failure,
reconnects with a back-off capped at 5 s, and neither stalls nor grows."""

from __future__ import annotations

import os
import time
from functools import partial
from pathlib import Path

import pytest

from login_exporter.bus.connection import Connection, ConnectionLost
from tests.reliability.hostile_bus import HostileBus
from tests.support.exporter import Samples, start_exporter
from tests.support.logind_state import LogindState
from tests.support.proc import context_switches, rss_kib


def _sessions_are(count: int, samples: Samples) -> bool:
    return sum(v for (name, _), v in samples.items() if name == "logind_sessions") == count


def _read_until_lost(connection: Connection, timeout: float = 5.0) -> str:
    import select

    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            connection.flush()
            select.select([connection.fileno()], [], [], 0.2)
            for _ in connection.read(lambda header, size: True):
                pass
    except ConnectionLost as exc:
        return str(exc)
    finally:
        connection.close()
    raise AssertionError("the connection was never given up")


@pytest.mark.parametrize(("behaviour", "reason"), [
    ("reject", "refused authentication"),
    ("garbage", "malformed message"),
])
def test_connection_gives_up_on_a_misbehaving_bus(tmp_path: Path, behaviour: str,
                                                  reason: str) -> None:
    with HostileBus(tmp_path / "bus", behaviour) as bus:
        connection = Connection(bus.address)
        connection.open()
        assert reason in _read_until_lost(connection)


def test_a_huge_message_is_skipped_without_dropping_the_connection(tmp_path: Path) -> None:
    import select

    with HostileBus(tmp_path / "bus", "huge") as bus:
        connection = Connection(bus.address)
        connection.open()
        sizes: list[int] = []
        try:
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                connection.flush()
                select.select([connection.fileno()], [], [], 0.1)
                def admit(header: object, size: int) -> bool:
                    sizes.append(size)
                    return True

                for _ in connection.read(admit):
                    raise AssertionError("a message over the limit was parsed")
            assert connection.is_open
        finally:
            connection.close()
    assert sizes == [128 * 1024 * 1024 + 16]


def test_garbage_bus_backs_off_to_five_seconds_and_sd_login_is_still_served(
    tmp_path: Path, logind: LogindState
) -> None:
    logind.seat0()
    logind.session("1", uid=1000, seat="seat0", type="x11")
    with HostileBus(tmp_path / "bus", "garbage") as bus:
        exporter = start_exporter(f"--dbus.address={bus.address}")
        try:
            time.sleep(9)
            got = exporter.samples()
            assert exporter.process.poll() is None
        finally:
            exporter.stop()
    assert got[("logind_dbus_up", frozenset())] == 0
    assert got[("logind_up", frozenset())] == 1
    assert sum(v for (name, _), v in got.items() if name == "logind_sessions") == 1
    errors = got[("logind_exporter_errors_total", frozenset({("kind", "dbus")}))]
    # 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5, 5 s apart: about 8 attempts in 9 s, never a tight loop.
    attempts = len(bus.connections)
    assert 5 <= attempts <= 10, bus.connections
    assert errors == attempts
    gaps = [b - a for a, b in zip(bus.connections, bus.connections[1:], strict=False)]
    assert max(gaps) <= 5.5
    assert gaps[-1] >= 3.0


def test_signal_flood_neither_stalls_the_loop_nor_grows_memory(
    tmp_path: Path, logind: LogindState
) -> None:
    logind.seat0()
    with HostileBus(tmp_path / "bus", "flood") as bus:
        exporter = start_exporter(f"--dbus.address={bus.address}",
                                  "--refresh.resync-interval=0")
        try:
            pid = exporter.process.pid
            time.sleep(2)
            rss_start = rss_kib(pid)
            # sd-login changes still reach /metrics promptly while the bus floods.
            for n in range(5):
                logind.session(str(n + 1), uid=1000 + n)
                exporter.wait_for(partial(_sessions_are, n + 1), timeout=1.0,
                                  what=f"session {n + 1} during the flood")
                time.sleep(1)
            rss_end = rss_kib(pid)
            got = exporter.samples()
        finally:
            exporter.stop()
    messages = got[("logind_exporter_dbus_messages_total", frozenset())]
    assert messages > 10_000, messages
    assert rss_end - rss_start < 5_000, (rss_start, rss_end)


def _dbus_errors(samples: Samples) -> float:
    return samples[("logind_exporter_errors_total", frozenset({("kind", "dbus")}))]


def _at_least(count: int, samples: Samples) -> bool:
    return _dbus_errors(samples) >= count


def test_a_missing_bus_is_waited_for_without_waking_and_found_when_it_appears(
    tmp_path: Path, logind: LogindState
) -> None:
    logind.seat0()
    socket_dir = tmp_path / "dbus"  # not there yet: nor is its socket
    exporter = start_exporter(f"--dbus.address=unix:path={socket_dir}/system_bus_socket")
    try:
        time.sleep(1)
        failed = _dbus_errors(exporter.samples())
        assert failed >= 1, "a failed connect is not counted"
        time.sleep(1)  # the scrape's connection thread winds down
        switches = context_switches(exporter.process.pid)
        time.sleep(6)  # beyond the 5 s back-off cap
        assert context_switches(exporter.process.pid) - switches == 0, "woke up while idle"
        assert _dbus_errors(exporter.samples()) == failed, "tried again with nothing changed"
        socket_dir.mkdir()
        with HostileBus(socket_dir / "system_bus_socket", "reject") as bus:
            appeared = time.monotonic()
            while not bus.connections and time.monotonic() < appeared + 2:
                time.sleep(0.01)
            assert bus.connections, "the bus socket appeared and the exporter never came"
            assert bus.connections[0] - appeared < 0.5
    finally:
        exporter.stop()


def test_every_refused_connect_is_counted(tmp_path: Path, logind: LogindState) -> None:
    import socket

    logind.seat0()
    path = tmp_path / "bus"
    refusing = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    refusing.bind(str(path))  # bound, never listening: connect() is refused
    exporter = start_exporter(f"--dbus.address=unix:path={path}")
    try:
        exporter.wait_for(partial(_at_least, 1), timeout=2.0, what="one refusal")
        for n in range(5):  # each change of the socket is one more attempt, refused again
            os.chmod(path, 0o666 if n % 2 else 0o777)
            exporter.wait_for(partial(_at_least, n + 2), timeout=2.0, what=f"refusal {n + 2}")
        time.sleep(6)
        assert _dbus_errors(exporter.samples()) == 6
    finally:
        exporter.stop()
        refusing.close()
