"""libsystemd's sd-login API for Python: a drop-in superset of python-systemd's ``systemd.login``.

``machine_names()``, ``seats()``, ``sessions()``, ``uids()`` and ``Monitor`` behave as in
``systemd.login``. Beyond them every sd-login getter for sessions, seats, users, machines and pids
is bound, with Pythonic values: bool for booleans, seconds since the epoch for times, None where
libsystemd reports "no data" (ENODATA).

Errors: a negative return from libsystemd raises OSError carrying that errno and a message naming
the call; EINVAL raises :class:`InvalidArgumentError`, which is both an OSError and a ValueError.
Names that cannot reach C intact (embedded NUL, unencodable) raise ValueError before any call.
Functions newer than the running libsystemd raise :class:`UnsupportedError` (a NotImplementedError).
"""

from __future__ import annotations

import errno
import os
import time
from types import TracebackType
from typing import Any, NoReturn

from login_exporter import inotify
from login_exporter.sdlogin import _ffi
from login_exporter.sdlogin._ffi import ffi

__all__ = [
    "InvalidArgumentError",
    "Monitor",
    "UnsupportedError",
    "abi_version",
    "capabilities",
    "listen_fds",
    "machine_get_class",
    "machine_get_ifindices",
    "machine_names",
    "notify",
    "pid_get_cgroup",
    "pid_get_machine_name",
    "pid_get_owner_uid",
    "pid_get_session",
    "pid_get_slice",
    "pid_get_unit",
    "pid_get_user_slice",
    "pid_get_user_unit",
    "seat_can_graphical",
    "seat_can_multi_session",
    "seat_can_tty",
    "seat_get_active",
    "seat_get_session_uids",
    "seat_get_sessions",
    "seats",
    "session_get_class",
    "session_get_desktop",
    "session_get_display",
    "session_get_leader",
    "session_get_remote_host",
    "session_get_remote_user",
    "session_get_seat",
    "session_get_service",
    "session_get_start_time",
    "session_get_state",
    "session_get_tty",
    "session_get_type",
    "session_get_uid",
    "session_get_username",
    "session_get_vt",
    "session_is_active",
    "session_is_remote",
    "sessions",
    "uid_get_display",
    "uid_get_login_time",
    "uid_get_seats",
    "uid_get_sessions",
    "uid_get_state",
    "uid_is_on_seat",
    "uids",
    "watchdog_usec",
]

_ENCODING = "utf-8"
_ERRORS = "surrogateescape"  # round-trips any byte string libsystemd hands back


class InvalidArgumentError(OSError, ValueError):
    """libsystemd answered EINVAL: invalid name, uid or category (an OSError and a ValueError)."""


class UnsupportedError(NotImplementedError):
    """The running libsystemd does not export this function (it is newer than the library)."""


# -- plumbing ------------------------------------------------------------------------------------


def _fail(result: int, call: str, subject: object) -> NoReturn:
    code = -result
    arguments = ", ".join(map(repr, subject)) if isinstance(subject, tuple) else repr(subject)
    message = f"{call}({arguments}) failed: {os.strerror(code)}"
    if code == errno.EINVAL:
        raise InvalidArgumentError(code, message)
    raise OSError(code, message)


def _encode(name: str, what: str) -> bytes:
    if not isinstance(name, str):
        raise TypeError(f"{what} must be str, not {type(name).__name__}")
    data = name.encode(_ENCODING, _ERRORS)
    if b"\0" in data:
        raise ValueError(f"{what} {name!r} contains a NUL character")
    return data


def _decode(pointer: Any) -> str:
    return str(ffi.string(pointer).decode(_ENCODING, _ERRORS))


def _function(name: str) -> Any:
    lib = _ffi.load()
    try:
        return getattr(lib, name)
    except AttributeError:
        needed = _ffi.OPTIONAL_FUNCTIONS.get(name)
        since = f" (added in systemd {needed})" if needed else ""
        raise UnsupportedError(
            f"{name} is not exported by this libsystemd{since}; "
            f"check login_exporter.sdlogin.capabilities() first"
        ) from None


def _take_string(pointer: Any) -> str:
    try:
        return _decode(pointer)
    finally:
        _ffi.libc().free(pointer)


def _take_strv(array: Any, count: int | None = None) -> list[str]:
    """Copy a NULL-terminated char** (``count`` entries, when known) into Python and free it and
    every string in it. NULL is an empty list."""
    if array == ffi.NULL:
        return []
    if count is None:
        count = 0
        while array[count] != ffi.NULL:
            count += 1
    pointers = ffi.unpack(array, count)
    free = _ffi.libc().free
    try:
        # map() keeps the per-string work in C; one decode for all (names hold no NUL).
        joined = b"\0".join(map(ffi.string, pointers)).decode(_ENCODING, _ERRORS)
        return joined.split("\0") if pointers else []
    finally:
        for _ in map(free, pointers):
            pass
        free(array)


def _take_array(array: Any, count: int) -> list[int]:
    if array == ffi.NULL:
        return []
    try:
        return [int(value) for value in ffi.unpack(array, count)]
    finally:
        _ffi.libc().free(array)


def _strv_call(call: str, *args: Any, subject: object = "") -> list[str]:
    out = ffi.new("char ***")
    result = _function(call)(*args, out)
    if result < 0:
        _fail(result, call, subject)
    return _take_strv(out[0], result)


def _string_getter(call: str, subject: object, *args: Any) -> str | None:
    out = ffi.new("char **")
    result = _function(call)(*args, out)
    if result == -errno.ENODATA:
        return None
    if result < 0:
        _fail(result, call, subject)
    if out[0] == ffi.NULL:
        return None
    return _take_string(out[0])


def _number_getter(call: str, ctype: str, subject: object, *args: Any) -> int | None:
    out = ffi.new(ctype)
    result = _function(call)(*args, out)
    if result == -errno.ENODATA:
        return None
    if result < 0:
        _fail(result, call, subject)
    return int(out[0])


def _bool_call(call: str, subject: object, *args: Any) -> bool:
    result = int(_function(call)(*args))
    if result < 0:
        _fail(result, call, subject)
    return result > 0


def _uid(uid: int) -> int:
    if not isinstance(uid, int) or isinstance(uid, bool):
        raise TypeError(f"uid must be int, not {type(uid).__name__}")
    if not 0 <= uid < 0xFFFFFFFF:
        raise ValueError(f"uid {uid} is out of range")
    return uid


def _pid(pid: int) -> int:
    if not isinstance(pid, int) or isinstance(pid, bool):
        raise TypeError(f"pid must be int, not {type(pid).__name__}")
    if not 0 <= pid <= 0x7FFFFFFF:
        raise ValueError(f"pid {pid} is out of range")
    return pid


def _usec_to_seconds(value: int | None) -> float | None:
    return None if value is None or value == 0 else value / 1_000_000


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


class Monitor:
    """A login-state monitor: an fd to poll that wakes when sessions, seats, users or machines
    change (sd_login_monitor_new). ``category`` is "session", "seat", "uid", "machine" or None
    (all four). Unlike libsystemd's own monitor it also wakes when a new file is linked into place
    without a rename (systemd 262 and newer), and so also for the temporary files that older
    releases create before renaming them.

    Raises InvalidArgumentError (a ValueError) for an unknown category, OSError for any other
    failure (e.g. ENOENT when /run/systemd's directories are missing). Methods of a closed monitor
    raise ValueError.
    """

    def __init__(self, category: str | None = None) -> None:
        self._monitor: Any = None
        self.category = category
        encoded = ffi.NULL if category is None else _encode(category, "category")
        out = ffi.new("sd_login_monitor **")
        result = _function("sd_login_monitor_new")(encoded, out)
        if result == -errno.EINVAL:
            raise InvalidArgumentError(
                errno.EINVAL, f"unknown monitor category {category!r} (session, seat, uid, machine)"
            )
        if result < 0:
            _fail(result, "sd_login_monitor_new", category)
        self._monitor = out[0]
        try:
            _watch_created_names(self.fileno(), category)
        except OSError:
            self.close()
            raise

    def _live(self) -> Any:
        if self._monitor is None:
            raise ValueError("operation on a closed Monitor")
        return self._monitor

    def fileno(self) -> int:
        """Return the fd to poll (sd_login_monitor_get_fd). Raises ValueError if closed."""
        result = int(_function("sd_login_monitor_get_fd")(self._live()))
        if result < 0:
            _fail(result, "sd_login_monitor_get_fd", self.category)
        return result

    def flush(self) -> None:
        """Reset the wake-up state (sd_login_monitor_flush). Raises OSError, ValueError."""
        result = _function("sd_login_monitor_flush")(self._live())
        if result < 0:
            _fail(result, "sd_login_monitor_flush", self.category)

    def get_events(self) -> int:
        """Return the poll() event mask to wait for. Raises OSError, ValueError if closed."""
        result = int(_function("sd_login_monitor_get_events")(self._live()))
        if result < 0:
            _fail(result, "sd_login_monitor_get_events", self.category)
        return result

    def get_timeout(self) -> int | None:
        """Return the absolute CLOCK_MONOTONIC timeout in microseconds, or None for none.

        Raises OSError, ValueError if closed.
        """
        out = ffi.new("uint64_t *")
        result = _function("sd_login_monitor_get_timeout")(self._live(), out)
        if result < 0:
            _fail(result, "sd_login_monitor_get_timeout", self.category)
        value = int(out[0])
        return None if value == 0xFFFFFFFFFFFFFFFF else value

    def get_timeout_ms(self) -> int:
        """Return get_timeout() as relative milliseconds for poll(), rounded up, or -1 for none."""
        timeout = self.get_timeout()
        if timeout is None:
            return -1
        now = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return (timeout - now + 999) // 1000 if timeout > now else 0

    def close(self) -> None:
        """Free the monitor and its fd (sd_login_monitor_unref); calling it again does nothing."""
        monitor, self._monitor = self._monitor, None
        if monitor is not None:
            _function("sd_login_monitor_unref")(monitor)

    @property
    def closed(self) -> bool:
        """Whether close() has run."""
        return self._monitor is None

    def __enter__(self) -> Monitor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_monitor", None) is not None:
            self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"fd={self.fileno()}"
        return f"<Monitor category={self.category!r} {state}>"


# -- sessions -------------------------------------------------------------------------------------


def _session_string(call: str, session: str) -> str | None:
    return _string_getter(call, session, _encode(session, "session"))


def session_is_active(session: str) -> bool:
    """Return whether the session is active on its seat. Raises OSError (ENXIO: no such session)."""
    return _bool_call("sd_session_is_active", session, _encode(session, "session"))


def session_is_remote(session: str) -> bool:
    """Return whether the session is remote. Raises OSError (ENXIO: no such session)."""
    return _bool_call("sd_session_is_remote", session, _encode(session, "session"))


def session_get_state(session: str) -> str | None:
    """Return "online", "active" or "closing". Raises OSError (ENXIO: no such session)."""
    return _session_string("sd_session_get_state", session)


def session_get_uid(session: str) -> int:
    """Return the session's uid. Raises OSError (ENXIO: no such session)."""
    value = _number_getter("sd_session_get_uid", "uid_t *", session, _encode(session, "session"))
    if value is None:
        raise OSError(errno.ENODATA, f"sd_session_get_uid({session!r}): no uid")
    return value


def session_get_username(session: str) -> str | None:
    """Return the session user's name (systemd 254+). Raises UnsupportedError, OSError."""
    return _session_string("sd_session_get_username", session)


def session_get_seat(session: str) -> str | None:
    """Return the session's seat, or None when seatless. Raises OSError."""
    return _session_string("sd_session_get_seat", session)


def session_get_start_time(session: str) -> float | None:
    """Return when the session started, seconds since the epoch (systemd 254+).

    Raises UnsupportedError, OSError.
    """
    return _usec_to_seconds(
        _number_getter(
            "sd_session_get_start_time", "uint64_t *", session, _encode(session, "session")
        )
    )


def session_get_service(session: str) -> str | None:
    """Return the PAM service that registered the session. Raises OSError."""
    return _session_string("sd_session_get_service", session)


def session_get_type(session: str) -> str | None:
    """Return the type: "tty", "x11", "wayland", "mir", "unspecified", ... Raises OSError."""
    return _session_string("sd_session_get_type", session)


def session_get_class(session: str) -> str | None:
    """Return the class: "user", "greeter", "lock-screen", "background", ... Raises OSError."""
    return _session_string("sd_session_get_class", session)


def session_get_desktop(session: str) -> str | None:
    """Return the desktop environment, or None. Raises OSError."""
    return _session_string("sd_session_get_desktop", session)


def session_get_display(session: str) -> str | None:
    """Return the X11 display, or None. Raises OSError."""
    return _session_string("sd_session_get_display", session)


def session_get_leader(session: str) -> int | None:
    """Return the pid of the session leader (systemd 254+). Raises UnsupportedError, OSError."""
    return _number_getter(
        "sd_session_get_leader", "pid_t *", session, _encode(session, "session")
    )


def session_get_remote_host(session: str) -> str | None:
    """Return the remote host of a remote session, or None. Raises OSError."""
    return _session_string("sd_session_get_remote_host", session)


def session_get_remote_user(session: str) -> str | None:
    """Return the remote user, or None. Raises OSError."""
    return _session_string("sd_session_get_remote_user", session)


def session_get_tty(session: str) -> str | None:
    """Return the session's TTY, or None. Raises OSError."""
    return _session_string("sd_session_get_tty", session)


def session_get_vt(session: str) -> int | None:
    """Return the virtual terminal number, or None. Raises OSError."""
    return _number_getter("sd_session_get_vt", "unsigned *", session, _encode(session, "session"))


# -- seats ----------------------------------------------------------------------------------------


def seat_get_active(seat: str) -> tuple[str | None, int | None]:
    """Return (session, uid) in the foreground of the seat, (None, None) when there is none.

    Raises OSError (ENXIO: no such seat).
    """
    session = ffi.new("char **")
    uid = ffi.new("uid_t *")
    result = _function("sd_seat_get_active")(_encode(seat, "seat"), session, uid)
    if result == -errno.ENODATA:
        return None, None
    if result < 0:
        _fail(result, "sd_seat_get_active", seat)
    return _take_string(session[0]), int(uid[0])


def seat_get_session_uids(seat: str) -> list[tuple[str, int]]:
    """Return (session, uid) for every session on the seat.

    Raises OSError (EUCLEAN when the seat's SESSIONS and UIDS lists differ in length).
    """
    sessions_out = ffi.new("char ***")
    uids_out = ffi.new("uid_t **")
    count = ffi.new("unsigned *")
    result = _function("sd_seat_get_sessions")(_encode(seat, "seat"), sessions_out, uids_out, count)
    if result < 0:
        _fail(result, "sd_seat_get_sessions", seat)
    names = _take_strv(sessions_out[0])
    ids = _take_array(uids_out[0], int(count[0]))
    return list(zip(names, ids, strict=False))


def seat_get_sessions(seat: str) -> list[str]:
    """Return the ids of the sessions on the seat. Raises OSError (EUCLEAN: inconsistent file)."""
    return [session for session, _ in seat_get_session_uids(seat)]


def seat_can_multi_session(seat: str) -> bool:
    """Return whether the seat can hold several sessions at once. Raises OSError."""
    return _bool_call("sd_seat_can_multi_session", seat, _encode(seat, "seat"))


def seat_can_tty(seat: str) -> bool:
    """Return whether the seat has text consoles. Raises OSError."""
    return _bool_call("sd_seat_can_tty", seat, _encode(seat, "seat"))


def seat_can_graphical(seat: str) -> bool:
    """Return whether the seat can show graphics. Raises OSError."""
    return _bool_call("sd_seat_can_graphical", seat, _encode(seat, "seat"))


# -- users ----------------------------------------------------------------------------------------


def uid_get_state(uid: int) -> str | None:
    """Return "offline", "lingering", "online", "active" or "closing". Raises OSError."""
    return _string_getter("sd_uid_get_state", uid, _uid(uid))


def uid_get_display(uid: int) -> str | None:
    """Return the user's display session id, or None. Raises OSError."""
    return _string_getter("sd_uid_get_display", uid, _uid(uid))


def uid_get_login_time(uid: int) -> float | None:
    """Return when the user logged in, seconds since the epoch (systemd 254+).

    Raises UnsupportedError, OSError.
    """
    return _usec_to_seconds(_number_getter("sd_uid_get_login_time", "uint64_t *", uid, _uid(uid)))


def uid_is_on_seat(uid: int, seat: str, require_active: bool = False) -> bool:
    """Return whether the user has a (with require_active: an active) session on seat.

    Raises OSError.
    """
    return _bool_call(
        "sd_uid_is_on_seat", (uid, seat), _uid(uid), int(require_active), _encode(seat, "seat")
    )


def uid_get_sessions(uid: int, require_active: bool = False) -> list[str]:
    """Return the user's sessions (only active ones with require_active). Raises OSError."""
    return _strv_call("sd_uid_get_sessions", _uid(uid), int(require_active), subject=uid)


def uid_get_seats(uid: int, require_active: bool = False) -> list[str]:
    """Return the seats the user has sessions on. Raises OSError."""
    return _strv_call("sd_uid_get_seats", _uid(uid), int(require_active), subject=uid)


# -- machines -------------------------------------------------------------------------------------


def machine_get_class(machine: str) -> str | None:
    """Return "vm" or "container" (or a newer class). Raises OSError (ENXIO: no such machine)."""
    return _string_getter("sd_machine_get_class", machine, _encode(machine, "machine"))


def machine_get_ifindices(machine: str) -> list[int]:
    """Return the machine's network interface indices. Raises OSError."""
    out = ffi.new("int **")
    result = _function("sd_machine_get_ifindices")(_encode(machine, "machine"), out)
    if result == -errno.ENODATA:
        return []
    if result < 0:
        _fail(result, "sd_machine_get_ifindices", machine)
    return _take_array(out[0], result)


# -- processes ------------------------------------------------------------------------------------


def _pid_string(call: str, pid: int) -> str | None:
    return _string_getter(call, pid, _pid(pid))


def pid_get_session(pid: int) -> str | None:
    """Return the session of a process (0: the caller). Raises OSError (ENODATA -> None)."""
    return _pid_string("sd_pid_get_session", pid)


def pid_get_owner_uid(pid: int) -> int | None:
    """Return the uid owning the process's session. Raises OSError."""
    return _number_getter("sd_pid_get_owner_uid", "uid_t *", pid, _pid(pid))


def pid_get_unit(pid: int) -> str | None:
    """Return the systemd system unit of a process. Raises OSError."""
    return _pid_string("sd_pid_get_unit", pid)


def pid_get_user_unit(pid: int) -> str | None:
    """Return the systemd user unit of a process. Raises OSError."""
    return _pid_string("sd_pid_get_user_unit", pid)


def pid_get_slice(pid: int) -> str | None:
    """Return the system slice of a process. Raises OSError."""
    return _pid_string("sd_pid_get_slice", pid)


def pid_get_user_slice(pid: int) -> str | None:
    """Return the user slice of a process. Raises OSError."""
    return _pid_string("sd_pid_get_user_slice", pid)


def pid_get_machine_name(pid: int) -> str | None:
    """Return the machine a process runs in. Raises OSError."""
    return _pid_string("sd_pid_get_machine_name", pid)


def pid_get_cgroup(pid: int) -> str | None:
    """Return the control group path of a process. Raises OSError."""
    return _pid_string("sd_pid_get_cgroup", pid)


# -- service manager (sd-daemon) ------------------------------------------------------------------


def notify(state: str) -> bool:
    """Send a notification ("READY=1", "WATCHDOG=1", ...) to the service manager.

    Returns False when not run by a notify-aware manager (no NOTIFY_SOCKET). Raises OSError.
    """
    result = int(_function("sd_notify")(0, _encode(state, "state")))
    if result < 0:
        _fail(result, "sd_notify", state)
    return result > 0


def watchdog_usec() -> int | None:
    """Return the watchdog interval in microseconds the manager expects, or None when off.

    Raises OSError.
    """
    out = ffi.new("uint64_t *")
    result = _function("sd_watchdog_enabled")(0, out)
    if result < 0:
        _fail(result, "sd_watchdog_enabled", "")
    return int(out[0]) if result > 0 else None


def listen_fds() -> int:
    """Return how many sockets systemd passed (fds from 3 on). Raises OSError."""
    result = int(_function("sd_listen_fds")(0))
    if result < 0:
        _fail(result, "sd_listen_fds", "")
    return result


# -- capabilities ---------------------------------------------------------------------------------


def capabilities() -> dict[str, bool]:
    """Return, for each function newer than systemd 252, whether this libsystemd exports it.

    Raises OSError when libsystemd cannot be loaded.
    """
    return {name: _ffi.has_function(name) for name in _ffi.OPTIONAL_FUNCTIONS}


def abi_version() -> str:
    """Return the newest LIBSYSTEMD_<n> symbol version of the loaded library (e.g. "251")."""
    return _ffi.abi_version()

