"""A bench figure without a place in bench/run.py's ORDER fails the run (bench.run.figure_rank
raises) instead of sorting last; tests/bench/test_bench_quick.py runs every figure through it."""

from __future__ import annotations

import pytest

from bench.run import ORDER, figure_rank


def test_figures_sort_by_their_order_prefix() -> None:
    assert [figure_rank(prefix + ", at N") for prefix in ORDER] == list(range(len(ORDER)))


def test_a_figure_missing_from_order_fails() -> None:
    with pytest.raises(KeyError, match="'new figure' has no place"):
        figure_rank("new figure")
