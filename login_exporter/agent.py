"""The event loop: sleep on the monitors, refresh on change, publish, repeat.

The only place with time and waiting. One selector over the monitor fds and a signal wake-up
fd; no timers beyond the resync safety net, the systemd watchdog and (while logind is absent) the
monitor retry back-off, so an idle agent does not wake at all.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from types import FrameType

from prometheus_client.core import Metric

from login_exporter import heap
from login_exporter.bus import LogindBus
from login_exporter.bus.view import Presence
from login_exporter.collector import LogindCollector, Totals
from login_exporter.exposition import Publisher
from login_exporter.liveness import Liveness
from login_exporter.presence import PresenceFamilies
from login_exporter.state import EMPTY, Changes, RefreshCancelled, Refresher, Snapshot, difference
from login_exporter.watch import LOGIND_CATEGORIES, MACHINE_CATEGORY, Watcher

log = logging.getLogger("login_exporter.agent")

RETRY_FIRST = 0.1
RETRY_MAX = 5.0
LIVENESS = "liveness"  # selector data of the liveness fd (monitors carry their category)
BUS = "bus"  # selector data of the bus's fds (monitor fds carry their category)


@dataclass(frozen=True, slots=True)
class Settings:
    """Timing of the loop, in seconds. ``resync_interval`` 0 disables the safety net."""

    debounce: float = 0.05
    resync_interval: float = 300.0
    machines: bool = True


class Agent:
    """Keeps the published exposition equal to logind's state."""

    def __init__(
        self,
        settings: Settings,
        refresher: Refresher,
        collector: LogindCollector,
        publisher: Publisher,
        notify: Callable[[str], bool] = lambda state: False,
        watchdog_usec: int | None = None,
        bus: LogindBus | None = None,
        presence: PresenceFamilies | None = None,
    ) -> None:
        self.settings = settings
        self.totals = Totals()
        self.snapshot: Snapshot = EMPTY
        self._refresher = refresher
        refresher.cancelled = lambda: self._stop  # SIGTERM mid-refresh: exit within a second
        self._collector = collector
        self._publisher = publisher
        self._notify = notify
        self._watchdog = watchdog_usec / 2_000_000 if watchdog_usec else None
        self._base: Snapshot = EMPTY  # last snapshot with logind up: what differences start from
        categories = [*LOGIND_CATEGORIES] + ([MACHINE_CATEGORY] if settings.machines else [])
        self._watcher = Watcher(categories)
        self._liveness = Liveness()
        self._selector = selectors.DefaultSelector()
        self._registered: dict[int, str] = {}
        self._stop = False
        self._resync_requested = False
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._bus = bus
        self._presence = presence or PresenceFamilies()
        self._bus_registered: dict[int, int] = {}
        self._bus_epoch = -1  # the bus's fd_epoch when its fds were last registered

    # -- refreshing -------------------------------------------------------------------------------

    def refresh(self, reason: str, changes: Changes) -> None:
        """Build a new snapshot, count what changed, render and publish it.

        A failed listing keeps the previous snapshot and is counted as an error.
        """
        started = time.perf_counter()
        previous = self.snapshot
        if not previous.logind_up:
            changes = Changes(everything=True)  # nothing carried over from a stale view
        elif not changes.everything:
            # Every monitor open now was open since ``previous`` (one that opened or died
            # since asked for everything): its names are complete, its kind is not re-listed.
            changes = replace(changes, watched=frozenset(self._watcher.monitors))
        try:
            snapshot = self._refresher.refresh(previous, changes)
        except OSError as exc:
            self.totals.errors["list"] += 1
            log.warning("reading logind state failed: %s", exc)
            # Serve the previous view with the error counted (and become ready at start-up).
            self.publish()
            return
        except RefreshCancelled:
            return  # stopping: the loop ends before anything else is read
        totals = self.totals
        totals.refreshes[reason] += 1
        totals.read_races += snapshot.read_races
        for kind, count in snapshot.read_errors.items():
            totals.errors[kind] += count
        # Count starts and ends only from views of a running logind whose session, seat and user
        # directories are all watched: while one of them is gone (/run/systemd being restored,
        # seats first), sessions merely look absent and must not count as ended, then started.
        # (Files deleted one by one with the directories in place look exactly like logouts.)
        if snapshot.logind_up and self._watcher.watching(LOGIND_CATEGORIES):
            if self._base is not EMPTY:  # the first view of logind counts nothing as started
                change = difference(self._base, snapshot)
                totals.observe(change, snapshot.taken_at)
                for session in change.started:
                    log.debug("session started", extra=_session_fields(session.id, session.seat))
                for session in change.ended:
                    log.debug("session ended", extra=_session_fields(session.id, session.seat))
            self._base = snapshot
        if snapshot.logind_up != previous.logind_up or reason == "startup":
            log.info("logind state %s", "readable" if snapshot.logind_up else "not readable")
        self.snapshot = snapshot
        totals.refresh_duration.observe(time.perf_counter() - started)
        self.publish()
        if changes.everything:
            heap.trim()  # what a full read freed stays resident otherwise (heap.py)
        log.debug(
            "refreshed",
            extra={
                "reason": reason,
                "sessions": len(snapshot.sessions),
                "seconds": round(time.perf_counter() - started, 6),
            },
        )

    def publish(self) -> None:
        """Render the current snapshot, totals, logind liveness and the bus's newest view, and
        publish them."""
        view = self._bus.view() if self._bus is not None else None
        liveness = self._liveness.status()
        if view is not None:
            liveness = replace(liveness, bus_owner=view.logind_running)
        self._collector.update(self.snapshot, self.totals, liveness, self._bus_families(view))
        self._publisher.publish(self._collector.exposition())

    def _observe_liveness(self) -> None:
        """Read the liveness events; publish at once when logind started or stopped (no
        debounce: it is one link, and nothing else is re-read)."""
        before = self._liveness.status()
        if self._liveness.drain():
            after = self._liveness.status()
            log.info("logind %s", "running" if after.running else
                     "stopped" if after.running is False else "liveness unknown (files rule)")
            if after.restarts != before.restarts:
                log.info("logind restarted", extra={"restarts": after.restarts})
            self.publish()

    def once(self, bus_timeout: float) -> None:
        """Take and publish one view under the rules the loop uses (for --once, which has no
        loop): logind's liveness from its invocation link, the bus (waiting up to
        ``bus_timeout`` seconds for logind's answers), then a full read."""
        self._liveness.open()
        self._settle_bus(bus_timeout)
        self.refresh("startup", Changes(everything=True))

    def _settle_bus(self, timeout: float) -> None:
        """Connect to the bus and wait up to ``timeout`` seconds for logind's answers."""
        bus = self._bus
        if bus is None:
            return
        bus.start()
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            while not bus.settled and (left := deadline - time.monotonic()) > 0:
                for fd, events in bus.fds().items():
                    selector.register(fd, events)
                for key, ready in selector.select(left):
                    bus.handle(key.fd, ready)
                for key in list(selector.get_map().values()):
                    selector.unregister(key.fd)

    def _bus_families(self, view: Presence | None) -> list[Metric]:
        bus = self._bus
        if bus is None or view is None:
            return []
        self.totals.errors["dbus"] = bus.errors["dbus"]
        return self._presence.build(view, bus.messages, bus.dropped)

    # -- the loop ---------------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Ask the loop to end (safe from a signal handler)."""
        self._stop = True
        self._poke()

    def request_resync(self) -> None:
        """Ask for a full re-read at the next turn of the loop (safe from a signal handler)."""
        self._resync_requested = True
        self._poke()

    def _poke(self) -> None:
        with contextlib.suppress(BlockingIOError):  # already awake
            os.write(self._wake_w, b"\0")

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT stop the loop, SIGHUP asks for a resync (main thread only)."""

        def stop(signum: int, frame: FrameType | None) -> None:
            self.request_stop()

        def resync(signum: int, frame: FrameType | None) -> None:
            self.request_resync()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, resync)

    def start(self) -> None:
        """Open the monitors and take the first snapshot (before READY=1)."""
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._open_monitors()
        if self._bus is not None:
            self._bus.start()
            self._sync_bus()
        self.refresh("startup", Changes(everything=True))

    def run(self) -> None:
        """Loop until request_stop(); start() must have run. Sends WATCHDOG=1 when asked to."""
        settings = self.settings
        now = time.monotonic()
        pending = Changes()
        last_refresh = now
        retry_delay = RETRY_FIRST
        retry_at = now + retry_delay if not self._watcher.complete else None
        resync_at = now + settings.resync_interval if settings.resync_interval > 0 else None
        watchdog_at = now if self._watchdog else None
        bus = self._bus
        while not self._stop:
            monitor_at = self._watcher.next_timeout()
            bus_at = bus.deadline() if bus is not None else None
            deadlines = [
                d for d in (retry_at, resync_at, watchdog_at, monitor_at, bus_at) if d is not None
            ]
            if pending or (bus is not None and bus.changed):
                deadlines.append(last_refresh + settings.debounce)
            timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
            for key, events in self._selector.select(timeout):
                category = key.data
                if category is None:
                    self._drain_wake_pipe()
                    continue
                if category == BUS:
                    if bus is not None:
                        bus.handle(key.fd, events)
                        self._sync_bus()  # before a closed socket's fd number is reused
                    continue
                self.totals.wakeups += 1
                if category == LIVENESS:
                    self._observe_liveness()
                    continue
                pending.merge(self._watcher.drain(category))
            if self._stop:
                break
            now = time.monotonic()  # CLOCK_MONOTONIC, the clock of the monitors' timeouts
            if bus is not None and bus_at is not None and now >= bus_at:
                bus.tick(now)
                self._sync_bus()
            if monitor_at is not None and now >= monitor_at:
                pending.merge(self._watcher.expire(now))
            if retry_at is not None and now >= retry_at:
                if self._open_monitors():
                    # Unwatched until now: anything may have changed meanwhile.
                    pending.everything = True
                retry_delay = min(retry_delay * 2, RETRY_MAX)
                retry_at = None if self._watcher.complete else now + retry_delay
            elif retry_at is None and not self._watcher.complete:
                retry_delay = RETRY_FIRST
                retry_at = now + retry_delay
            self._sync_registrations()
            if self._resync_requested or (resync_at is not None and now >= resync_at):
                self._resync_requested = False
                if bus is not None:
                    bus.resync()
                    self._sync_bus()
                self._liveness.open()  # the link may be readable now (a remount, a new layout)
                self.refresh("resync", Changes(everything=True))
                pending = Changes()
                last_refresh = time.monotonic()
                if settings.resync_interval > 0:
                    resync_at = last_refresh + settings.resync_interval
            elif pending and now >= last_refresh + settings.debounce:
                self.refresh("event", pending)
                pending = Changes()
                last_refresh = time.monotonic()
            elif bus is not None and bus.changed and now >= last_refresh + settings.debounce:
                self.publish()
                last_refresh = time.monotonic()
            if watchdog_at is not None and self._watchdog is not None and now >= watchdog_at:
                self._notify("WATCHDOG=1")
                watchdog_at = now + self._watchdog

    def close(self) -> None:
        """Release the monitors, the liveness watch, the bus connection, the selector and the
        wake-up pipe."""
        self._watcher.close()
        self._liveness.close()
        if self._bus is not None:
            self._bus.close()
        self._selector.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def wakeup_fd(self) -> int:
        """The fd signal.set_wakeup_fd() should write to, so a signal always wakes the loop."""
        return self._wake_w

    def _drain_wake_pipe(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_r, 4096):
                pass

    def _open_monitors(self) -> bool:
        """Open missing monitors and the liveness watch; return whether any monitor opened."""
        before = len(self._watcher.monitors)
        for category, exc in self._watcher.open_missing():
            log.debug("monitor %s unavailable: %s", category, exc)
        self._liveness.open()
        self._sync_registrations()
        return len(self._watcher.monitors) > before

    def _sync_bus(self) -> None:
        """Make the selector watch exactly the fds (and events) the bus wants now."""
        assert self._bus is not None
        wanted = self._bus.fds()
        renewed = self._bus.fd_epoch != self._bus_epoch
        if wanted == self._bus_registered and not renewed:
            return
        if renewed:  # an fd number may now name another file: register everything anew
            self._bus_epoch = self._bus.fd_epoch
            for fd in self._bus_registered:
                with contextlib.suppress(KeyError, ValueError, OSError):
                    self._selector.unregister(fd)
            self._bus_registered = {}
        for fd in self._bus_registered.keys() - wanted.keys():
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._selector.unregister(fd)
        for fd, events in wanted.items():
            if fd not in self._bus_registered:
                self._selector.register(fd, events, BUS)
            elif self._bus_registered[fd] != events:
                self._selector.modify(fd, events, BUS)
        self._bus_registered = wanted

    def _sync_registrations(self) -> None:
        wanted = self._watcher.fds()
        monitors = len(wanted)
        liveness_fd = self._liveness.fileno()
        if liveness_fd is not None:
            wanted[liveness_fd] = LIVENESS
        if wanted == self._registered:
            return
        for fd in self._registered:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._selector.unregister(fd)
        for fd, category in wanted.items():
            self._selector.register(fd, selectors.EVENT_READ, category)
        if monitors < sum(1 for c in self._registered.values() if c != LIVENESS):
            self.totals.errors["monitor"] += 1
            log.warning("lost sd-login monitors; retrying", extra={"open": sorted(wanted.values())})
        self._registered = wanted


def _session_fields(session: str, seat: str) -> dict[str, str]:
    return {"session": session, "seat": seat}
