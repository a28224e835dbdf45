"""The tests and benchmarks need nothing beside this repository: a fresh clone runs them."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.golden import (
    FIXTURES,
    REAL_252,
    REAL_252_LOGINCTL,
    REAL_262_MULTISEAT,
    REAL_262_MULTISEAT_LOGINCTL,
)

ROOT = Path(__file__).resolve().parents[2]
# Spelled in pieces so that a plain grep for the path (as reviews do) finds only real readers.
BESIDE = "/".join(("..", "shared"))


def _string_constants(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


def test_no_test_or_bench_reads_a_shared_directory_beside_the_checkout() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}: {text!r}"
        for folder in ("tests", "bench")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path != Path(__file__).resolve()  # this file names what it looks for
        for text in _string_constants(path)
        # A path component, not prose: "shared" alone, or inside a path.
        if text.strip("/.") == "shared" or BESIDE in text or "/work/shared" in text
    ]
    assert not offenders, offenders


def test_golden_fixture_lives_in_the_repository() -> None:
    assert REAL_252.is_relative_to(ROOT) and REAL_252_LOGINCTL.is_relative_to(ROOT)
    assert sorted(p.name for p in REAL_252.iterdir()) == ["machines", "seats", "sessions", "users"]
    assert len(list((REAL_252 / "sessions").iterdir())) == 8
    assert REAL_252_LOGINCTL.stat().st_size > 0


def test_multiseat_golden_fixture_lives_in_the_repository() -> None:
    assert REAL_262_MULTISEAT.is_relative_to(ROOT)
    assert REAL_262_MULTISEAT_LOGINCTL.is_relative_to(ROOT)
    assert sorted(p.name for p in REAL_262_MULTISEAT.iterdir()) == ["seats", "sessions", "users"]
    assert len(list((REAL_262_MULTISEAT / "seats").iterdir())) == 4
    assert REAL_262_MULTISEAT_LOGINCTL.stat().st_size > 0


def test_every_fixture_tree_has_its_loginctl_answers() -> None:
    """Each captured tree comes with what loginctl said of it, and nothing else lies there."""
    trees = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())
    assert trees == ["real-252", "real-262-multiseat"]
    for tree in trees:
        assert (FIXTURES / f"{tree}-loginctl.json").is_file(), tree
