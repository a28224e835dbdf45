"""sd-login getters for sessions, seats, users, machines and processes (re-exported by sdlogin)."""

from __future__ import annotations

import errno

from login_exporter.sdlogin._call import (
    _bool_call,
    _encode,
    _fail,
    _function,
    _number_getter,
    _pid,
    _string_getter,
    _strv_call,
    _take_array,
    _take_string,
    _take_strv,
    _uid,
    _usec_to_seconds,
)
from login_exporter.sdlogin._ffi import ffi

__all__ = [
    "machine_get_class",
    "machine_get_ifindices",
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
    "uid_get_display",
    "uid_get_login_time",
    "uid_get_seats",
    "uid_get_sessions",
    "uid_get_state",
    "uid_is_on_seat",
]

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
