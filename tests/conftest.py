"""Every test runs in a private mount namespace; ``logind`` gives it a fresh /run/systemd."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import namespace
from tests.support.logind_state import LogindState

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
REAL_252 = SHARED / "fixtures" / "real-252"


def pytest_configure(config: pytest.Config) -> None:
    # Before any test (and any thread): the host's /run/systemd is never touched after this.
    namespace.enter_private_namespace()


@pytest.fixture
def logind() -> Iterator[LogindState]:
    """A writer over an empty tmpfs on /run/systemd, private to this test."""
    namespace.mount_tmpfs()
    try:
        yield LogindState()
    finally:
        namespace.unmount()


@pytest.fixture
def real_252(logind: LogindState) -> LogindState:
    """/run/systemd holding the state a booted systemd 252 wrote (shared/fixtures/real-252)."""
    if not REAL_252.is_dir():
        pytest.fail(f"golden fixture missing: {REAL_252}")
    logind.copy_tree(REAL_252)
    return logind
