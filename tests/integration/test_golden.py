"""Golden expositions: the real process on each captured tree (tests/support/golden.py's
GOLDEN_TREES) prints and serves exactly the kept files, after normalising what differs between
runs. Every family, label, HELP and value change shows up as a diff of those files;
``UPDATE_GOLDEN=1 python3 -m pytest tests/integration/test_golden.py`` rewrites them.

The bus is off here (--no-collector.dbus): its families are kept golden from a bus view in
tests/unit/test_golden.py.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.exporter import ROOT, running_exporter
from tests.support.golden import FIXTURES, GOLDEN_TREES, check_golden
from tests.support.logind_state import LogindState

# The bus is followed elsewhere; the process_* and python_* metrics differ on every run. The
# opt-in logind_session_info is on, so that the files hold every family of sd-login.
FLAGS = ("--no-collector.dbus", "--web.disable-exporter-metrics", "--collector.session-info")
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def once(*flags: str) -> str:
    """Return what ``login-exporter --once`` prints with ``flags``. Raises AssertionError when
    it fails."""
    result = subprocess.run(
        [sys.executable, "-m", "login_exporter", "--once", *FLAGS, *flags],
        cwd=ROOT, capture_output=True, text=True, timeout=20,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("tree", GOLDEN_TREES)
def test_once_prints_and_the_server_serves_the_golden_expositions(
    tree: str, logind: LogindState
) -> None:
    logind.copy_tree(FIXTURES / tree)
    check_golden(FIXTURES / f"{tree}-once.prom", once())
    with running_exporter(*FLAGS, ready_path="/-/ready") as exporter:
        text = exporter.get()
        openmetrics = exporter.get(headers={"Accept": OPENMETRICS})
    assert text.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert openmetrics.headers["Content-Type"].startswith("application/openmetrics-text")
    # The text body served is the one --once prints: one golden file for both.
    check_golden(FIXTURES / f"{tree}-once.prom", text.text)
    check_golden(FIXTURES / f"{tree}-metrics.om", openmetrics.text)
