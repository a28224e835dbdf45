"""The C floor: build bench/floor/sdlogin_floor.c with gcc and time full passes with it."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

FLOOR_DIR = Path(__file__).resolve().parent / "floor"
SOURCE = FLOOR_DIR / "sdlogin_floor.c"
BINARY = FLOOR_DIR / "sdlogin_floor"


class FloorUnavailable(RuntimeError):
    """The floor cannot be built here (no gcc, no pkg-config, no libsystemd-dev)."""


@dataclass(frozen=True)
class FloorResult:
    """One run of the floor: counts it saw and seconds per full pass."""

    sessions: int
    seats: int
    uids: int
    machines: int
    passes: int
    mean_s: float
    min_s: float
    errors: int


def build() -> Path:
    """Compile the floor unless the binary is newer than its source. Returns the binary's path.

    Raises FloorUnavailable with the reason when gcc, pkg-config or libsystemd-dev is missing
    or the compile fails.
    """
    if BINARY.exists() and BINARY.stat().st_mtime >= SOURCE.stat().st_mtime:
        return BINARY
    for tool in ("gcc", "pkg-config"):
        if shutil.which(tool) is None:
            raise FloorUnavailable(f"{tool} not installed")
    flags = subprocess.run(
        ["pkg-config", "--cflags", "--libs", "libsystemd"], capture_output=True, text=True
    )
    if flags.returncode != 0:
        raise FloorUnavailable("pkg-config finds no libsystemd (install libsystemd-dev)")
    cmd = [
        "gcc", "-O2", "-Wall", "-Wno-deprecated-declarations",
        "-o", str(BINARY), str(SOURCE), *flags.stdout.split(),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise FloorUnavailable(f"gcc failed: {done.stderr.strip()[:200]}")
    return BINARY


def run(passes: int, *, default_calls: bool = False) -> FloorResult:
    """Run the floor over the current /run/systemd for ``passes`` timed passes (with
    ``default_calls``, per session only the calls the exporter's default flags need).

    Raises FloorUnavailable when it cannot be built, RuntimeError when it fails.
    """
    binary = build()
    argv = [str(binary), str(passes), *(["default"] if default_calls else [])]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"sdlogin_floor failed: {done.stderr.strip()}")
    fields = dict(item.split("=", 1) for item in done.stdout.split())
    return FloorResult(
        sessions=int(fields["sessions"]),
        seats=int(fields["seats"]),
        uids=int(fields["uids"]),
        machines=int(fields["machines"]),
        passes=int(fields["passes"]),
        mean_s=int(fields["mean_ns"]) / 1e9,
        min_s=int(fields["min_ns"]) / 1e9,
        errors=int(fields["errors"]),
    )
