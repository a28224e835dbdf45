"""The service files for inits other than systemd (deploy/openrc, deploy/runit; the sysvinit
script is installed and run on a booted elogind host by tests/e2e/test_elogind.py): valid shell,
the same user, flags variable and SIGHUP re-read as the systemd unit."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "deploy/systemd/login-exporter.service"
SYSUSERS = REPO / "deploy/systemd/login-exporter.sysusers"
OPENRC = REPO / "deploy/openrc/login-exporter"
OPENRC_CONF = REPO / "deploy/openrc/login-exporter.confd"
RUNIT = REPO / "deploy/runit/login-exporter/run"
RUNIT_LOG = REPO / "deploy/runit/login-exporter/log/run"
SYSVINIT = REPO / "deploy/sysvinit/login-exporter.init"
SCRIPTS = (OPENRC, RUNIT, RUNIT_LOG, SYSVINIT)


def unit_user() -> str:
    """The user the systemd unit runs as (and sysusers creates)."""
    user = re.search(r"^User=(\S+)$", UNIT.read_text(), re.M)
    assert user, "the unit names no User="
    assert re.search(rf"^u {re.escape(user[1])} ", SYSUSERS.read_text(), re.M)
    return user[1]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(REPO)))
def test_each_script_is_valid_shell_and_executable(script: Path) -> None:
    done = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert script.stat().st_mode & 0o111, f"{script} is not executable"
    assert script.read_text().startswith("#!"), f"{script} has no interpreter line"


def test_openrc_runs_as_the_units_user_with_its_flags_supervised() -> None:
    text = OPENRC.read_text()
    assert text.startswith("#!/sbin/openrc-run\n")
    user = unit_user()
    assert f'command_user="{user}:{user}"' in text
    assert 'command_args="${LOGIN_EXPORTER_ARGS}"' in text
    assert 'supervisor="supervise-daemon"' in text  # restarted when it dies
    assert re.search(r"depend\(\) \{[^}]*need dbus[^}]*use elogind", text, re.S)
    assert "--signal HUP" in text  # reload re-reads logind's state, as the unit's ExecReload
    assert re.search(r'^LOGIN_EXPORTER_ARGS=""$', OPENRC_CONF.read_text(), re.M)


def test_runit_runs_as_the_units_user_with_the_same_environment_file() -> None:
    text = RUNIT.read_text()
    user = unit_user()
    exec_line = text.strip().splitlines()[-1]
    assert exec_line == (f'exec chpst -u {user}:{user} "$LOGIN_EXPORTER_COMMAND" '
                         "$LOGIN_EXPORTER_ARGS")
    environment = re.search(r"^EnvironmentFile=-(\S+)$", UNIT.read_text(), re.M)
    assert environment and f"[ -r {environment[1]} ] && . {environment[1]}" in text
    assert "exec svlogd" in RUNIT_LOG.read_text()


def test_every_init_names_the_same_flags_variable() -> None:
    # /etc/default/login-exporter (deploy/systemd/login-exporter.default) sets it for all.
    assert "$LOGIN_EXPORTER_ARGS" in UNIT.read_text()
    for script in (OPENRC, RUNIT, SYSVINIT):
        assert "LOGIN_EXPORTER_ARGS" in script.read_text(), script
