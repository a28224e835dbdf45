"""One sd-login monitor per category, and the names its inotify events carry.

sdlogin.Monitor gives an inotify fd watching one state directory for IN_MOVED_TO | IN_DELETE
(libsystemd's) and IN_CREATE (ours: systemd 262 links new files into place). Reading the events
(instead of only flushing) tells which session, seat, user or machine file appeared, was renamed
into place or deleted, so a refresh can read just those. Anything unexpected (queue overflow, a
watch removed, bytes that do not parse) asks for a full re-read: correctness never depends on the
names.
"""

from __future__ import annotations

from collections.abc import Iterable

from login_exporter import sdlogin
from login_exporter.inotify import (
    IN_CREATE,
    IN_DELETE,
    IN_IGNORED,
    IN_MOVED_TO,
    IN_Q_OVERFLOW,
    IN_UNMOUNT,
    parse_events,
    read_events,
)
from login_exporter.state import Changes

# The monitor categories are the binding's (sdlogin.MONITOR_DIRECTORIES: category -> directory):
# logind writes three, machined the fourth.
MACHINE_CATEGORY = "machine"
LOGIND_CATEGORIES = tuple(c for c in sdlogin.MONITOR_DIRECTORIES if c != MACHINE_CATEGORY)

def changes_from_events(category: str, events: Iterable[tuple[int, str]]) -> tuple[Changes, bool]:
    """Return the objects named by ``events`` of one category, and whether the watch is dead
    (IN_IGNORED / IN_UNMOUNT: the directory went away and the monitor must be re-created)."""
    changes, dead = Changes(), False
    for mask, name in events:
        if mask & (IN_IGNORED | IN_UNMOUNT):
            dead = True
            changes.everything = True
        if mask & IN_Q_OVERFLOW:
            changes.everything = True
        if not mask & (IN_MOVED_TO | IN_CREATE | IN_DELETE) or not name or name[0] in ".#":
            continue  # temporary files (".#NAME…" renamed from, "#N" linked from), clean-up
        if category == "session" and "." not in name:  # skips the sessions' *.ref FIFOs
            changes.sessions.add(name)
        elif category == "seat":
            changes.seats.add(name)
        elif category == "uid" and name.isdigit():
            changes.users.add(int(name))
        elif category == "machine" and not name.startswith("unit:"):
            changes.machines.add(name)
    return changes, dead


class Watcher:
    """The monitors of the wanted categories; each is opened independently and may be missing
    (its directory does not exist yet: logind or machined not running)."""

    def __init__(self, categories: Iterable[str]) -> None:
        self.categories = tuple(categories)
        self.monitors: dict[str, sdlogin.Monitor] = {}

    @property
    def complete(self) -> bool:
        """Whether every wanted monitor is open."""
        return len(self.monitors) == len(self.categories)

    def watching(self, categories: Iterable[str]) -> bool:
        """Whether the monitors of all these categories are open."""
        return all(category in self.monitors for category in categories)

    def open_missing(self) -> list[tuple[str, OSError]]:
        """Try to open every monitor not open yet. Returns the failures (category, error)."""
        failures = []
        for category in self.categories:
            if category not in self.monitors:
                try:
                    self.monitors[category] = sdlogin.Monitor(category)
                except OSError as exc:
                    failures.append((category, exc))
        return failures

    def fds(self) -> dict[int, str]:
        """Return fd -> category of the open monitors."""
        return {monitor.fileno(): category for category, monitor in self.monitors.items()}

    def drain(self, category: str) -> Changes:
        """Read every pending event of one monitor (emptying it) and return what they name.

        A watch that died is closed (re-open it with open_missing()). Raises nothing: an
        unreadable fd yields ``Changes(everything=True)``.
        """
        monitor = self.monitors.get(category)
        if monitor is None:
            return Changes(everything=True)
        try:
            data = read_events(monitor.fileno())
        except OSError:
            self.close(category)
            return Changes(everything=True)
        try:
            events = parse_events(data)
            changes, dead = changes_from_events(category, ((m, n) for _, m, n in events))
        except ValueError:
            changes, dead = Changes(everything=True), False
        # No sd_login_monitor_flush() here: reading until EAGAIN already emptied the fd, and a
        # flush would silently discard an IN_IGNORED that arrived since (a watch that died while
        # /run/systemd/* was being removed), leaving a monitor that never wakes again.
        if dead:
            self.close(category)
        return changes

    def next_timeout(self) -> float | None:
        """Return the earliest CLOCK_MONOTONIC time, in seconds, at which a monitor asks to be
        woken (sd_login_monitor_get_timeout), or None when none asks (libsystemd so far never
        does, but the API allows it)."""
        times = [t for m in self.monitors.values() if (t := m.get_timeout()) is not None]
        return min(times) / 1e6 if times else None

    def expire(self, now: float) -> Changes:
        """Drain and flush every monitor whose timeout is at or before ``now`` (CLOCK_MONOTONIC
        seconds), as sd_login_monitor_get_timeout(3) asks; return what their events name."""
        changes = Changes()
        for category, monitor in list(self.monitors.items()):
            timeout = monitor.get_timeout()
            if timeout is not None and timeout / 1e6 <= now:
                changes.merge(self.drain(category))
                if category in self.monitors:
                    monitor.flush()
        return changes

    def close(self, category: str | None = None) -> None:
        """Close one monitor, or all of them."""
        for name in [category] if category else list(self.monitors):
            monitor = self.monitors.pop(name, None)
            if monitor is not None:
                monitor.close()
