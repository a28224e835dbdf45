"""The binding and the exporter on elogind's library: Debian 12's real libelogind.so.0 (246).

The package is never installed on the host (it conflicts with libsystemd0): ``.ci/libelogind``
downloads and unpacks it into the cache outside the clone. Each test runs the binding in a child
process, since a process loads one library for good; the child shares this test's private
/run/systemd holding the golden fixture (tests/fixtures/real-252), so both libraries read the
same files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from login_exporter import sdlogin
from tests.support.exporter import ROOT
from tests.support.logind_state import LogindState

ENVIRONMENT = "LOGIN_EXPORTER_SDLOGIN_LIBRARY"
OPTIONAL = (
    "sd_session_get_username",
    "sd_session_get_start_time",
    "sd_session_get_leader",
    "sd_uid_get_login_time",
)


@pytest.fixture(scope="module")
def libelogind() -> Path:
    """Debian 12's libelogind.so.0 (a link to the real file), unpacked outside the clone."""
    result = subprocess.run(
        ["bash", str(ROOT / ".ci" / "libelogind")], capture_output=True, text=True, timeout=600
    )
    if result.returncode == 3:
        pytest.skip(f"apt offers no libelogind0 here (not Debian 12): {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    return Path(result.stdout.strip())


# Everything the binding says about the state, per object, as JSON (run in a child process).
DUMP = textwrap.dedent(
    """
    import json
    from login_exporter import sdlogin
    out = {"library": sdlogin.library(), "abi": sdlogin.abi_version(),
           "path": sdlogin.library_path(), "capabilities": sdlogin.capabilities()}
    out["sessions"] = {
        s: [sdlogin.session_get_uid(s), sdlogin.session_get_state(s), sdlogin.session_get_seat(s),
            sdlogin.session_get_type(s), sdlogin.session_get_class(s),
            sdlogin.session_get_service(s), sdlogin.session_is_remote(s),
            sdlogin.session_is_active(s), sdlogin.session_get_tty(s),
            sdlogin.session_get_remote_host(s), sdlogin.session_get_desktop(s)]
        for s in sorted(sdlogin.sessions())}
    out["seats"] = {
        s: [sdlogin.seat_get_active(s), sorted(sdlogin.seat_get_sessions(s)),
            sdlogin.seat_can_tty(s), sdlogin.seat_can_graphical(s)]
        for s in sorted(sdlogin.seats())}
    out["users"] = {
        str(u): [sdlogin.uid_get_state(u), sorted(sdlogin.uid_get_sessions(u)),
                 sdlogin.uid_get_display(u)]
        for u in sorted(sdlogin.uids())}
    out["machines"] = sorted(sdlogin.machine_names())
    unsupported = {}
    for call in (lambda: sdlogin.session_get_username(next(iter(out["sessions"]))),
                 lambda: sdlogin.session_get_start_time(next(iter(out["sessions"]))),
                 lambda: sdlogin.session_get_leader(next(iter(out["sessions"]))),
                 lambda: sdlogin.uid_get_login_time(int(next(iter(out["users"]))))):
        try:
            call()
        except NotImplementedError as exc:
            unsupported[len(unsupported)] = str(exc)
    out["unsupported"] = list(unsupported.values())
    print(json.dumps(out))
    """
)


def _child(code: str, env: dict[str, str] | None = None, wrap: list[str] | None = None,
           ) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != ENVIRONMENT}
    environment.update(env or {})
    return subprocess.run(
        [*(wrap or []), sys.executable, "-c", code],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60, check=False,
    )


def _dump(env: dict[str, str] | None = None, wrap: list[str] | None = None) -> dict[str, object]:
    result = _child(DUMP, env, wrap)
    assert result.returncode == 0, result.stderr
    dumped: dict[str, object] = json.loads(result.stdout)
    return dumped


def test_libelogind_reads_the_golden_tree_as_libsystemd_does(
    real_252: LogindState, libelogind: Path
) -> None:
    systemd = _dump()
    elogind = _dump({ENVIRONMENT: str(libelogind)})
    assert systemd["library"] == "libsystemd" and elogind["library"] == "libelogind"
    assert Path(str(elogind["path"])).name.startswith("libelogind.so.0")
    assert elogind["abi"] == "246" and systemd["abi"] == sdlogin.abi_version()
    assert elogind["capabilities"] == dict.fromkeys(OPTIONAL, False)
    # The four getters newer than 246 raise UnsupportedError (a NotImplementedError) naming
    # the function and the release that added it, rather than crashing or answering wrong.
    unsupported = elogind["unsupported"]
    assert isinstance(unsupported, list) and len(unsupported) == 4
    for name, text in zip(OPTIONAL, unsupported, strict=True):
        assert name in text and "254" in text, text
    for part in ("sessions", "seats", "users", "machines"):
        assert elogind[part] == systemd[part], part
    sessions = elogind["sessions"]
    assert isinstance(sessions, dict) and len(sessions) == 8  # not vacuous


def test_only_libelogind_visible_is_found_by_its_soname(
    real_252: LogindState, libelogind: Path, tmp_path: Path
) -> None:
    # Alpine, Gentoo, Void: libelogind.so.0 and no libsystemd.so.0 anywhere. The host's own
    # libsystemd is hidden behind /dev/null in a mount namespace of the child's own, and the
    # directory searched holds libelogind.so.0 alone (Debian's package adds a libsystemd.so.0).
    only = tmp_path / "lib"
    only.mkdir()
    shutil.copy2(libelogind.resolve(), only / "libelogind.so.0")
    host = Path(sdlogin.library_path() or "")
    assert host.name.startswith("libsystemd.so")
    wrap = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            f'mount --bind /dev/null "{host}" && exec "$0" "$@"']
    dumped = _dump({"LD_LIBRARY_PATH": str(only)}, wrap)
    assert dumped["library"] == "libelogind", dumped
    assert dumped["path"] == str(only / "libelogind.so.0")
    sessions = dumped["sessions"]
    assert isinstance(sessions, dict) and len(sessions) == 8


def test_nothing_loadable_names_every_soname_tried(real_252: LogindState) -> None:
    code = textwrap.dedent(
        """
        import login_exporter.sdlogin._ffi as f
        f.SONAMES = tuple("absent-" + name for name in f.SONAMES)
        from login_exporter import sdlogin
        try:
            sdlogin.sessions()
        except OSError as exc:
            print(exc)
        """
    )
    result = _child(code)
    assert result.returncode == 0, result.stderr
    for name in ("libsystemd.so.0", "libelogind.so.0", "libsystemd.so", "libelogind.so"):
        assert f"absent-{name}:" in result.stdout, result.stdout
    assert "--sdlogin.library" in result.stdout and ENVIRONMENT in result.stdout


def _once(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != ENVIRONMENT}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "login_exporter", "--once", "--no-collector.dbus", *args],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60, check=False,
    )


def _logind_lines(exposition: str) -> list[str]:
    """The logind_* samples, without the exporter's own (timings, build info)."""
    return [line for line in exposition.splitlines()
            if line.startswith("logind_") and not line.startswith("logind_exporter_")]


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_exporter_on_libelogind_serves_the_same_logind_metrics(
    real_252: LogindState, libelogind: Path, how: str
) -> None:
    systemd = _once()
    assert systemd.returncode == 0, systemd.stderr
    if how == "flag":
        elogind = _once("--sdlogin.library", str(libelogind))
    else:
        elogind = _once(env={ENVIRONMENT: str(libelogind)})
    assert elogind.returncode == 0, elogind.stderr
    assert 'library="libelogind"' in elogind.stdout and 'libsystemd_version="246"' in elogind.stdout
    assert 'library="libsystemd"' in systemd.stdout
    ours = _logind_lines(elogind.stdout)
    assert ours == _logind_lines(systemd.stdout)
    assert "logind_up 1.0" in ours and any(line.startswith("logind_sessions{") for line in ours)
    # Durations fall back to the exporter's first sight, and HELP says so.
    assert "session (libsystemd and libelogind older than 254" in elogind.stdout


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_a_wrong_library_path_is_a_bad_command_line(
    real_252: LogindState, tmp_path: Path, how: str
) -> None:
    missing = str(tmp_path / "libelogind.so.0")
    if how == "flag":
        result = _once("--sdlogin.library", missing)
    else:
        result = _once(env={ENVIRONMENT: missing})
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "argument --sdlogin.library" in result.stderr and missing in result.stderr
    assert "Traceback" not in result.stderr
    not_sdlogin = _once("--sdlogin.library", "libc.so.6")
    assert not_sdlogin.returncode == 2 and "sd_get_sessions" in not_sdlogin.stderr
