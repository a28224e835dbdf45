"""libsystemd's sd-login API for Python: a drop-in superset of python-systemd's ``systemd.login``.

``machine_names()``, ``seats()``, ``sessions()``, ``uids()`` and ``Monitor`` behave as in
``systemd.login``. Beyond them every sd-login getter for sessions, seats, users, machines and pids
is bound, with Pythonic values: bool for booleans, seconds since the epoch for times, None where
libsystemd reports "no data" (ENODATA).

Errors: a negative return from libsystemd raises OSError carrying that errno and a message naming
the call; EINVAL raises :class:`InvalidArgumentError`, which is both an OSError and a ValueError.
Names that cannot reach C intact (embedded NUL, unencodable) raise ValueError before any call.
Functions newer than the running libsystemd raise :class:`UnsupportedError` (a NotImplementedError).

The library is libsystemd.so.0, else elogind's libelogind.so.0 (then the unversioned names), or
the file named by $LOGIN_EXPORTER_SDLOGIN_LIBRARY; :func:`library` says which was loaded.
"""

from __future__ import annotations

import errno
import time
from typing import Any, NoReturn, SupportsIndex

from login_exporter import inotify
from login_exporter.sdlogin import _ffi, getters
from login_exporter.sdlogin._call import (
    InvalidArgumentError,
    UnsupportedError,
    _encode,
    _fail,
    _function,
    _strv_call,
    _take_array,
    shown,
)
from login_exporter.sdlogin._ffi import ffi
from login_exporter.sdlogin.getters import *  # noqa: F403 (its __all__, re-exported below)

__all__ = [
    "InvalidArgumentError",
    "Monitor",
    "UnsupportedError",
    "abi_version",
    "capabilities",
    "library",
    "library_path",
    "machine_names",
    "seats",
    "sessions",
    "uids",
]
__all__ += getters.__all__

# As python-systemd's systemd.login.__version__, an integer-like string: the newest systemd
# release whose sd-login calls this binding covers. The exporter's own version is
# login_exporter.__version__.
__version__ = str(max(_ffi.OPTIONAL_FUNCTIONS.values()))


# -- python-systemd's systemd.login ---------------------------------------------------------------


def machine_names() -> list[str]:
    """Return the names of running VMs and containers (sd_get_machine_names). Raises OSError."""
    return _strv_call("sd_get_machine_names")


def seats() -> list[str]:
    """Return the names of the available local seats (sd_get_seats). Raises OSError."""
    return _strv_call("sd_get_seats")


def sessions() -> list[str]:
    """Return the ids of current login sessions (sd_get_sessions). Raises OSError."""
    return _strv_call("sd_get_sessions")


def uids() -> list[int]:
    """Return the uids of users with login state (sd_get_uids). Raises OSError."""
    out = ffi.new("uid_t **")
    result = _function("sd_get_uids")(out)
    if result < 0:
        _fail(result, "sd_get_uids", "")
    return _take_array(out[0], result)


# Monitor category -> the directory sd_login_monitor_new() watches (None: all four).
MONITOR_DIRECTORIES = {
    "session": "/run/systemd/sessions",
    "seat": "/run/systemd/seats",
    "uid": "/run/systemd/users",
    "machine": "/run/systemd/machines",
}


def _watch_created_names(fd: int, category: str | None) -> None:
    """Extend the monitor's inotify watches to IN_CREATE.

    libsystemd watches IN_MOVED_TO|IN_DELETE only, which misses a state file that systemd 262
    creates by linking an O_TMPFILE into place (no rename). IN_MASK_ADD keeps libsystemd's own
    bits on the same watch. Raises OSError (ENOENT when a directory vanished meanwhile).
    """
    paths = MONITOR_DIRECTORIES.values() if category is None else [MONITOR_DIRECTORIES[category]]
    for path in paths:
        inotify.add_watch(fd, path, inotify.IN_CREATE | inotify.IN_MASK_ADD | inotify.IN_ONLYDIR)


class _Default:
    """A read-only default that an instance attribute of the same name shadows (a non-data
    descriptor): python-systemd's Monitor has no ``closed`` or ``category``, so its subclasses may
    set their own, before or after the base __init__, and must keep what they set."""

    def __init__(self, getter: Any) -> None:
        self._getter = getter
        self.__doc__ = getter.__doc__

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        return self if instance is None else self._getter(instance)


class Monitor:
    """A login-state monitor: an fd to poll that wakes when sessions, seats, users or machines
    change (sd_login_monitor_new). ``category`` is "session", "seat", "uid", "machine" or None
    (all four). Unlike libsystemd's own monitor it also wakes when a new file is linked into place
    without a rename (systemd 262 and newer), and so also for the temporary files that older
    releases create before renaming them.

    Raises InvalidArgumentError (a ValueError) for an unknown category, OSError for any other
    failure (e.g. ENOENT when /run/systemd's directories are missing). Methods of a closed monitor
    (or of one whose __init__ never ran) raise InvalidArgumentError (EINVAL, as python-systemd),
    except flush() and close(), which do nothing. Calling __init__ again opens the new monitor
    first: on failure the old one stays as it was; on success the old one is freed. ``with`` and
    garbage collection free the monitor without calling a subclass's close(), as python-systemd.
    Copying and pickling raise TypeError: a copy would free the monitor the original uses.
    """

    # Class-level defaults: an instance that never ran __init__ is a closed monitor.
    _monitor: Any = None
    _category: str | None = None

    def __init__(self, category: str | None = None) -> None:
        encoded = ffi.NULL if category is None else _encode(category, "category")
        out = ffi.new("sd_login_monitor **")
        result = _function("sd_login_monitor_new")(encoded, out)
        if result == -errno.EINVAL:
            raise InvalidArgumentError(
                errno.EINVAL,
                f"unknown monitor category {shown(category)} (session, seat, uid, machine)",
            )
        if result < 0:
            _fail(result, "sd_login_monitor_new", category)
        monitor = out[0]
        try:
            _watch_created_names(_function("sd_login_monitor_get_fd")(monitor), category)
        except OSError:
            _function("sd_login_monitor_unref")(monitor)
            raise
        Monitor._release(self)
        self._monitor = monitor
        self._category = category

    def _live(self) -> Any:
        if self._monitor is None:
            raise InvalidArgumentError(errno.EINVAL, "operation on a closed Monitor")
        return self._monitor

    def fileno(self) -> int:
        """Return the fd to poll (sd_login_monitor_get_fd). Raises OSError (EINVAL if closed)."""
        result = int(_function("sd_login_monitor_get_fd")(self._live()))
        if result < 0:
            _fail(result, "sd_login_monitor_get_fd", self._category)
        return result

    def flush(self) -> None:
        """Reset the wake-up state (sd_login_monitor_flush); closed, do nothing. Raises OSError."""
        if self._monitor is None:
            return
        result = _function("sd_login_monitor_flush")(self._monitor)
        if result < 0:
            _fail(result, "sd_login_monitor_flush", self._category)

    def get_events(self) -> int:
        """Return the poll() event mask to wait for. Raises OSError (EINVAL if closed)."""
        result = int(_function("sd_login_monitor_get_events")(self._live()))
        if result < 0:
            _fail(result, "sd_login_monitor_get_events", self._category)
        return result

    def get_timeout(self) -> int | None:
        """Return the absolute CLOCK_MONOTONIC timeout in microseconds, or None for none.

        Raises OSError (EINVAL if closed).
        """
        out = ffi.new("uint64_t *")
        result = _function("sd_login_monitor_get_timeout")(self._live(), out)
        if result < 0:
            _fail(result, "sd_login_monitor_get_timeout", self._category)
        value = int(out[0])
        return None if value == 0xFFFFFFFFFFFFFFFF else value

    def get_timeout_ms(self) -> int:
        """Return get_timeout() as relative milliseconds for poll(), rounded up, or -1 for none."""
        timeout = self.get_timeout()
        if timeout is None:
            return -1
        now = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return (timeout - now + 999) // 1000 if timeout > now else 0

    def _release(self) -> None:
        # The one place that frees: close(), __exit__, __del__ and a second __init__ call it as
        # Monitor._release(self), so a subclass's close() is never called behind its back.
        monitor = self._monitor
        if monitor is not None:
            self._monitor = None
            _function("sd_login_monitor_unref")(monitor)

    def close(self) -> None:
        """Free the monitor and its fd (sd_login_monitor_unref); calling it again does nothing."""
        Monitor._release(self)

    @_Default
    def closed(self) -> bool:
        """Whether the monitor is closed (close() has run, or __init__ never did)."""
        return self._monitor is None

    @_Default
    def category(self) -> str | None:
        """The category given to __init__ (None: all four)."""
        return self._category

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        # Positional only and any number of them, as python-systemd's.
        Monitor._release(self)

    def __reduce_ex__(self, protocol: SupportsIndex) -> NoReturn:
        # copy, deepcopy and pickle all come here.
        raise TypeError(f"cannot pickle {type(self).__name__!r} object")

    def __del__(self) -> None:
        Monitor._release(self)

    def __repr__(self) -> str:
        monitor = self._monitor
        state = "closed" if monitor is None else f"fd={self.fileno()}"
        return f"<Monitor category={self._category!r} {state}>"


# -- capabilities ---------------------------------------------------------------------------------


def capabilities() -> dict[str, bool]:
    """Return, for each function newer than systemd 252, whether this libsystemd exports it.

    Raises OSError when libsystemd cannot be loaded.
    """
    return {name: _ffi.has_function(name) for name in _ffi.OPTIONAL_FUNCTIONS}


def abi_version() -> str:
    """Return the newest LIBSYSTEMD_<n> symbol version of the loaded library (e.g. "252"; elogind
    246's: "246"), or "unknown". Raises OSError when no library can be loaded."""
    return _ffi.abi_version()


def library() -> str:
    """Return which library was loaded: "libsystemd" or "libelogind" (or "unknown").

    Raises OSError when no library can be loaded.
    """
    return _ffi.library_name()


def library_path() -> str | None:
    """Return the file the library was loaded from, links resolved, or None if unknown.

    Raises OSError when no library can be loaded.
    """
    return _ffi.library_path()
