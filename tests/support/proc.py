"""What /proc says about a process: memory, fds, CPU time, context switches, sockets, files.

Shared by the tests and the benchmarks (bench/): every figure is read from outside the process.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    """Return VmRSS of ``pid`` in KiB. Raises OSError when the process is gone."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise OSError(f"no VmRSS for pid {pid}")


def open_fds(pid: int) -> int:
    """Return how many file descriptors ``pid`` holds open."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def cpu_seconds(pid: int) -> float:
    """Return user + system CPU time of ``pid`` (all threads) in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime (fields 14, 15)


def context_switches(pid: int) -> int:
    """Return voluntary + involuntary context switches summed over all threads of ``pid``."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            text = (task / "status").read_text()
        except OSError:
            continue  # the thread ended meanwhile
        for line in text.splitlines():
            if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                total += int(line.split()[1])
    return total


def socket_inodes(pid: int) -> set[int]:
    """Return the inodes of every socket ``pid`` holds."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def _address(hex_address: str) -> tuple[str, int]:
    host_hex, port_hex = hex_address.split(":")
    raw = bytes.fromhex(host_hex)
    if len(raw) == 4:
        host = ".".join(str(b) for b in raw[::-1])
    else:  # four little-endian 32-bit words
        words = [raw[i : i + 4][::-1] for i in range(0, 16, 4)]
        host = str(ipaddress.IPv6Address(b"".join(words)))
    return host, int(port_hex, 16)


def sockets_of(pid: int) -> list[tuple[str, str, int, str]]:
    """Return (protocol, local host, local port, state) for every inet socket ``pid`` holds.

    State is the kernel's hex code ("0A" is LISTEN for TCP).
    """
    mine = socket_inodes(pid)
    found = []
    for proto in ("tcp", "tcp6", "udp", "udp6", "raw", "raw6"):
        table = Path(f"/proc/{pid}/net/{proto}")
        if not table.exists():
            continue
        for line in table.read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[9]) in mine:
                host, port = _address(fields[1])
                found.append((proto, host, port, fields[3]))
    return found


def writable_files(pid: int) -> list[str]:
    """Return the paths of regular files ``pid`` holds open for writing."""
    found = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            flags_line = Path(f"/proc/{pid}/fdinfo/{fd}").read_text().splitlines()[1]
        except (OSError, IndexError):
            continue
        if not target.startswith("/") or target.startswith("/dev/"):
            continue
        flags = int(flags_line.split()[1], 8)
        if flags & (os.O_WRONLY | os.O_RDWR):
            found.append(target)
    return found
