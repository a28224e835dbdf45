"""Wait for a bus socket to appear (or change) without waking up meanwhile.

When the bus's socket is missing, refuses or denies us, nothing but a change of it can make
the next attempt succeed: dbus-daemon creates its socket anew when it starts, an admin fixes
its mode. So instead of retrying on a timer, the follower watches the nearest directory that
exists on the socket's path (its own directory, or an ancestor while that is missing) and tries
again when an entry on the way to the socket is created, renamed into place or changes mode.
"""

from __future__ import annotations

import contextlib
import os

from login_exporter import inotify

IN_ATTRIB = 0x4
_EVENTS = inotify.IN_CREATE | inotify.IN_MOVED_TO | IN_ATTRIB | inotify.IN_DELETE_SELF \
    | inotify.IN_MOVE_SELF


class SocketWatch:
    """An inotify fd that becomes readable when the socket at ``path``, or a directory on its
    way, may have appeared or changed. Raises OSError when inotify is unavailable or no
    directory on the path can be watched."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self._fd = inotify.init()
        self._watched = ""
        try:
            self._arm()
        except OSError:
            self.close()
            raise

    def _arm(self) -> None:
        """Watch the nearest existing directory on the way to the socket."""
        directory = os.path.dirname(self.path)
        while True:
            try:
                inotify.add_watch(self._fd, directory, _EVENTS)
            except FileNotFoundError:
                if directory == "/":
                    raise
                directory = os.path.dirname(directory)
                continue
            self._watched = directory
            return

    def fileno(self) -> int:
        """The inotify fd to register for reading."""
        return self._fd

    def drain(self) -> bool:
        """Read every pending event; return whether one names the next step on the way to the
        socket (or the watched directory itself went): then try to connect again."""
        try:
            events = inotify.parse_events(inotify.read_events(self._fd))
        except (OSError, ValueError):
            return True
        rest = os.path.relpath(self.path, self._watched).split(os.sep)
        for _wd, mask, name in events:
            if name == rest[0] or mask & (inotify.IN_DELETE_SELF | inotify.IN_MOVE_SELF):
                return True
        return False

    def close(self) -> None:
        """Close the inotify fd (idempotent)."""
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1
