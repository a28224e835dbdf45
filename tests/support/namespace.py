"""Private mount namespaces for tests: a tmpfs on /run/systemd that the host never sees.

libsystemd hard-codes /run/systemd/{sessions,seats,users,machines}, so when a selected test
needs it (tests/conftest.py: the ``logind`` fixture) the pytest process enters its own mount
namespace once, before any thread starts, and then mounts a fresh tmpfs on /run/systemd for each
test. Child processes (the exporter under test) inherit it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MNT_DETACH = 2

RUN_SYSTEMD = Path("/run/systemd")

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]

_entered = False


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    _check(
        _libc.mount(
            source.encode(),
            target.encode(),
            fstype.encode() if fstype else None,
            flags,
            data.encode() if data else None,
        ),
        f"mount {target}",
    )


def enter_private_namespace() -> None:
    """Move this process into a new mount namespace with private propagation (once).

    As root a plain CLONE_NEWNS; otherwise a user namespace mapping us to root first.
    Raises OSError when the kernel refuses.
    """
    global _entered
    if _entered:
        return
    if os.geteuid() == 0:
        _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    else:
        uid, gid = os.geteuid(), os.getegid()
        _check(_libc.unshare(CLONE_NEWUSER | CLONE_NEWNS), "unshare(CLONE_NEWUSER|CLONE_NEWNS)")
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"0 {uid} 1")
        Path("/proc/self/gid_map").write_text(f"0 {gid} 1")
    try:
        _mount("none", "/", None, MS_REC | MS_PRIVATE, None)
    except OSError as exc:
        # Without private propagation our tmpfs mounts would reach the host: refuse to go on.
        raise OSError(
            exc.errno, f"cannot make mounts private ({exc}); in a chroot / is no mount point"
        ) from exc
    if not RUN_SYSTEMD.is_dir():
        # Only inside our namespace: a tmpfs over /run gives us a place for /run/systemd.
        _mount("tmpfs", "/run", "tmpfs", 0, "mode=0755")
        RUN_SYSTEMD.mkdir()
    _entered = True


def entered() -> bool:
    """Return whether this process is in the private namespace enter_private_namespace() made."""
    return _entered


def mount_tmpfs(target: Path = RUN_SYSTEMD) -> None:
    """Mount a fresh, empty tmpfs on target (inside the private namespace only).

    Raises RuntimeError when enter_private_namespace() has not run, OSError on failure.
    """
    if not _entered:
        raise RuntimeError("refusing to mount outside a private mount namespace")
    _mount("tmpfs", str(target), "tmpfs", 0, "mode=0755")


def unmount(target: Path = RUN_SYSTEMD) -> None:
    """Detach the topmost mount on target. Raises OSError on failure."""
    _check(_libc.umount2(str(target).encode(), MNT_DETACH), f"umount {target}")
