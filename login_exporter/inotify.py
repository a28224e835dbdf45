"""inotify(7) through cffi: the calls, the event masks and the event parser.

The stdlib has no inotify binding. sd-login's monitor is an inotify fd underneath, so adding a
watch to it (IN_MASK_ADD) and reading its events need the same three calls as watching a
directory of our own (logind's liveness link).
"""

from __future__ import annotations

import os
import struct
import threading
from typing import Any

from login_exporter.ffibuild import ffi_for

IN_ATTRIB = 0x4
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_UNMOUNT = 0x2000
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ONLYDIR = 0x01000000
IN_DONT_FOLLOW = 0x02000000
IN_MASK_ADD = 0x20000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC

_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of NUL-padded name

CDEF = """
int inotify_init1(int flags);
int inotify_add_watch(int fd, const char *pathname, uint32_t mask);
int inotify_rm_watch(int fd, int wd);
"""
_ffi = ffi_for("libc", CDEF)
_lock = threading.Lock()
_libc: Any = None


def _c() -> Any:
    global _libc
    if _libc is None:
        with _lock:
            if _libc is None:
                _libc = _ffi.dlopen(None)
    return _libc


def _check(result: int, call: str, path: str | None = None) -> int:
    if result < 0:
        err = _ffi.errno
        raise OSError(err, f"{call} failed: {os.strerror(err)}", path)
    return result


def init() -> int:
    """Return a new non-blocking, close-on-exec inotify fd. Raises OSError (e.g. EMFILE)."""
    return _check(int(_c().inotify_init1(IN_NONBLOCK | IN_CLOEXEC)), "inotify_init1")


def add_watch(fd: int, path: str, mask: int) -> int:
    """Add (or, with IN_MASK_ADD, extend) a watch on ``path``; return its watch descriptor.

    Raises OSError (ENOENT when ``path`` is missing, ENOTDIR with IN_ONLYDIR, ...).
    """
    return _check(
        int(_c().inotify_add_watch(fd, os.fsencode(path), mask)), "inotify_add_watch", path
    )


def rm_watch(fd: int, wd: int) -> None:
    """Remove a watch. Raises OSError (EINVAL when the watch is already gone)."""
    _check(int(_c().inotify_rm_watch(fd, wd)), "inotify_rm_watch")


def read_events(fd: int) -> bytes:
    """Return every event pending on a non-blocking inotify ``fd`` (b"" when none).

    Raises OSError other than EAGAIN (e.g. EBADF).
    """
    data = bytearray()
    try:
        while chunk := os.read(fd, 65536):
            data += chunk
    except BlockingIOError:
        pass
    return bytes(data)


def parse_events(data: bytes) -> list[tuple[int, int, str]]:
    """Return (wd, mask, name) for each inotify event in ``data`` (name "" for the watched
    object itself).

    Raises ValueError when the bytes are not a whole number of inotify events.
    """
    events, offset = [], 0
    while offset < len(data):
        if offset + _EVENT.size > len(data):
            raise ValueError("truncated inotify event header")
        wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
        offset += _EVENT.size
        if offset + length > len(data):
            raise ValueError("truncated inotify event name")
        name = data[offset : offset + length].split(b"\0", 1)[0]
        offset += length
        events.append((wd, mask, name.decode("utf-8", "surrogateescape")))
    return events
