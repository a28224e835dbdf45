"""The tests' private mount namespace: the host's /run/systemd is never touched."""

from __future__ import annotations

import os
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


UNIT_TESTS_AS_NOBODY = """
import sys
import pytest
from tests.support import namespace
status = pytest.main(["tests/unit", "-q", "-p", "no:cacheprovider"])
print("namespace entered:", namespace.entered())
sys.exit(int(status) or 3 * namespace.entered())
"""


def test_unit_tests_pass_as_an_unprivileged_user_without_a_namespace() -> None:
    # Unit tests are pure logic: no private mounts, no root, no writable checkout.
    result = subprocess.run(
        as_nobody(sys.executable, "-c", UNIT_TESTS_AS_NOBODY), cwd=ROOT, capture_output=True,
        text=True, timeout=300, check=False,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "namespace entered: False" in result.stdout
    assert " passed" in result.stdout and " failed" not in result.stdout
