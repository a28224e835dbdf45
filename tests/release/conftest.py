"""Release artifacts, built once per run; the time each build step took is printed at the end."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.release import builds
from tests.release.podman import IMAGE, Image, Podman


@pytest.fixture(scope="session")
def debian_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The .deb built from this tree by dpkg-buildpackage (its .changes lies beside it)."""
    return builds.build_deb(tmp_path_factory.mktemp("deb"))


@pytest.fixture(scope="session")
def python_dists(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(sdist, wheel) built from this tree by ``python -m build``."""
    return builds.build_python_dists(tmp_path_factory.mktemp("dist"), sys.executable)


@pytest.fixture(scope="session")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Podman:
    return Podman(tmp_path_factory.mktemp("podman"))


@pytest.fixture(scope="session")
def container_image(podman: Podman) -> Iterator[Image]:
    """The Dockerfile built once per run with podman (on the stand-in base where it is one)."""
    podman("rmi", "--force", IMAGE, check=False)  # left by an interrupted run
    image = podman.build()
    try:
        yield image
    finally:
        podman("rmi", "--force", IMAGE, check=False)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not builds.TIMINGS and not builds.SIZES:
        return
    terminalreporter.section("release: build steps and sizes")
    for step, seconds in builds.TIMINGS.items():
        terminalreporter.write_line(f"{seconds:7.1f} s  {step}")
    for what, size in builds.SIZES.items():
        terminalreporter.write_line(f"{size:>9}  {what}")
