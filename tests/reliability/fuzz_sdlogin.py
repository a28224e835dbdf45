"""Hypothesis over every name-taking function of login_exporter.sdlogin (run in a subprocess).

``python -m tests.reliability.fuzz_sdlogin CANARY EXAMPLES`` feeds hostile names and numbers to
each binding; it exits 0 when every call returned or raised ValueError/OSError/TypeError (or
UnsupportedError for a function this libsystemd lacks) and no answer carried the canary's
marks. A crash in C kills only this process, which the calling test reports.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from login_exporter import sdlogin

CANARY_UID = 4242
CANARY_WORD = "canary"

STRING_FUNCTIONS = sorted(
    name for name in sdlogin.__all__ if name.startswith(("session_", "seat_", "machine_"))
)
INT_FUNCTIONS = sorted(name for name in sdlogin.__all__ if name.startswith(("uid_", "pid_")))
ALLOWED = (ValueError, OSError, TypeError)


def names(canary: str) -> st.SearchStrategy[Any]:
    """Hostile names: empty, NUL, surrogates, 64 KiB, separators, `..`, the canary path."""
    traversal = st.builds(
        lambda depth, prefix: prefix + "../" * depth + canary.lstrip("/"),
        st.integers(0, 8),
        st.sampled_from(["", "./", "x/", "sessions/", "/"]),
    )
    return st.one_of(
        st.sampled_from(
            ["", ".", "..", "/", "//", "\0", "a\0b", "seat0\0", "\ud800", "\udfff",
             "x" * 65536, "/" * 65536, "../" * 100, "seat0/..", "c1/../c1",
             "\\..\\", "%2e%2e%2f", canary]
        ),
        traversal,
        st.text(),
        st.text(alphabet=st.characters(categories=["Cs", "Cc", "Zs", "Po"])),
        st.binary().map(lambda b: b.decode("utf-8", "surrogateescape")),
        st.text(alphabet="./\\", max_size=40),
        st.none(),
        st.integers(),
        st.binary(max_size=20),
    )


def numbers() -> st.SearchStrategy[Any]:
    """Uids and pids: negative, huge, boundaries, and a few wrong types."""
    return st.one_of(
        st.sampled_from(
            [0, -1, -(2**31), 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**63, 2**64,
             2**200, -(2**200), CANARY_UID]
        ),
        st.integers(),
        st.none(),
        st.booleans(),
        st.floats(allow_nan=True),
        st.text(max_size=5),
    )


def _check_answer(function: str, answer: object) -> None:
    text = repr(answer)
    if CANARY_WORD in text or (
        function.startswith("session_get_uid") and answer == CANARY_UID
    ):
        raise AssertionError(f"{function} answered with the canary's content: {text[:200]}")


def call(function: Callable[..., Any], name: str, *args: Any) -> None:
    """Call one binding; raise AssertionError for anything but a value or an allowed error."""
    try:
        answer = function(*args)
    except sdlogin.UnsupportedError:
        if sdlogin.capabilities().get(f"sd_{name}", True):
            raise
        return
    except ALLOWED:
        return
    _check_answer(name, answer)


def main(argv: list[str]) -> int:
    """Run the fuzz loop; returns 0 when every call behaved."""
    canary, examples = argv[0], int(argv[1])
    strings, ints = names(canary), numbers()
    fast = settings(max_examples=examples, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))  # fmt: skip

    @fast
    @given(st.sampled_from(STRING_FUNCTIONS), strings, st.booleans())
    def string_functions(name: str, value: Any, flag: bool) -> None:
        call(getattr(sdlogin, name), name, value)

    @fast
    @given(st.sampled_from(INT_FUNCTIONS), ints, strings, st.booleans())
    def int_functions(name: str, number: Any, seat: Any, flag: bool) -> None:
        function = getattr(sdlogin, name)
        if name == "uid_is_on_seat":
            call(function, name, number, seat, flag)
        elif name in ("uid_get_sessions", "uid_get_seats"):
            call(function, name, number, flag)
        else:
            call(function, name, number)

    @fast
    @given(strings)
    def monitors(category: Any) -> None:
        try:
            monitor = sdlogin.Monitor(category)
        except ALLOWED:
            return
        monitor.close()

    string_functions()
    int_functions()
    monitors()
    print(f"fuzzed {len(STRING_FUNCTIONS) + len(INT_FUNCTIONS)} functions and Monitor")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
