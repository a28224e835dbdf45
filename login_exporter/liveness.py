"""Is logind running? From the invocation link systemd keeps while a unit runs, or elogind's pid
file where there is no systemd.

A stopped logind leaves its state files behind, so they cannot tell. Three rules:

- **unit**: while a unit runs, systemd keeps ``/run/systemd/units/invocation:UNIT`` pointing at
  the unit's invocation id; the link goes when the unit stops and comes back with a new id when it
  starts. It lies inside the /run/systemd the exporter already reads. It is systemd's bookkeeping
  rather than a documented API.
- **pidfile** (no ``/run/systemd/units``: no systemd, elogind is the logind): elogind writes its
  pid to ``/run/elogind.pid`` when it starts and removes the file when it stops. A new pid is a
  start. A logind killed outright (SIGKILL, a crash) leaves the file behind: a pidfd of the
  process says it exited, where the process can be seen (same pid namespace, named elogind*).
- **files** (neither can be read, or elogind's pid file has not been seen yet): logind is up
  while its state is readable (seat0 exists).

Watching costs no wake-ups while nothing happens to logind: while the link (pid file) exists only
it is watched (IN_DONT_FOLLOW), and its directory, where other units' links (other daemons'
files) come and go, only while it is missing. One epoll fd (:meth:`Liveness.fileno`) carries the
inotify fd and the pidfd.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
from dataclasses import dataclass

from login_exporter import inotify

UNITS_DIRECTORY = "/run/systemd/units"
LOGIND_UNIT = "systemd-logind.service"

ELOGIND_PID_FILE = "/run/elogind.pid"

RULE_UNIT = "unit"  # the invocation link is watched
RULE_PIDFILE = "pidfile"  # elogind's pid file (and its process) is watched
RULE_FILES = "files"  # fallback: seat0's state file exists
RULES = (RULE_UNIT, RULE_PIDFILE, RULE_FILES)

_DIRECTORY_EVENTS = inotify.IN_CREATE | inotify.IN_MOVED_TO | inotify.IN_ONLYDIR
_LINK_EVENTS = (
    inotify.IN_ATTRIB | inotify.IN_DELETE_SELF | inotify.IN_MOVE_SELF | inotify.IN_DONT_FOLLOW
)
_IN_MODIFY = 0x2
_IN_CLOSE_WRITE = 0x8
# A pid file may also be rewritten in place (truncate, write) rather than replaced.
_PID_FILE_EVENTS = _LINK_EVENTS | _IN_MODIFY | _IN_CLOSE_WRITE


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
        up = bool(self.running) if self.rule != RULE_FILES else state_readable
        return up and self.bus_owner is not False


FILES_RULE = Status()  # before the first look, or where the link cannot be read


class Liveness:
    """Watches logind's invocation link, or else elogind's pid file, through one epoll fd of its
    own (:meth:`fileno`)."""

    def __init__(
        self,
        directory: str = UNITS_DIRECTORY,
        unit: str = LOGIND_UNIT,
        pid_file: str = ELOGIND_PID_FILE,
    ) -> None:
        self.directory = directory
        self.link = os.path.join(directory, f"invocation:{unit}")
        self.pid_file = pid_file
        self._epoll: select.epoll | None = None
        self._fd: int | None = None  # inotify
        self._mode: str | None = None  # RULE_UNIT or RULE_PIDFILE while watching
        self._last_mode: str | None = None  # the one watched last
        self._directory_wd: int | None = None
        self._link_wd: int | None = None
        self._pidfd: int | None = None
        self._exited = False  # the pidfd said the pid file's process exited
        self._current: str | None = None  # invocation id or pid; None while logind is stopped
        self._last: str | None = None  # newest one ever seen
        self._pid_file_seen = False
        self._seen = False
        self._restarts = 0

    def fileno(self) -> int | None:
        """The epoll fd to poll, or None while nothing is watched (files rule)."""
        return self._epoll.fileno() if self._epoll is not None else None

    def status(self) -> Status:
        """Return the rule in force, logind's state under it and the restarts counted."""
        if self._mode == RULE_UNIT:
            return Status(RULE_UNIT, self._current is not None, self._restarts)
        if self._mode == RULE_PIDFILE and self._pid_file_seen:
            return Status(RULE_PIDFILE, self._current is not None and not self._exited,
                          self._restarts)
        # Not watching, or waiting for elogind's first pid file: the files decide.
        return Status(RULE_FILES, None, self._restarts)

    def open(self) -> bool:
        """Start watching unless already watching; return whether anything is watched (the unit
        rule, else the pidfile rule or the wait for elogind's pid file).

        Raises nothing: where neither the units directory nor the pid file's directory can be
        watched, the files rule stays in force.
        """
        if (self._mode == RULE_PIDFILE and not self._pid_file_seen
                and os.path.isdir(self.directory)):
            self.close()  # waiting for elogind, but systemd's units are readable now
        if self._epoll is not None:
            return True
        for mode in (RULE_UNIT, RULE_PIDFILE):
            try:
                self._epoll = select.epoll()
                self._fd = inotify.init()
                self._epoll.register(self._fd, select.EPOLLIN)
            except OSError:
                self.close()
                return False
            kept = (self._seen, self._last, self._current, self._pid_file_seen)
            if mode != self._last_mode:
                # Another rule's ids (an invocation id, a pid) say nothing of this one's.
                self._seen, self._last, self._current = False, None, None
            self._mode = mode
            if self._rearm():
                self._last_mode = mode
                return True
            self.close()
            self._seen, self._last, self._current, self._pid_file_seen = kept
        return False

    def drain(self) -> bool:
        """Read the pending events and look again; return whether status() changed.

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
        self._check_pidfd()
        # Any event means "look again": which one it was does not matter, the file says.
        if not self._rearm():
            self.close()
        return before != self.status()

    def close(self) -> None:
        """Stop watching (the files rule is in force until open() succeeds again)."""
        self._drop_pidfd()
        fd, self._fd = self._fd, None
        epoll, self._epoll = self._epoll, None
        self._directory_wd = self._link_wd = None
        self._mode = None
        if fd is not None:
            os.close(fd)
        if epoll is not None:
            epoll.close()

    # -- both rules -------------------------------------------------------------------------------

    def _rearm(self) -> bool:
        """Watch the watched file (the link, the pid file) while it exists, its directory while it
        does not, and record what the file says. A change between reading the file and adding a
        watch is caught by reading it again. Return False when the directory cannot be watched
        or the file cannot be read (the caller ends in the files rule)."""
        assert self._fd is not None
        fd = self._fd
        unit = self._mode == RULE_UNIT
        path = self.link if unit else self.pid_file
        directory = self.directory if unit else os.path.dirname(self.pid_file)
        events = _LINK_EVENTS if unit else _PID_FILE_EVENTS
        for _ in range(16):
            try:
                value = self._read(path, unit)
            except OSError:
                return False  # EACCES, ENOTDIR, ...: unreadable
            if value is None:
                self._link_wd = None  # its inode is gone and the kernel dropped the watch
                if self._directory_wd is None:
                    try:
                        self._directory_wd = inotify.add_watch(fd, directory, _DIRECTORY_EVENTS)
                    except OSError:
                        return False  # no directory: an older layout, or it is going away
                    continue  # the file may have appeared before the watch was in place
            else:
                try:
                    wd = inotify.add_watch(fd, path, events)
                except FileNotFoundError:
                    continue  # gone between reading and add_watch: look again
                except OSError:
                    return False
                try:
                    again = self._read(path, unit)
                except OSError:
                    return False
                if again != value:
                    continue  # replaced meanwhile: watch the new one
                self._link_wd = wd
                if self._directory_wd is not None:
                    with contextlib.suppress(OSError):  # EINVAL: already gone
                        inotify.rm_watch(fd, self._directory_wd)
                    self._directory_wd = None
            self._observe(value)
            return True
        return False  # changing faster than we can look: files rule for now

    @staticmethod
    def _read(path: str, link: bool) -> str | None:
        """Return the link's target or the pid file's first word ("" when empty), None when
        missing. Raises OSError when unreadable."""
        try:
            if link:
                return os.readlink(path)
            with open(path, "rb") as f:
                words = f.read(64).split()
        except FileNotFoundError:
            return None
        return words[0].decode("ascii", "replace") if words else ""

    def _observe(self, value: str | None) -> None:
        if self._mode == RULE_PIDFILE and value == "":
            return  # created, not yet written: the write wakes us again
        if self._mode == RULE_PIDFILE:
            if value is not None:
                self._pid_file_seen = True
            if value != self._current:
                self._watch_process(value)
        if value is not None and value != self._last:
            if self._seen:
                self._restarts += 1
            self._last = value
        self._current = value
        self._seen = True

    # -- the pidfile rule's process ---------------------------------------------------------------

    def _watch_process(self, pid_text: str | None) -> None:
        """Follow the pid file's process with a pidfd where it can be seen as elogind's;
        elsewhere (another pid namespace, an unparsable file) the file alone decides."""
        self._drop_pidfd()
        self._exited = False
        if not pid_text or not pid_text.isdigit() or self._epoll is None:
            return
        pid = int(pid_text)
        try:
            with open(f"/proc/{pid}/comm", "rb") as f:
                name = f.read().strip()
        except OSError:
            return  # not visible here (the pid is another namespace's, or already gone)
        if not name.startswith(b"elogind"):
            return  # another namespace's pid, or a stale file whose pid was reused
        try:
            self._pidfd = os.pidfd_open(pid)
        except OSError as exc:
            if exc.errno == errno.ESRCH:
                self._exited = True  # exited between reading comm and opening it
            return
        try:
            self._epoll.register(self._pidfd, select.EPOLLIN)
        except OSError:
            self._drop_pidfd()
            return
        self._check_pidfd()

    def _check_pidfd(self) -> None:
        """Mark the process exited once its pidfd is readable, and stop polling it (it stays
        readable for good)."""
        if self._pidfd is None:
            return
        readable, _, _ = select.select([self._pidfd], [], [], 0)
        if readable:
            self._exited = True
            self._drop_pidfd()

    def _drop_pidfd(self) -> None:
        pidfd, self._pidfd = self._pidfd, None
        if pidfd is not None:
            if self._epoll is not None:
                with contextlib.suppress(OSError, ValueError):
                    self._epoll.unregister(pidfd)
            os.close(pidfd)
