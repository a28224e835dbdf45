"""Everything libsystemd hands back is freed: 100,000 getter calls, memory stays flat.

The full run (every getter 100,000 times) is a script:
``python3 -m tests.integration.sdlogin_memory``.
Here 100,000 calls are spread over every getter so CI stays fast. Two measures: RSS from
/proc/self/statm (the brief's), and glibc's count of malloc()ed bytes in use, which sees a leak of
a few bytes per call that RSS (pages, arenas) would hide.
"""

from __future__ import annotations

from login_exporter import sdlogin
from tests.integration import sdlogin_memory
from tests.support.logind_state import LogindState

TOTAL_CALLS = 100_000
# One leaked 5-byte string per call is a 32-byte chunk: ~57 KiB over one getter's ~1,800 calls.
PER_GETTER_HEAP_LIMIT = 16 * 1024
TOTAL_HEAP_LIMIT = 64 * 1024
RSS_LIMIT = 512 * 1024


def test_every_getter_frees_what_libsystemd_returns(logind: LogindState) -> None:
    sdlogin_memory.populate(logind)
    sdlogin_memory.warm_up(rounds=50)
    calls_per_getter = TOTAL_CALLS // len(sdlogin_memory.GETTERS)
    measure = sdlogin_memory.run(calls_per_getter)

    leaking = {
        name: growth
        for name, growth in measure.per_getter_heap.items()
        if growth > PER_GETTER_HEAP_LIMIT
    }
    assert not leaking, f"malloc()ed bytes grew per getter: {leaking}"
    assert measure.heap_growth < TOTAL_HEAP_LIMIT, measure
    assert measure.rss_growth < RSS_LIMIT, measure
    print(
        f"{measure.calls:,} calls in {measure.seconds:.2f} s: RSS {measure.rss_growth:+,} B, "
        f"malloc in use {measure.heap_growth:+,} B"
    )


def test_getter_set_covers_the_binding() -> None:
    # Every public getter of the binding is in the workload (by the name before any "(...)").
    covered = {name.split("(")[0].split(" ")[0] for name in sdlogin_memory.GETTERS}
    # (which library, its version and file: read once from the library file, nothing to free)
    skip = {"InvalidArgumentError", "UnsupportedError", "abi_version", "library", "library_path"}
    public = set(sdlogin.__all__) - skip
    assert public - covered == set()
