"""deploy/systemd/login-exporter.default: every example flag line is accepted by the real CLI.

Each commented-out LOGIN_EXPORTER_ARGS example is run as `login-exporter ARGS --once` over the
real-252 state tree; a flag the exporter does not know exits 2 and fails the test.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.deploy.tools import DEPLOY, describe, find_tool, run
from tests.support.logind_state import LogindState

EXAMPLE = DEPLOY / "systemd" / "login-exporter.default"
EXAMPLES = re.findall(r'^#LOGIN_EXPORTER_ARGS="([^"]+)"$', EXAMPLE.read_text(), re.M)


def test_example_file_has_examples_and_sets_only_the_args_variable() -> None:
    assert len(EXAMPLES) >= 3
    settings = [ln for ln in EXAMPLE.read_text().splitlines() if ln and not ln.startswith("#")]
    assert settings == ['LOGIN_EXPORTER_ARGS=""']


@pytest.mark.parametrize("args", EXAMPLES)
def test_example_flags_are_accepted_by_the_exporter(
    args: str, real_252: LogindState, tmp_path: Path
) -> None:
    argv = args.split()
    for i, flag in enumerate(argv):
        if flag.startswith("--web.config.file="):
            web = tmp_path / "web.yml"  # the example's path, with a minimal valid config
            web.write_text("basic_auth_users: {}\n")
            argv[i] = f"--web.config.file={web}"
    proc = run([find_tool("login-exporter"), *argv, "--once"])
    assert proc.returncode == 0, describe(proc)
    assert "\nlogind_up 1" in proc.stdout or proc.stdout.startswith("logind_up 1"), describe(proc)
