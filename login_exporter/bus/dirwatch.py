"""Wake when logind writes or removes its scheduled-shutdown file.

logind announces no change of its ScheduledShutdown property on the bus (systemd 252: the
property has no emits-change flag), but it writes /run/systemd/shutdown/scheduled (a temporary
file renamed into place) when a shutdown is scheduled and deletes it when one is cancelled.
An inotify watch on that directory tells the bus follower when to read the property again.
The directory may not exist yet: then /run/systemd is watched for it to appear.
"""

from __future__ import annotations

import contextlib
import errno
import os

from login_exporter import inotify

IN_CLOSE_WRITE = 0x8
_DIRECTORY_EVENTS = (
    inotify.IN_MOVED_TO | inotify.IN_DELETE | IN_CLOSE_WRITE | inotify.IN_CREATE
    | inotify.IN_DELETE_SELF | inotify.IN_MOVE_SELF
)
SHUTDOWN_DIR = "/run/systemd/shutdown"


class DirectoryWatch:
    """An inotify fd that becomes readable when ``directory``'s files are renamed into place,
    written, created or deleted (or when the directory itself appears in its parent)."""

    def __init__(self, directory: str = SHUTDOWN_DIR) -> None:
        self.directory = directory
        self._fd = inotify.init()
        self.watching_directory = False
        self._watch()

    def _watch(self) -> None:
        try:
            inotify.add_watch(self._fd, self.directory, _DIRECTORY_EVENTS)
            self.watching_directory = True
        except OSError:
            self.watching_directory = False
            # Not there yet: watch the parent for it to be created (or renamed) into place.
            with contextlib.suppress(OSError):
                inotify.add_watch(self._fd, os.path.dirname(self.directory),
                                  inotify.IN_CREATE | inotify.IN_MOVED_TO | inotify.IN_ONLYDIR)

    def fileno(self) -> int:
        """The inotify fd to register for reading."""
        return self._fd

    def drain(self) -> bool:
        """Read every pending event; return whether any may concern the watched directory.

        Re-arms the watch on the directory when it (re)appeared.
        """
        try:
            events = inotify.parse_events(inotify.read_events(self._fd))
        except (OSError, ValueError):
            return True
        base = os.path.basename(self.directory)
        relevant = False
        for _wd, mask, name in events:
            if not self.watching_directory:
                if name == base:
                    self._watch()
                    relevant = True
            elif not name.startswith("."):  # the temporary files logind renames from
                relevant = True
            if mask & (inotify.IN_DELETE_SELF | inotify.IN_MOVE_SELF):
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
