"""Loading libsystemd lazily: importing works without it; the first call names the sonames."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support.logind_state import LogindState

ROOT = Path(__file__).resolve().parents[2]

MISSING = textwrap.dedent(
    """
    import errno
    from pathlib import Path

    import login_exporter.sdlogin._ffi as ffi_module
    ffi_module.SONAMES = ("libsystemd-absent-a.so.0", "libsystemd-absent-b.so")

    from login_exporter import sdlogin  # importing must not load anything
    import login_exporter  # noqa: F401

    assert "libsystemd" not in Path("/proc/self/maps").read_text(), "loaded at import"
    for call in (sdlogin.sessions, sdlogin.Monitor, sdlogin.capabilities,
                 lambda: sdlogin.session_get_state("1")):
        try:
            call()
        except OSError as exc:
            text = str(exc)
            assert "libsystemd-absent-a.so.0" in text, text
            assert "libsystemd-absent-b.so" in text, text
            assert not isinstance(exc, (ValueError, NotImplementedError)), type(exc)
        else:
            raise AssertionError(f"{call} did not raise")
    print("OK", text)
    """
)

LAZY = textwrap.dedent(
    """
    from pathlib import Path
    from login_exporter import sdlogin
    assert "libsystemd" not in Path("/proc/self/maps").read_text(), "loaded at import"
    sdlogin.sessions()
    assert "libsystemd.so.0" in Path("/proc/self/maps").read_text(), "not loaded by a call"
    print("OK", sdlogin.abi_version())
    """
)


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_import_works_without_libsystemd_and_first_call_names_sonames(
    logind: LogindState,
) -> None:
    result = _run(MISSING)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("OK cannot load libsystemd or libelogind"), result.stdout


def test_libsystemd_is_loaded_on_first_call_only(logind: LogindState) -> None:
    result = _run(LAZY)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "OK 252"
