"""Wake when logind writes or removes its scheduled-shutdown file.

logind announces no change of its ScheduledShutdown property on the bus (systemd 252: the
property has no emits-change flag), but it writes /run/systemd/shutdown/scheduled (a temporary
file renamed into place) when a shutdown is scheduled and deletes it when one is cancelled.
An inotify watch on that directory tells the bus follower when to read the property again.
The directory may not exist yet: then /run/systemd is watched for it to appear.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os

from login_exporter.watch import IN_DELETE, IN_MOVED_TO, parse_events

IN_CLOSE_WRITE = 0x8
IN_CREATE = 0x100
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
SHUTDOWN_DIR = "/run/systemd/shutdown"

_libc = ctypes.CDLL(None, use_errno=True)


class DirectoryWatch:
    """An inotify fd that becomes readable when ``directory``'s files are renamed into place,
    written, created or deleted (or when the directory itself appears in its parent)."""

    def __init__(self, directory: str = SHUTDOWN_DIR) -> None:
        self.directory = directory
        fd = _libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"inotify_init1: {os.strerror(err)}")
        self._fd: int = fd
        self.watching_directory = False
        self._watch()

    def _add(self, path: str, mask: int) -> bool:
        wd = _libc.inotify_add_watch(self._fd, os.fsencode(path), mask)
        return bool(wd >= 0)

    def _watch(self) -> None:
        mask = IN_MOVED_TO | IN_DELETE | IN_CLOSE_WRITE | IN_CREATE | IN_DELETE_SELF | IN_MOVE_SELF
        self.watching_directory = self._add(self.directory, mask)
        if not self.watching_directory:
            # Not there yet: watch the parent for it to be created (or renamed) into place.
            self._add(os.path.dirname(self.directory), IN_CREATE | IN_MOVED_TO)

    def fileno(self) -> int:
        """The inotify fd to register for reading."""
        return self._fd

    def drain(self) -> bool:
        """Read every pending event; return whether any may concern the watched directory.

        Re-arms the watch on the directory when it (re)appeared.
        """
        data = bytearray()
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(self._fd, 65536):
                data += chunk
        try:
            events = parse_events(bytes(data))
        except ValueError:
            return True
        base = os.path.basename(self.directory)
        relevant = False
        for mask, name in events:
            if not self.watching_directory:
                if name == base:
                    self._watch()
                    relevant = True
            elif not name.startswith("."):  # the temporary files logind renames from
                relevant = True
            if mask & (IN_DELETE_SELF | IN_MOVE_SELF):
                self._watch()
        return relevant

    def close(self) -> None:
        """Close the inotify fd (idempotent)."""
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1


def open_watch(directory: str = SHUTDOWN_DIR) -> DirectoryWatch | None:
    """Return a watch, or None when inotify is unavailable (out of instances)."""
    try:
        return DirectoryWatch(directory)
    except OSError as exc:
        if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOSYS):
            return None
        raise
