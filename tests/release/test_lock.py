"""requirements.lock / requirements-build.lock: every package the image is built from, pinned
with hashes, and in step with pyproject.toml (`bash .ci/lock` regenerates both)."""

from __future__ import annotations

import os
import re
import shutil
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.release.builds import REPO, run, timed

LOCKS = ("requirements.lock", "requirements-build.lock")
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^ \\]+)")


def pins(lock: Path) -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes) for every pin in ``lock``."""
    out: dict[str, tuple[str, int]] = {}
    name = ""
    for line in lock.read_text().splitlines():
        if m := PIN.match(line):
            name = m.group(1).lower().replace("_", "-")
            out[name] = (m.group(2), 0)
        elif line.strip().startswith("--hash=sha256:") and name:
            version, hashes = out[name]
            out[name] = (version, hashes + 1)
    return out


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def regenerate(tmp_path: Path, pyproject: str | None = None) -> Path:
    """Run .ci/lock in a copy of the files it reads and writes; return the copy's root."""
    (tmp_path / ".ci").mkdir()
    shutil.copy(REPO / ".ci/lock", tmp_path / ".ci/lock")
    (tmp_path / "pyproject.toml").write_text(
        pyproject if pyproject is not None else (REPO / "pyproject.toml").read_text())
    for lock in LOCKS:
        shutil.copy(REPO / lock, tmp_path / lock)
    # uv is pip-installed beside the interpreter running the tests (.ci/requirements-ci.txt).
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    run(["bash", str(tmp_path / ".ci/lock")], cwd=tmp_path, env=env, timeout=300)
    return tmp_path


@pytest.mark.parametrize(("lock", "section"), [
    ("requirements.lock", ("project", "dependencies")),
    ("requirements-build.lock", ("build-system", "requires")),
])
def test_every_requirement_is_pinned_with_hashes(lock: str, section: tuple[str, str]) -> None:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    requirements = [Requirement(r) for r in data[section[0]][section[1]]]
    pinned = pins(REPO / lock)
    assert pinned, lock
    for req in requirements:
        name = normalise(req.name)
        assert name in pinned, f"{req} is not pinned in {lock}: run `bash .ci/lock`"
        assert req.specifier.contains(pinned[name][0]), (
            f"{lock} pins {name}=={pinned[name][0]}, pyproject.toml wants {req}")
    unhashed = [name for name, (_, hashes) in pinned.items() if hashes == 0]
    assert not unhashed, f"pins without hashes in {lock}: {unhashed}"


def test_locks_are_what_ci_lock_makes_from_pyproject(tmp_path: Path) -> None:
    with timed("image: .ci/lock re-run (lock in step with pyproject.toml)"):
        copy = regenerate(tmp_path)
    for lock in LOCKS:
        assert (copy / lock).read_text() == (REPO / lock).read_text(), (
            f"{lock} is out of step with pyproject.toml: run `bash .ci/lock` and commit it")


def test_a_new_dependency_puts_the_lock_out_of_step(tmp_path: Path) -> None:
    """The check above can fail: a dependency added to pyproject.toml changes the lock."""
    text = (REPO / "pyproject.toml").read_text()
    changed = text.replace('dependencies = [\n', 'dependencies = [\n  "packaging>=23",\n', 1)
    assert changed != text
    copy = regenerate(tmp_path, changed)
    assert (copy / "requirements.lock").read_text() != (REPO / "requirements.lock").read_text()
    assert "packaging" in pins(copy / "requirements.lock")
