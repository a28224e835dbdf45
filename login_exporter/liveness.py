"""Is systemd-logind running? From the invocation link systemd keeps while a unit runs.

A stopped logind leaves its state files behind, so they cannot tell. While a unit runs, systemd
keeps ``/run/systemd/units/invocation:UNIT`` pointing at the unit's invocation id; the link goes
when the unit stops and comes back with a new id when it starts. It lies inside the /run/systemd
the exporter already reads. It is systemd's bookkeeping rather than a documented API, so where it
cannot be read (no such directory: an older layout, or only part of /run/systemd mounted) the
"files" rule stays in force: logind is up while its state is readable (seat0 exists).

Watching costs no wake-ups while nothing happens to logind: while the link exists only the link
itself is watched (IN_DONT_FOLLOW), and the directory, where every unit's links come and go, only
while it is missing.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

from login_exporter import inotify

UNITS_DIRECTORY = "/run/systemd/units"
LOGIND_UNIT = "systemd-logind.service"

RULE_UNIT = "unit"  # the invocation link is watched
RULE_FILES = "files"  # fallback: seat0's state file exists

_DIRECTORY_EVENTS = inotify.IN_CREATE | inotify.IN_MOVED_TO | inotify.IN_ONLYDIR
_LINK_EVENTS = (
    inotify.IN_ATTRIB | inotify.IN_DELETE_SELF | inotify.IN_MOVE_SELF | inotify.IN_DONT_FOLLOW
)


@dataclass(frozen=True, slots=True)
class Status:
    """What the collector publishes: the rule in force, whether logind runs under it (None under
    the files rule: the snapshot says), the starts seen since the exporter's first view, and
    whether org.freedesktop.login1 has an owner (None: no bus connected, or not asked)."""

    rule: str = RULE_FILES
    running: bool | None = None
    restarts: int = 0
    bus_owner: bool | None = None

    def up(self, state_readable: bool) -> bool:
        """logind_up: the rule's verdict (``state_readable``, seat0 exists, under the files
        rule), and, while the bus is connected, logind owning its bus name too."""
        up = bool(self.running) if self.rule == RULE_UNIT else state_readable
        return up and self.bus_owner is not False


FILES_RULE = Status()  # before the first look, or where the link cannot be read


class Liveness:
    """Watches logind's invocation link with an inotify fd of its own (:meth:`fileno`)."""

    def __init__(self, directory: str = UNITS_DIRECTORY, unit: str = LOGIND_UNIT) -> None:
        self.directory = directory
        self.link = os.path.join(directory, f"invocation:{unit}")
        self._fd: int | None = None
        self._directory_wd: int | None = None
        self._link_wd: int | None = None
        self._invocation: str | None = None  # current id; None while logind is stopped
        self._last_invocation: str | None = None  # newest id ever seen
        self._seen = False
        self._restarts = 0

    def fileno(self) -> int | None:
        """The inotify fd to poll, or None while the files rule is in force."""
        return self._fd

    def status(self) -> Status:
        """Return the rule in force, logind's state under it and the restarts counted."""
        if self._fd is None:
            return Status(RULE_FILES, None, self._restarts)
        return Status(RULE_UNIT, self._invocation is not None, self._restarts)

    def open(self) -> bool:
        """Start watching unless already watching; return whether the unit rule is in force.

        Raises nothing: a missing or unreadable directory leaves the files rule in force.
        """
        if self._fd is not None:
            return True
        try:
            self._fd = inotify.init()
        except OSError:
            return False
        self._rearm()
        return self._fd is not None

    def drain(self) -> bool:
        """Read the pending events and look at the link again; return whether status() changed.

        Raises nothing.
        """
        if self._fd is None:
            return False
        before = self.status()
        try:
            inotify.read_events(self._fd)
        except OSError:
            self.close()
            return before != self.status()
        # Any event means "look again": which one it was does not matter, the link says.
        self._rearm()
        return before != self.status()

    def close(self) -> None:
        """Stop watching (the files rule is in force until open() succeeds again)."""
        fd, self._fd = self._fd, None
        self._directory_wd = self._link_wd = None
        if fd is not None:
            os.close(fd)

    def _read_link(self) -> str | None:
        try:
            return os.readlink(self.link)
        except FileNotFoundError:
            return None

    def _rearm(self) -> None:
        """Watch the link while it exists, the directory while it does not, and record what
        the link says. A change between reading the link and adding a watch is caught by
        reading it again; a directory that cannot be watched ends in the files rule."""
        assert self._fd is not None
        fd = self._fd
        for _ in range(16):
            try:
                target = self._read_link()
            except OSError:
                break  # EACCES, ENOTDIR, ...: unreadable
            if target is None:
                self._link_wd = None  # its inode is gone and the kernel dropped the watch
                if self._directory_wd is None:
                    try:
                        self._directory_wd = inotify.add_watch(
                            fd, self.directory, _DIRECTORY_EVENTS
                        )
                    except OSError:
                        break  # no directory: an older layout, or /run/systemd going away
                    continue  # the link may have appeared before the watch was in place
            else:
                try:
                    wd = inotify.add_watch(fd, self.link, _LINK_EVENTS)
                except FileNotFoundError:
                    continue  # gone between readlink and add_watch: look again
                except OSError:
                    break
                if self._read_link() != target:
                    continue  # replaced meanwhile: watch the new one
                self._link_wd = wd
                if self._directory_wd is not None:
                    with contextlib.suppress(OSError):  # EINVAL: already gone
                        inotify.rm_watch(fd, self._directory_wd)
                    self._directory_wd = None
            self._observe(target)
            return
        self.close()  # unreadable, or changing faster than we can look: files rule for now

    def _observe(self, invocation: str | None) -> None:
        if invocation is not None and invocation != self._last_invocation:
            if self._seen:
                self._restarts += 1
            self._last_invocation = invocation
        self._invocation = invocation
        self._seen = True
