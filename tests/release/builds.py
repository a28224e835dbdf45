"""Build the release artifacts from the working tree, each once per test run, into temp dirs.

Every build runs on a copy of the tree (the builds write into it: debian/, build/, *.egg-info),
with Debian's own tools and PATH, so a pyenv or venv Python on the caller's PATH cannot leak in.
The time each step took is kept in ``TIMINGS`` and printed at the end of the run (conftest).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEBIAN_ENV = {
    "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
}
# What a clean checkout does not have: caches, earlier builds, VCS data.
_NOT_SOURCE = shutil.ignore_patterns(
    ".git", "__pycache__", "*.pyc", ".mypy_cache", ".ruff_cache", ".pytest_cache",
    ".hypothesis", "build", "dist", "*.egg-info", ".pybuild", "out", "sdlogin_floor",
)

TIMINGS: dict[str, float] = {}
SIZES: dict[str, str] = {}  # also other measured figures, printed as they are


class BuildError(AssertionError):
    """A build step failed; the message carries the command and its output."""


@contextmanager
def timed(step: str) -> Iterator[None]:
    """Record the wall-clock seconds the block took under ``step``."""
    start = time.monotonic()
    try:
        yield
    finally:
        TIMINGS[step] = TIMINGS.get(step, 0.0) + time.monotonic() - start


def copy_source(dest: Path) -> Path:
    """Copy the working tree (as a checkout would have it) to ``dest``; return ``dest``."""
    shutil.copytree(REPO, dest, ignore=_NOT_SOURCE, symlinks=True)
    return dest


def run(
    argv: Sequence[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run argv; return the finished process. Raises BuildError with its output on failure."""
    proc = subprocess.run(
        list(argv), cwd=cwd, env=env or DEBIAN_ENV, capture_output=True, text=True,
        timeout=timeout, check=False,
    )
    if proc.returncode != 0:
        raise BuildError(
            f"$ {' '.join(argv)} (in {cwd}) -> exit {proc.returncode}\n"
            f"--- stdout\n{proc.stdout[-6000:]}\n--- stderr\n{proc.stderr[-6000:]}"
        )
    return proc


def build_deb(workdir: Path) -> Path:
    """Build the binary package with dpkg-buildpackage in a copy of the tree under ``workdir``.

    Returns the path of the .deb (beside it: .changes and .buildinfo). Raises BuildError.
    """
    src = copy_source(workdir / "src")
    with timed("deb: dpkg-buildpackage -us -uc -b"):
        run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=src)
    debs = sorted(workdir.glob("login-exporter_*_all.deb"))
    if len(debs) != 1:
        raise BuildError(f"expected one .deb in {workdir}, found {debs}")
    SIZES["login-exporter .deb"] = f"{debs[0].stat().st_size / 1024:.0f} KiB"
    return debs[0]


def build_python_dists(workdir: Path, python: str) -> tuple[Path, Path]:
    """``python -m build`` (sdist, then the wheel from it) in a copy of the tree.

    Returns (sdist, wheel) in ``workdir/dist``. Raises BuildError.
    """
    src = copy_source(workdir / "src")
    dist = workdir / "dist"
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
    with timed("wheel: python -m build (sdist + wheel)"):
        run([python, "-m", "build", "--outdir", str(dist), str(src)], cwd=workdir, env=env)
    sdists, wheels = sorted(dist.glob("*.tar.gz")), sorted(dist.glob("*.whl"))
    if len(sdists) != 1 or len(wheels) != 1:
        raise BuildError(f"expected one sdist and one wheel in {dist}: {sdists} {wheels}")
    SIZES["wheel"] = f"{wheels[0].stat().st_size / 1024:.0f} KiB"
    SIZES["sdist"] = f"{sdists[0].stat().st_size / 1024:.0f} KiB"
    return sdists[0], wheels[0]
