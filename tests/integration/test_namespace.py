"""The tests' private mount namespace: the host's /run/systemd is never touched."""

from __future__ import annotations

import secrets
import subprocess
import sys

from tests.support.exporter import ROOT
from tests.support.logind_state import LogindState
from tests.support.unprivileged import as_nobody


def test_state_written_by_a_test_is_invisible_to_the_host(logind: LogindState) -> None:
    name = f"probe{secrets.token_hex(4)}"
    logind.session(name, uid=4242)
    assert (logind.root / "sessions" / name).exists()
    # PID 1 lives in the host's mount namespace.
    host = subprocess.run(
        ["nsenter", "--target", "1", "--mount", "--", "ls", "-a", "/run/systemd/sessions"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert name not in host.stdout, host.stdout


PROBE = """
import os
from tests.support import namespace
namespace.enter_private_namespace()
namespace.mount_tmpfs()
from tests.support.logind_state import LogindState
LogindState().session("7", uid=4242)
from login_exporter import sdlogin
print(os.geteuid(), sdlogin.sessions(), sdlogin.session_get_uid("7"))
"""


def test_an_unprivileged_user_gets_its_own_run_systemd_through_a_user_namespace() -> None:
    result = subprocess.run(
        as_nobody(sys.executable, "-c", PROBE), cwd=ROOT, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # Root inside its user namespace (mapped from 65534), reading its own tmpfs through libsystemd.
    assert result.stdout.split("\n")[0] == "0 ['7'] 4242"
