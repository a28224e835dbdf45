"""Free C heap pages go back to the system: heap.trim() on the real glibc, and after the
exporter's own full read (issue 20: RSS at N = 10,000)."""

from __future__ import annotations

import subprocess
import sys

from login_exporter import heap
from tests.support.exporter import ROOT
from tests.support.logind_state import LogindState


def heap_kib() -> int:
    """Resident KiB of this process's [heap] mapping (brk; where glibc's main arena lives)."""
    total, in_heap = 0, False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            fields = line.split()
            if "-" in fields[0] and not fields[0].endswith(":"):  # a mapping's first line
                in_heap = fields[-1] == "[heap]"
            elif in_heap and fields[0] == "Rss:":
                total += int(fields[1])
    return total


def test_trim_gives_back_pages_freed_below_memory_still_in_use() -> None:
    blocks = [bytes(4000) for _ in range(5000)]  # above pymalloc's 512 B: from malloc
    keeper = bytes(4000)  # above them: glibc's own trimming at the top cannot reach them
    before = heap_kib()
    del blocks
    assert heap_kib() > before - 1024  # freed, yet still resident
    assert heap.trim()
    assert heap_kib() < before - 10_000, "the ~20 MB freed stayed resident"
    assert keeper == bytes(4000)


AFTER_ONCE = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
from login_exporter import cli, heap
from tests.integration.test_heap import heap_kib
assert cli.main(["--once", "--no-collector.dbus"]) == 0  # the exposition, then our line
before = heap_kib()
heap.trim()
print(before - heap_kib())
"""


def test_a_full_read_leaves_nothing_to_trim(logind: LogindState) -> None:
    # 10,000 sessions: the full read frees ~0.5 MB of strings inside the heap (bench/README.md).
    logind.seat0()
    for i in range(1, 10_001):
        logind.session(str(i), uid=1000 + i % 50, seat=None, state="active")
    result = subprocess.run([sys.executable, "-c", AFTER_ONCE], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    left = int(result.stdout.split()[-1])
    assert left < 128, f"{left} KiB of the heap were still trimmable after the full read"
