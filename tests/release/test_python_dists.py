"""The sdist and the wheel: built with `python -m build`, checked by twine, installed into a
fresh venv and run there (`--version`, `--once` over a real systemd 252 state tree)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from login_exporter import __version__
from tests.release.builds import REPO, run, timed
from tests.support.logind_state import LogindState

ENV = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")


def test_twine_check_passes(python_dists: tuple[Path, Path]) -> None:
    with timed("wheel: twine check --strict"):
        run([sys.executable, "-m", "twine", "check", "--strict", *map(str, python_dists)],
            cwd=python_dists[0].parent, env=ENV)


def test_version_comes_from_the_package(python_dists: tuple[Path, Path]) -> None:
    sdist, wheel = python_dists
    assert sdist.name == f"login_exporter-{__version__}.tar.gz"
    assert wheel.name == f"login_exporter-{__version__}-py3-none-any.whl"
    # One place: pyproject.toml takes it from login_exporter.__version__, nobody repeats it.
    assert re.search(r'dynamic = \["version"\]', (REPO / "pyproject.toml").read_text())
    assert 'attr = "login_exporter.__version__"' in (REPO / "pyproject.toml").read_text()
    changelog = (REPO / "CHANGELOG.md").read_text()
    assert f"## [{__version__}] - " in changelog, "CHANGELOG.md has no entry for this version"


def test_changelog_keeps_a_changelog(python_dists: tuple[Path, Path]) -> None:
    text = (REPO / "CHANGELOG.md").read_text()
    assert text.startswith("# Changelog\n")
    assert "https://keepachangelog.com/en/1.1.0/" in text
    assert "## [Unreleased]" in text
    releases = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - (\d{4}-\d{2}-\d{2})$", text, re.M)
    assert releases and releases[0][0] == __version__, releases
    sections = set(re.findall(r"^### (\w+)$", text, re.M))
    assert sections <= {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}


def test_wheel_holds_the_package_and_nothing_else(python_dists: tuple[Path, Path]) -> None:
    names = zipfile.ZipFile(python_dists[1]).namelist()
    assert "login_exporter/py.typed" in names
    assert "login_exporter/sdlogin/_ffi.py" in names
    tops = {n.split("/")[0] for n in names}
    assert tops == {"login_exporter", f"login_exporter-{__version__}.dist-info"}, tops
    meta = zipfile.ZipFile(python_dists[1]).read(
        f"login_exporter-{__version__}.dist-info/METADATA").decode()
    requires = re.findall(r"^Requires-Dist: ([A-Za-z0-9_.-]+)", meta, re.M)
    assert {r.lower().replace("_", "-") for r in requires} >= {
        "prometheus-client", "cffi", "pyyaml", "bcrypt"}


def test_sdist_builds_everything_the_wheel_needs(python_dists: tuple[Path, Path]) -> None:
    with tarfile.open(python_dists[0]) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert {"pyproject.toml", "README.md", "login_exporter/cli.py"} <= names
    assert not [n for n in names if n.startswith(".git/") or "__pycache__" in n]


def test_wheel_in_a_fresh_venv_runs_once_over_a_real_tree(
    python_dists: tuple[Path, Path], real_252: LogindState, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    with timed("wheel: fresh venv + pip install + run"):
        run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path, env=ENV)
        run([str(venv / "bin/pip"), "install", "-q", str(python_dists[1])], cwd=tmp_path,
            env=ENV, timeout=300)
        version = run([str(venv / "bin/login-exporter"), "--version"], cwd=tmp_path, env=ENV)
        once = run([str(venv / "bin/login-exporter"), "--once"], cwd=tmp_path, env=ENV)
    assert version.stdout.strip() == f"login-exporter {__version__}"
    # It runs the installed copy, not this checkout.
    show = "import login_exporter; print(login_exporter.__file__)"
    where = run([str(venv / "bin/python"), "-c", show], cwd=tmp_path, env=ENV).stdout
    assert where.startswith(str(venv)), where

    # The same exposition as the working tree gives over the same files (minus what differs
    # from run to run: process and timing metrics).
    here = subprocess.run([sys.executable, "-m", "login_exporter", "--once"], cwd=REPO,
                          capture_output=True, text=True, check=True).stdout

    def stable(text: str) -> list[str]:
        return [ln for ln in text.splitlines()
                if ln.startswith("logind_") and not ln.startswith("logind_exporter_")]

    assert "logind_up 1.0" in once.stdout
    sessions = [ln for ln in stable(once.stdout) if ln.startswith("logind_sessions{")]
    assert sum(float(ln.rsplit(" ", 1)[1]) for ln in sessions) == len(
        [p for p in (real_252.root / "sessions").iterdir() if not p.name.endswith(".ref")])
    assert stable(once.stdout) == stable(here)


@pytest.mark.parametrize("flag", ["--version", "--help"])
def test_module_and_console_script_agree(flag: str) -> None:
    """`python -m login_exporter` is the same program as the console script (metrics.md)."""
    proc = run([sys.executable, "-m", "login_exporter", flag], cwd=REPO, env=ENV)
    assert proc.stdout.startswith("login-exporter" if flag == "--version" else "usage: ")
