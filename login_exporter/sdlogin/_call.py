"""The plumbing every sd-login and sd-daemon call shares: encoding names, calling libsystemd,
copying and freeing what it returns, and turning a negative return into the right exception."""

from __future__ import annotations

import errno
import os
from typing import Any, NoReturn

from login_exporter.sdlogin import _ffi
from login_exporter.sdlogin._ffi import ffi

_ENCODING = "utf-8"
_ERRORS = "surrogateescape"  # round-trips any byte string libsystemd hands back


class InvalidArgumentError(OSError, ValueError):
    """libsystemd answered EINVAL: invalid name, uid or category (an OSError and a ValueError)."""


class UnsupportedError(NotImplementedError):
    """The running libsystemd does not export this function (it is newer than the library)."""


# -- plumbing ------------------------------------------------------------------------------------


SHOWN_CHARACTERS = 64  # of a name quoted in an error: enough to recognise, never a flood


def shown(value: object) -> str:
    """Return repr(value), cut to about SHOWN_CHARACTERS with the full length said."""
    text = repr(value)
    if len(text) <= SHOWN_CHARACTERS:
        return text
    size = f"{len(value)} characters" if isinstance(value, str | bytes) else f"{len(text)} long"
    return f"{text[:SHOWN_CHARACTERS]}... ({size})"


def _fail(result: int, call: str, subject: object) -> NoReturn:
    code = -result
    arguments = ", ".join(map(shown, subject)) if isinstance(subject, tuple) else shown(subject)
    message = f"{call}({arguments}) failed: {os.strerror(code)}"
    if code == errno.EINVAL:
        raise InvalidArgumentError(code, message)
    raise OSError(code, message)


def _encode(name: str, what: str) -> bytes:
    if not isinstance(name, str):
        raise TypeError(f"{what} must be str, not {type(name).__name__}")
    data = name.encode(_ENCODING, _ERRORS)
    if b"\0" in data:
        raise ValueError(f"{what} {shown(name)} contains a NUL character")
    return data


def _decode(pointer: Any) -> str:
    return str(ffi.string(pointer).decode(_ENCODING, _ERRORS))


def _function(name: str) -> Any:
    lib = _ffi.load()
    try:
        return getattr(lib, name)
    except (AttributeError, ffi.error):  # inline-parsed / pre-parsed FFI
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
    libc = _ffi.libc()
    if _whole_strv_calls(libc):
        return _take_strv_whole(libc, array, count)
    pointers = ffi.unpack(array, count)
    free = libc.free
    try:
        # map() keeps the per-string work in C; one decode for all (names hold no NUL).
        joined = b"\0".join(map(ffi.string, pointers)).decode(_ENCODING, _ERRORS)
        return joined.split("\0") if pointers else []
    finally:
        for _ in map(free, pointers):
            pass
        free(array)


_whole_strv: bool | None = None


def _whole_strv_calls(libc: Any) -> bool:
    """Whether libc has argz_create (glibc) and wordfree (POSIX): then a strv of any length is
    copied and freed in four C calls instead of two per string."""
    global _whole_strv
    if _whole_strv is None:
        try:
            _whole_strv = bool(libc.argz_create and libc.wordfree)
        except (AttributeError, ffi.error):
            _whole_strv = False
    return _whole_strv


def _take_strv_whole(libc: Any, array: Any, count: int) -> list[str]:
    # argz_create copies every string into one buffer, each followed by its NUL: one unpack,
    # one decode and one split make the list. wordfree frees each string and the array (glibc
    # walks to the NULL from we_offs, musl counts we_wordc: both are given).
    try:
        argz = ffi.new("char **")
        size = ffi.new("size_t *")
        if libc.argz_create(array, argz, size) != 0:
            raise MemoryError("argz_create: out of memory")
        try:
            data = ffi.unpack(argz[0], size[0]) if size[0] else b""
        finally:
            libc.free(argz[0])
    finally:
        libc.wordfree(ffi.new("wordexp_t *", {"we_wordc": count, "we_wordv": array}))
    return data[:-1].decode(_ENCODING, _ERRORS).split("\0") if data else []


def _take_array(array: Any, count: int) -> list[int]:
    if array == ffi.NULL:
        return []
    try:
        values: list[int] = ffi.unpack(array, count)  # already Python ints
        return values
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
