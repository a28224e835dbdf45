"""This machine's addresses, for tests and benches that need a client that is not loopback."""

from __future__ import annotations

import functools
import subprocess


@functools.cache
def outside_address() -> str:
    """Return an IPv4 address of this machine outside 127.0.0.0/8 (scope global): a client bound
    to it connects to 127.0.0.1 as a peer that is not loopback.

    Raises RuntimeError when the machine has none.
    """
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"],
                         capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        return line.split()[3].split("/")[0]
    raise RuntimeError("this machine has no IPv4 address outside loopback (ip -4 addr)")
