"""Fixtures for the tests: ``logind`` gives a test a fresh /run/systemd of its own.

Only tests that ask for ``logind`` (or carry the ``private_mounts`` or ``e2e`` marker) get a
private mount namespace; the rest, tests/unit among them, run as any user with no namespace.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import namespace
from tests.support.golden import REAL_252, REAL_262_MULTISEAT
from tests.support.logind_state import LogindState

PRIVATE_MOUNTS = "private_mounts"


def _needs_private_mounts(item: pytest.Item) -> bool:
    fixtures = getattr(item, "fixturenames", ())
    # e2e: the booted container's overlay must be mounted where the host cannot see it.
    marked = any(item.get_closest_marker(name) for name in (PRIVATE_MOUNTS, "e2e"))
    return PRIVATE_MOUNTS in fixtures or marked


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{PRIVATE_MOUNTS}: runs in the tests' private mount namespace"
    )


def pytest_collection_finish(session: pytest.Session) -> None:
    # unshare() must come before any thread starts, so the namespace is entered here, once, when
    # a selected test needs it, rather than lazily by the first such test.
    if any(_needs_private_mounts(item) for item in session.items):
        namespace.enter_private_namespace()


@pytest.fixture(autouse=True)
def _private_mounts_by_marker(request: pytest.FixtureRequest) -> None:
    if _needs_private_mounts(request.node):
        request.getfixturevalue(PRIVATE_MOUNTS)


@pytest.fixture(scope="session")
def private_mounts() -> None:
    """This process's private mount namespace (entered at collection; here as a fallback).

    Raises OSError when the kernel refuses it (e.g. threads already running).
    """
    namespace.enter_private_namespace()


@pytest.fixture
def logind(private_mounts: None) -> Iterator[LogindState]:
    """A writer over an empty tmpfs on /run/systemd, private to this test."""
    namespace.mount_tmpfs()
    try:
        yield LogindState()
    finally:
        namespace.unmount()


@pytest.fixture
def real_252(logind: LogindState) -> LogindState:
    """/run/systemd holding the state a booted systemd 252 wrote (tests/fixtures/real-252)."""
    logind.copy_tree(REAL_252)
    return logind


@pytest.fixture
def real_262_multiseat(logind: LogindState) -> LogindState:
    """/run/systemd holding the state a booted systemd 262 wrote with seat1..seat3
    (tests/fixtures/real-262-multiseat)."""
    logind.copy_tree(REAL_262_MULTISEAT)
    return logind
