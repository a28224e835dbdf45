"""cffi ABI-mode declarations for sd-login.h and sd-daemon.h, and the lazy dlopen of libsystemd.

ABI mode needs no compiler and no -dev headers: the declarations below are checked against the
library only when a function is first called. Loading is deferred to the first call so that
importing the exporter works on a machine without libsystemd; that call raises one OSError naming
the sonames tried.
"""

from __future__ import annotations

import errno
import os
import re
import threading
from pathlib import Path
from typing import Any

from login_exporter.ffibuild import ffi_for

SONAMES = ("libsystemd.so.0", "libsystemd.so")

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


def load() -> Any:
    """Return the loaded libsystemd (loading it on first use).

    Raises OSError naming every soname tried when none can be loaded, OSError(EMFILE or ENFILE)
    when the process ran out of file descriptors (the next call tries again).
    """
    global _lib, _libc
    if _lib is not None:
        return _lib
    with _lock:
        if _lib is None:
            failures = []
            for soname in SONAMES:
                try:
                    lib = ffi.dlopen(soname)
                except OSError as exc:
                    failures.append(f"{soname}: {exc}")
                    continue
                # free(3) from libc, through the same FFI: cdata passes without conversion.
                _libc = ffi.dlopen(None)
                _lib = lib
                break
            else:
                _raise_if_out_of_fds()
                raise OSError(
                    "cannot load libsystemd (install libsystemd0); tried "
                    + ", ".join(SONAMES)
                    + ": "
                    + "; ".join(failures)
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
    """Return whether the loaded libsystemd exports ``name``. Raises OSError if it cannot load."""
    lib = load()
    try:
        getattr(lib, name)
    except (AttributeError, ffi.error):  # inline-parsed / pre-parsed FFI
        return False
    return True


def library_path() -> str | None:
    """Return the file libsystemd was loaded from (from /proc/self/maps), or None."""
    global _path
    if _path is None:
        load()
        try:
            maps = Path("/proc/self/maps").read_text()
        except OSError:
            return None
        for line in maps.splitlines():
            if "libsystemd.so" in line:
                _path = line.split(None, 5)[-1].strip()
                break
    return _path


def abi_version() -> str:
    """Return the newest LIBSYSTEMD_<n> symbol version the loaded library defines, or "unknown".

    libsystemd has no version call; its symbol versions name the release that added each symbol.
    """
    path = library_path()
    if path is None:
        return "unknown"
    try:
        data = Path(path).read_bytes()
    except OSError:
        return "unknown"
    versions = [int(m) for m in re.findall(rb"LIBSYSTEMD_(\d+)", data)]
    return str(max(versions)) if versions else "unknown"
