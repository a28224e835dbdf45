"""Memory check for login_exporter.sdlogin: every getter, many calls, RSS must stay flat.

libsystemd hands back malloc()ed strings and arrays; the binding must free each one (and the
arrays' elements). This module holds the workload shared by tests/integration/test_sdlogin_memory.py
(100,000 calls in all, spread over every getter, fast enough for CI) and a script that calls every
getter 100,000 times and prints RSS and malloc'd bytes before and after:

    python3 -m tests.integration.sdlogin_memory [--calls N]

The script moves itself into a private mount namespace with a tmpfs on /run/systemd (as the test
suite does), so the host's /run/systemd is never read or written.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import gc
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from login_exporter import sdlogin
from tests.support.logind_state import LogindState

PAGE = os.sysconf("SC_PAGE_SIZE")


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
_mallinfo2 = _libc.mallinfo2
_mallinfo2.restype = _MallInfo2
_mallinfo2.argtypes = []


def rss_bytes() -> int:
    """Resident set size of this process, from /proc/self/statm."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def malloc_in_use() -> int:
    """Bytes currently allocated through malloc() (all arenas, mmap()ed chunks included)."""
    info = _mallinfo2()
    return int(info.uordblks + info.hblkhd)


def populate(logind: LogindState) -> None:
    """A state where every getter has something to return (and some return "no data")."""
    logind.session(
        "1",
        uid=1000,
        seat="seat0",
        type="x11",
        tty="tty1",
        display=":0",
        desktop="GNOME",
        vtnr=1,
        is_display=True,
    )
    logind.session("2", uid=1001, seat="seat-kiosk1", type="wayland", vtnr=1)
    logind.session(
        "41", uid=1002, remote=True, remote_host="203.0.113.7", remote_user="alice", service="sshd"
    )
    logind.session("c1", uid=1000, type="unspecified", klass="background", service="su-l")
    logind.seat0(sessions=[("1", 1000)], active="1")
    logind.seat("seat-kiosk1", sessions=[("2", 1001)], active="2")
    logind.user(1000, sessions=["1", "c1"], seats=["seat0"], display="1")
    logind.user(1001, sessions=["2"], seats=["seat-kiosk1"])
    logind.user(1002, sessions=["41"])
    logind.user(1003, state="lingering")
    logind.machine("vm1", klass="vm", ifindices=[3, 7, 11])
    logind.machine("ct1")


def _expect(
    error: type[BaseException] | tuple[type[BaseException], ...], call: Callable[[], object]
) -> Callable[[], object]:
    def run() -> object:
        try:
            call()
        except error:
            return None
        raise AssertionError(f"expected {error}")

    return run


def monitor_cycle() -> object:
    """Create, use and close a monitor.

    Closing an inotify fd costs the kernel milliseconds of wall time (an RCU grace period), so
    this runs fewer times than the getters: see MONITOR_CYCLE_SHARE.
    """
    with sdlogin.Monitor() as monitor:
        monitor.fileno()
        monitor.get_events()
    return None


_long_lived: sdlogin.Monitor | None = None


def _monitor_methods() -> object:
    global _long_lived
    if _long_lived is None:
        _long_lived = sdlogin.Monitor()
    m = _long_lived
    m.fileno()
    m.get_events()
    m.get_timeout()
    m.get_timeout_ms()
    m.flush()
    return None


def _missing(call: Callable[[], object]) -> Callable[[], object]:
    return _expect(OSError, call)


def _tolerant(getter: Callable[[int], object]) -> Callable[[], object]:
    def run() -> object:
        try:
            return getter(0)
        except OSError:
            return None

    return run


# name -> call: every getter, on data, on "no data" (None), and on the error paths.
GETTERS: dict[str, Callable[[], object]] = {
    "machine_names": sdlogin.machine_names,
    "seats": sdlogin.seats,
    "sessions": sdlogin.sessions,
    "uids": sdlogin.uids,
    "Monitor methods": _monitor_methods,
    "session_is_active": lambda: sdlogin.session_is_active("1"),
    "session_is_remote": lambda: sdlogin.session_is_remote("41"),
    "session_get_state": lambda: sdlogin.session_get_state("1"),
    "session_get_uid": lambda: sdlogin.session_get_uid("1"),
    "session_get_seat": lambda: sdlogin.session_get_seat("1"),
    "session_get_seat(none)": lambda: sdlogin.session_get_seat("41"),
    "session_get_service": lambda: sdlogin.session_get_service("41"),
    "session_get_type": lambda: sdlogin.session_get_type("1"),
    "session_get_class": lambda: sdlogin.session_get_class("c1"),
    "session_get_desktop": lambda: sdlogin.session_get_desktop("1"),
    "session_get_display": lambda: sdlogin.session_get_display("1"),
    "session_get_remote_host": lambda: sdlogin.session_get_remote_host("41"),
    "session_get_remote_user": lambda: sdlogin.session_get_remote_user("41"),
    "session_get_tty": lambda: sdlogin.session_get_tty("1"),
    "session_get_vt": lambda: sdlogin.session_get_vt("1"),
    "session_get_vt(none)": lambda: sdlogin.session_get_vt("41"),
    "session_get_state(ENXIO)": _missing(lambda: sdlogin.session_get_state("99")),
    "session_get_state(EINVAL)": _expect(ValueError, lambda: sdlogin.session_get_state("../x")),
    "session_get_username(v254)": _expect(
        NotImplementedError, lambda: sdlogin.session_get_username("1")
    ),
    "session_get_start_time(v254)": _expect(
        NotImplementedError, lambda: sdlogin.session_get_start_time("1")
    ),
    "session_get_leader(v254)": _expect(
        NotImplementedError, lambda: sdlogin.session_get_leader("1")
    ),
    "seat_get_active": lambda: sdlogin.seat_get_active("seat0"),
    "seat_get_sessions": lambda: sdlogin.seat_get_sessions("seat0"),
    "seat_get_session_uids": lambda: sdlogin.seat_get_session_uids("seat-kiosk1"),
    "seat_can_multi_session": lambda: sdlogin.seat_can_multi_session("seat0"),
    "seat_can_tty": lambda: sdlogin.seat_can_tty("seat0"),
    "seat_can_graphical": lambda: sdlogin.seat_can_graphical("seat0"),
    "seat_get_active(ENXIO)": _missing(lambda: sdlogin.seat_get_active("seat9")),
    "uid_get_state": lambda: sdlogin.uid_get_state(1000),
    "uid_get_state(offline)": lambda: sdlogin.uid_get_state(4242),
    "uid_get_display": lambda: sdlogin.uid_get_display(1000),
    "uid_get_display(none)": lambda: sdlogin.uid_get_display(1003),
    "uid_is_on_seat": lambda: sdlogin.uid_is_on_seat(1000, "seat0", True),
    "uid_get_sessions": lambda: sdlogin.uid_get_sessions(1000),
    "uid_get_sessions(active)": lambda: sdlogin.uid_get_sessions(1000, require_active=True),
    "uid_get_seats": lambda: sdlogin.uid_get_seats(1000),
    "uid_get_login_time(v254)": _expect(
        NotImplementedError, lambda: sdlogin.uid_get_login_time(1000)
    ),
    "machine_get_class": lambda: sdlogin.machine_get_class("vm1"),
    "machine_get_ifindices": lambda: sdlogin.machine_get_ifindices("vm1"),
    "machine_get_ifindices(none)": lambda: sdlogin.machine_get_ifindices("ct1"),
    "machine_get_class(ENXIO)": _missing(lambda: sdlogin.machine_get_class("gone")),
    # A process's answers depend on where the tests run: any value or OSError is fine.
    "pid_get_session": _tolerant(sdlogin.pid_get_session),
    "pid_get_owner_uid": _tolerant(sdlogin.pid_get_owner_uid),
    "pid_get_unit": _tolerant(sdlogin.pid_get_unit),
    "pid_get_user_unit": _tolerant(sdlogin.pid_get_user_unit),
    "pid_get_slice": _tolerant(sdlogin.pid_get_slice),
    "pid_get_user_slice": _tolerant(sdlogin.pid_get_user_slice),
    "pid_get_machine_name": _tolerant(sdlogin.pid_get_machine_name),
    "pid_get_cgroup": _tolerant(sdlogin.pid_get_cgroup),
    "pid_get_cgroup(ESRCH)": _missing(lambda: sdlogin.pid_get_cgroup(0x7FFFFFFF)),
    "capabilities": sdlogin.capabilities,
}


# Monitor new+close runs once per this many getter calls (see monitor_cycle()).
MONITOR_CYCLE_SHARE = 100


@dataclass
class Measure:
    """RSS and malloc()ed bytes before and after a run."""

    calls: int
    seconds: float
    rss_before: int
    rss_after: int
    heap_before: int
    heap_after: int
    per_getter_heap: dict[str, int]

    @property
    def rss_growth(self) -> int:
        return self.rss_after - self.rss_before

    @property
    def heap_growth(self) -> int:
        return self.heap_after - self.heap_before


def _settle() -> None:
    gc.collect()


def warm_up(rounds: int = 200) -> None:
    """Call every getter a few times so caches, cffi types and free lists exist."""
    for _ in range(rounds):
        for call in GETTERS.values():
            call()
    for _ in range(max(1, rounds // 10)):
        monitor_cycle()
    _settle()


def run(calls_per_getter: int) -> Measure:
    """Call each getter ``calls_per_getter`` times in a row (and create and close a monitor
    ``calls_per_getter // MONITOR_CYCLE_SHARE`` times); measure around each and in all."""
    per_getter: dict[str, int] = {}
    _settle()
    rss_before, heap_before = rss_bytes(), malloc_in_use()
    start = time.perf_counter()
    for name, call in GETTERS.items():
        before = malloc_in_use()
        for _ in range(calls_per_getter):
            call()
        per_getter[name] = malloc_in_use() - before
    cycles = max(1, calls_per_getter // MONITOR_CYCLE_SHARE)
    before = malloc_in_use()
    for _ in range(cycles):
        monitor_cycle()
    per_getter[f"Monitor new+close (x{cycles:,})"] = malloc_in_use() - before
    seconds = time.perf_counter() - start
    _settle()
    return Measure(
        calls=calls_per_getter * len(GETTERS) + cycles,
        seconds=seconds,
        rss_before=rss_before,
        rss_after=rss_bytes(),
        heap_before=heap_before,
        heap_after=malloc_in_use(),
        per_getter_heap=per_getter,
    )


def _kib(n: int) -> str:
    return f"{n / 1024:+.1f} KiB" if n else "0"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=100_000, help="calls of every getter")
    args = parser.parse_args(argv)

    from tests.support import namespace

    namespace.enter_private_namespace()
    namespace.mount_tmpfs()
    try:
        populate(LogindState())
        warm_up()
        m = run(args.calls)
        if _long_lived is not None:
            _long_lived.close()
    finally:
        namespace.unmount()
    print(f"libsystemd ABI {sdlogin.abi_version()} ({sdlogin._ffi.library_path()})")
    print(
        f"{len(GETTERS)} getters x {args.calls:,} calls, plus Monitor new+close "
        f"x {args.calls // MONITOR_CYCLE_SHARE:,}: {m.calls:,} calls in {m.seconds:.1f} s"
    )
    for name, growth in m.per_getter_heap.items():
        print(f"  {name:32} malloc in use {_kib(growth)}")
    print(f"RSS before {m.rss_before / 1024:,.0f} KiB, after {m.rss_after / 1024:,.0f} KiB "
          f"({_kib(m.rss_growth)})")
    print(f"malloc in use before {m.heap_before / 1024:,.0f} KiB, after "
          f"{m.heap_after / 1024:,.0f} KiB ({_kib(m.heap_growth)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
