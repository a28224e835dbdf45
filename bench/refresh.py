"""In-process refresh figures: the exporter's own refresher (login_exporter.state) on this tree.

Configured as the exporter's default flags configure it (machines read, no session details).
One :class:`RefreshBench` per tree keeps a warm refresher across measurement rounds, so rounds
can be interleaved with the C floor's (the machine's noise then hits both alike).
"""

from __future__ import annotations

import time
from types import ModuleType
from typing import Any

from bench.inproc import Unavailable
from bench.statetree import StateTree


def _state() -> ModuleType:
    try:
        from login_exporter import state
    except Exception as exc:
        raise Unavailable(f"login_exporter.state: {type(exc).__name__}: {str(exc)[:80]}") from exc
    return state


class RefreshBench:
    """Times refreshes of login_exporter.state.Refresher over one tree.

    Raises Unavailable (from the constructor) when login_exporter.state cannot be used.
    """

    def __init__(self, tree: StateTree) -> None:
        self.state: Any = _state()
        self.tree = tree
        self.refresher: Any = self._new()
        self.snapshot: Any = self.refresher.refresh(self.state.EMPTY, self._everything())
        self.candidates = tree.toggleable()
        self._k = 0
        from login_exporter import collector

        self.totals = collector.Totals()
        self.collector = collector.LogindCollector(collector.Options(), "252", True)
        self.collector.update(self.snapshot, self.totals)

    def _new(self) -> Any:
        return self.state.Refresher(machines=True, details=False)

    def _everything(self) -> Any:
        return self.state.Changes(everything=True)

    def cold(self, passes: int) -> float:
        """Mean seconds of a start-up refresh: a new Refresher, nothing cached, all read."""
        total = 0
        for _ in range(passes):
            refresher = self._new()
            t0 = time.perf_counter_ns()
            refresher.refresh(self.state.EMPTY, self._everything())
            total += time.perf_counter_ns() - t0
        return total / passes / 1e9

    def full(self, passes: int) -> float:
        """Mean seconds of a full refresh: everything re-listed and re-read, per-session-id
        caches warm (what a resync or an inotify overflow costs)."""
        t0 = time.perf_counter_ns()
        for _ in range(passes):
            self.snapshot = self.refresher.refresh(self.snapshot, self._everything())
        return (time.perf_counter_ns() - t0) / passes / 1e9

    def one_change(self, passes: int, *, publish: bool = False) -> float:
        """Mean seconds of the refresh after one renamed session file, naming that id as the
        monitor's inotify event names it, with every monitor open (as the agent passes it).
        With ``publish``, also what the agent does next: the difference for the counters, the
        collector's update and the rendered exposition bytes. Raises RuntimeError when the
        refresh misses the change."""
        if not self.candidates:
            raise RuntimeError("no seatless session to change")
        total = 0
        watched = frozenset({"session", "seat", "uid", "machine"})
        for _ in range(passes):
            self._k += 1
            sid = self.candidates[(self._k * 7919) % len(self.candidates)]
            new_state = self.tree.toggle_state(sid)
            previous = self.snapshot
            t0 = time.perf_counter_ns()
            self.snapshot = self.refresher.refresh(
                previous, self.state.Changes(sessions={sid}, watched=watched)
            )
            if publish:
                self.totals.observe(self.state.difference(previous, self.snapshot), 0.0)
                self.collector.update(self.snapshot, self.totals)
                self.collector.exposition().get(openmetrics=False, gzip=False)
            total += time.perf_counter_ns() - t0
            if self.snapshot.sessions[sid].state != new_state:
                raise RuntimeError(f"refresh missed the change of session {sid}")
        return total / passes / 1e9
