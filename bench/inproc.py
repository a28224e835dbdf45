"""Figures measured inside the bench process, on the current (private) /run/systemd.

- ``naive_pass``: login_exporter.sdlogin making exactly the C floor's calls from Python, with no
  caching: what the cffi binding alone costs over C.
- ``list_calls``: sessions() + seats() + uids() + machine_names(), ours and python-systemd's.
- ``side_by_side``, ``monitor_creation``: each list function and Monitor() creation, ours and
  python-systemd's alternately in one process.
"""

from __future__ import annotations

import importlib
import statistics
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any


class Unavailable(RuntimeError):
    """A figure cannot be measured here; the message says why."""


def mean_seconds(fn: Callable[[], object], passes: int) -> float:
    """Mean wall time of ``fn()`` over ``passes`` calls after one warm-up call."""
    fn()
    t0 = time.perf_counter_ns()
    for _ in range(passes):
        fn()
    return (time.perf_counter_ns() - t0) / passes / 1e9


def _import(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except Exception as exc:  # ImportError, or OSError when libsystemd is missing
        raise Unavailable(f"{name}: {type(exc).__name__}: {str(exc)[:80]}") from exc


def ours() -> ModuleType:
    """login_exporter.sdlogin. Raises Unavailable when it cannot be imported."""
    return _import("login_exporter.sdlogin")


def python_systemd() -> ModuleType:
    """python-systemd's systemd.login. Raises Unavailable with the reason when it is missing."""
    try:
        return importlib.import_module("systemd.login")
    except ImportError as exc:
        raise Unavailable(
            "systemd-python not installed (pip install systemd-python; it builds against "
            "libsystemd-dev with pkg-config and Python headers)"
        ) from exc


def naive_pass(sd: Any) -> None:
    """One full pass of the floor's calls through ``sd`` (login_exporter.sdlogin)."""
    for sid in sd.sessions():
        sd.session_get_uid(sid)
        sd.session_get_seat(sid)
        sd.session_get_type(sid)
        sd.session_get_class(sid)
        sd.session_get_state(sid)
        sd.session_get_service(sid)
        sd.session_is_active(sid)
        sd.session_is_remote(sid)
    for seat in sd.seats():
        sd.seat_get_active(seat)
        sd.seat_get_sessions(seat)
        sd.seat_can_graphical(seat)
        sd.seat_can_tty(seat)
        sd.seat_can_multi_session(seat)
    for uid in sd.uids():
        sd.uid_get_state(uid)
    for machine in sd.machine_names():
        sd.machine_get_class(machine)


def list_calls(module: Any) -> Callable[[], object]:
    """A function calling sessions(), seats(), uids() and machine_names() of ``module``."""

    def calls() -> object:
        return (module.sessions(), module.seats(), module.uids(), module.machine_names())

    return calls


BINDING_CALLS = ("sessions", "seats", "uids", "machine_names")


def side_by_side(
    ours_fn: Callable[[], float], theirs_fn: Callable[[], float], rounds: int
) -> tuple[float, float, float]:
    """Alternate ``ours_fn`` and ``theirs_fn`` (each returning its mean seconds per call) for
    ``rounds`` rounds. Returns (median ours, median theirs, median of per-round ours/theirs)."""
    ours_s, theirs_s = [], []
    for _ in range(rounds):
        ours_s.append(ours_fn())
        theirs_s.append(theirs_fn())
    ratios = [o / t for o, t in zip(ours_s, theirs_s, strict=True)]
    return statistics.median(ours_s), statistics.median(theirs_s), statistics.median(ratios)


def monitor_creation(module: Any, monitors: int = 10) -> float:
    """Mean seconds of ``module.Monitor()`` (all four categories), the closing not timed: a few
    at a time, as inotify instances per user are few (fs.inotify.max_user_instances)."""
    opened = []
    t0 = time.perf_counter_ns()
    for _ in range(monitors):
        opened.append(module.Monitor())
    elapsed = time.perf_counter_ns() - t0
    for monitor in opened:
        monitor.close()
    return elapsed / monitors / 1e9
