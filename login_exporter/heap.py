"""Giving the C heap's free pages back to the system after a full read.

A full read of N sessions makes and drops N of each getter's strings; glibc keeps the pages they
freed inside its heap (below what is still in use, so its own trimming at the top cannot reach
them), and they stay resident for the life of the process: about 0.55 MB at N = 10,000
(bench/README.md). ``malloc_trim(0)`` gives them back. musl has no malloc_trim and returns
memory by itself: there this does nothing.
"""

from __future__ import annotations

import functools
from typing import Any

from login_exporter.ffibuild import ffi_for

CDEF = """
int malloc_trim(size_t pad);
"""
_ffi = ffi_for("heap", CDEF)


@functools.cache
def _malloc_trim() -> Any:
    """Return libc's malloc_trim, or None where libc has none."""
    try:
        return _ffi.dlopen(None).malloc_trim
    except (AttributeError, OSError, _ffi.error):  # musl (ffi.error: the pre-parsed module's)
        return None


def trim() -> bool:
    """Give free heap pages back to the system. Returns whether any were (False also where
    libc has no malloc_trim). Never raises."""
    malloc_trim = _malloc_trim()
    return malloc_trim is not None and bool(malloc_trim(0))
