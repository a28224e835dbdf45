"""cffi ABI-mode declarations for sd-login.h and sd-daemon.h, and the lazy dlopen of the library.

ABI mode needs no compiler and no -dev headers: the declarations below are checked against the
library only when a function is first called. Loading is deferred to the first call so that
importing the exporter works on a machine without libsystemd; that call raises one OSError naming
every name tried.

The library is systemd's libsystemd or elogind's libelogind (the standalone logind of Devuan,
Alpine, Gentoo, Void, Artix), which exports the same sd-login calls under the same LIBSYSTEMD_*
symbol versions. Without an explicit path (:func:`use_library`, else
$LOGIN_EXPORTER_SDLOGIN_LIBRARY) the sonames in SONAMES are tried in order.
"""

from __future__ import annotations

import errno
import os
import re
import threading
from pathlib import Path
from typing import Any

from login_exporter.ffibuild import ffi_for

# systemd's first; elogind's where only that exists (upstream elogind installs no libsystemd.so.0;
# Debian 12's libelogind0 adds a libsystemd.so.0 link to it); the unversioned -dev links last.
SONAMES = ("libsystemd.so.0", "libelogind.so.0", "libsystemd.so", "libelogind.so")
ENVIRONMENT = "LOGIN_EXPORTER_SDLOGIN_LIBRARY"  # an explicit path, for the binding without flags
LIBRARY_SYSTEMD = "libsystemd"
LIBRARY_ELOGIND = "libelogind"

# Functions newer than systemd 252; probed at run time (name -> first systemd release with it).
OPTIONAL_FUNCTIONS = {
    "sd_session_get_username": 254,
    "sd_session_get_start_time": 254,
    "sd_session_get_leader": 254,
    "sd_uid_get_login_time": 254,
}

CDEF = """
typedef unsigned int uid_t;
typedef int pid_t;
typedef struct sd_login_monitor sd_login_monitor;

int sd_get_seats(char ***seats);
int sd_get_sessions(char ***sessions);
int sd_get_uids(uid_t **users);
int sd_get_machine_names(char ***machines);

int sd_login_monitor_new(const char *category, sd_login_monitor **ret);
sd_login_monitor *sd_login_monitor_unref(sd_login_monitor *m);
int sd_login_monitor_flush(sd_login_monitor *m);
int sd_login_monitor_get_fd(sd_login_monitor *m);
int sd_login_monitor_get_events(sd_login_monitor *m);
int sd_login_monitor_get_timeout(sd_login_monitor *m, uint64_t *timeout_usec);

int sd_session_is_active(const char *session);
int sd_session_is_remote(const char *session);
int sd_session_get_state(const char *session, char **state);
int sd_session_get_uid(const char *session, uid_t *uid);
int sd_session_get_username(const char *session, char **username);
int sd_session_get_seat(const char *session, char **seat);
int sd_session_get_start_time(const char *session, uint64_t *usec);
int sd_session_get_service(const char *session, char **service);
int sd_session_get_type(const char *session, char **type);
int sd_session_get_class(const char *session, char **clazz);
int sd_session_get_desktop(const char *session, char **desktop);
int sd_session_get_display(const char *session, char **display);
int sd_session_get_leader(const char *session, pid_t *leader);
int sd_session_get_remote_host(const char *session, char **remote_host);
int sd_session_get_remote_user(const char *session, char **remote_user);
int sd_session_get_tty(const char *session, char **display);
int sd_session_get_vt(const char *session, unsigned *vtnr);

int sd_seat_get_active(const char *seat, char **session, uid_t *uid);
int sd_seat_get_sessions(const char *seat, char ***ret_sessions, uid_t **ret_uids,
                         unsigned *ret_n_uids);
int sd_seat_can_multi_session(const char *seat);
int sd_seat_can_tty(const char *seat);
int sd_seat_can_graphical(const char *seat);

int sd_uid_get_state(uid_t uid, char **state);
int sd_uid_get_display(uid_t uid, char **session);
int sd_uid_get_login_time(uid_t uid, uint64_t *usec);
int sd_uid_is_on_seat(uid_t uid, int require_active, const char *seat);
int sd_uid_get_sessions(uid_t uid, int require_active, char ***sessions);
int sd_uid_get_seats(uid_t uid, int require_active, char ***seats);

int sd_machine_get_class(const char *machine, char **clazz);
int sd_machine_get_ifindices(const char *machine, int **ret_ifindices);

int sd_pid_get_session(pid_t pid, char **session);
int sd_pid_get_owner_uid(pid_t pid, uid_t *uid);
int sd_pid_get_unit(pid_t pid, char **unit);
int sd_pid_get_user_unit(pid_t pid, char **unit);
int sd_pid_get_slice(pid_t pid, char **slice);
int sd_pid_get_user_slice(pid_t pid, char **slice);
int sd_pid_get_machine_name(pid_t pid, char **machine);
int sd_pid_get_cgroup(pid_t pid, char **cgroup);

int sd_notify(int unset_environment, const char *state);
int sd_watchdog_enabled(int unset_environment, uint64_t *usec);
int sd_listen_fds(int unset_environment);

void free(void *ptr);

/* libc, to copy and free a whole strv in two calls (see _call._take_strv); the layout of
   wordexp_t is POSIX's, the same in glibc and musl. argz_create is glibc's (probed). */
typedef struct { size_t we_wordc; char **we_wordv; size_t we_offs; } wordexp_t;
void wordfree(wordexp_t *pwordexp);
int argz_create(char *const argv[], char **argz, size_t *len);
"""

ffi = ffi_for("sdlogin", CDEF)  # pre-parsed at build time when up to date (ffibuild.py)

_lock = threading.Lock()
_lib: Any = None
_libc: Any = None
_path: str | None = None
_explicit: str | None = None  # set by use_library(); else the environment's, else SONAMES


class ExplicitLibraryError(OSError):
    """The library named by use_library() or $LOGIN_EXPORTER_SDLOGIN_LIBRARY cannot be loaded."""


def use_library(path: str | None) -> None:
    """Load the library from ``path`` (a file, or a name dlopen() searches) instead of trying
    SONAMES; None goes back to $LOGIN_EXPORTER_SDLOGIN_LIBRARY or SONAMES. Takes effect only
    before the first call: raises RuntimeError once a library is loaded."""
    global _explicit
    with _lock:
        if _lib is not None:
            raise RuntimeError("use_library() after the library was loaded")
        _explicit = path


def explicit_library() -> str | None:
    """Return the path to load instead of SONAMES: use_library()'s, else the environment's
    (empty counts as unset), else None."""
    return _explicit if _explicit is not None else (os.environ.get(ENVIRONMENT) or None)


def load() -> Any:
    """Return the loaded library (loading it on first use).

    Raises ExplicitLibraryError (an OSError) naming the path when an explicit library cannot be
    loaded, OSError naming every soname tried when none can be loaded, OSError(EMFILE or ENFILE)
    when the process ran out of file descriptors (the next call tries again).
    """
    global _lib, _libc
    if _lib is not None:
        return _lib
    with _lock:
        if _lib is None:
            explicit = explicit_library()
            names = (explicit,) if explicit is not None else SONAMES
            failures = []
            for soname in names:
                try:
                    lib = ffi.dlopen(soname)
                    # Not an sd-login library at all (a typo naming libc): refuse it now rather
                    # than fail on every call later.
                    ffi.addressof(lib, "sd_get_sessions")
                except (OSError, AttributeError, ffi.error) as exc:
                    # (ffi.error: the pre-built declarations' way of saying a symbol is missing)
                    failures.append(f"{soname}: {exc}")
                    continue
                # free(3) from libc, through the same FFI: cdata passes without conversion.
                _libc = ffi.dlopen(None)
                _lib = lib
                break
            else:
                _raise_if_out_of_fds()
                if explicit is not None:
                    raise ExplicitLibraryError(
                        errno.ENOENT,
                        f"cannot load the sd-login library {explicit!r} (--sdlogin.library or "
                        f"${ENVIRONMENT}): {failures[0]}",
                    )
                raise OSError(
                    "cannot load libsystemd or libelogind (install libsystemd0, or elogind's "
                    "library, or name the file with --sdlogin.library or "
                    f"${ENVIRONMENT}); tried " + ", ".join(SONAMES) + ": " + "; ".join(failures)
                )
    return _lib


def _raise_if_out_of_fds() -> None:
    # dlopen() needs a descriptor; without one the failure says nothing of a missing library.
    try:
        os.close(os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC))
    except OSError as exc:
        if exc.errno in (errno.EMFILE, errno.ENFILE):
            raise OSError(exc.errno, f"cannot load libsystemd: {os.strerror(exc.errno)}") from None


def libc() -> Any:
    """Return the C library (for free(3)) after loading libsystemd. Raises OSError."""
    load()
    return _libc


def has_function(name: str) -> bool:
    """Return whether the loaded library exports ``name``. Raises OSError if it cannot load."""
    lib = load()
    try:
        getattr(lib, name)
    except (AttributeError, ffi.error):  # inline-parsed / pre-parsed FFI
        return False
    return True


def library_path() -> str | None:
    """Return the file the library was loaded from (the mapping holding sd_get_sessions in
    /proc/self/maps, links resolved by the kernel), or None. Raises OSError if it cannot load."""
    global _path
    if _path is None:
        lib = load()
        address = int(ffi.cast("uintptr_t", ffi.addressof(lib, "sd_get_sessions")))
        try:
            maps = Path("/proc/self/maps").read_text()
        except OSError:
            return None
        for line in maps.splitlines():
            fields = line.split(None, 5)
            if len(fields) < 6 or not fields[5].startswith("/"):
                continue
            start, _, end = fields[0].partition("-")
            if int(start, 16) <= address < int(end, 16):
                _path = fields[5].strip()
                break
    return _path


def _library_bytes() -> bytes | None:
    path = library_path()
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError:
        return None


def library_name() -> str:
    """Return "libelogind" or "libsystemd": which library was loaded, or "unknown".

    The file's name says, links resolved (Debian 12's libsystemd.so.0 -> libelogind.so.0); for a
    file named otherwise (an explicit path), its SONAME string. Raises OSError if it cannot load.
    """
    path = library_path()
    if path is None:
        return "unknown"
    base = os.path.basename(path)
    for name in (LIBRARY_ELOGIND, LIBRARY_SYSTEMD):
        if base.startswith(name + ".so"):
            return name
    data = _library_bytes() or b""
    # libelogind's SONAME is libelogind.so.0; libsystemd holds no such string.
    if b"libelogind.so." in data:
        return LIBRARY_ELOGIND
    return LIBRARY_SYSTEMD if b"libsystemd.so." in data else "unknown"


def abi_version() -> str:
    """Return the newest LIBSYSTEMD_<n> symbol version the loaded library defines, or "unknown".

    Neither library has a version call; their symbol versions name the systemd release that added
    each symbol, and elogind numbers its releases after the systemd it follows (246.10 defines
    LIBSYSTEMD_209 ... LIBSYSTEMD_246). Raises OSError if it cannot load.
    """
    data = _library_bytes()
    if data is None:
        return "unknown"
    versions = [int(m) for m in re.findall(rb"LIBSYSTEMD_(\d+)", data)]
    return str(max(versions)) if versions else "unknown"
