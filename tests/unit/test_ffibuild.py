"""The pre-parsed cffi modules match their declarations, and the default start imports neither
pycparser nor what only some flags need (issue 20)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from login_exporter import ffibuild
from tests.support.exporter import ROOT


@pytest.mark.parametrize("name", sorted(ffibuild.declarations()))
def test_committed_module_is_what_the_declarations_generate(name: str) -> None:
    cdef = ffibuild.declarations()[name]
    committed = (ffibuild.PACKAGE / f"_ffi_{name}.py").read_text()
    assert committed == ffibuild.source(name, cdef), (
        f"login_exporter/_ffi_{name}.py is stale: run python3 -m login_exporter.ffibuild"
    )


def test_the_pre_parsed_ffi_is_used_only_for_its_own_declarations() -> None:
    cdef = ffibuild.declarations()["libc"]
    assert type(ffibuild.ffi_for("libc", cdef)).__module__ == "_cffi_backend"
    changed = cdef + "int inotify_init(void);\n"
    parsed = ffibuild.ffi_for("libc", changed)
    assert type(parsed).__module__ == "cffi.api"  # parsed now, with the new declaration
    assert parsed.dlopen(None).inotify_init is not None


IMPORTS = """
import sys
import login_exporter.cli, login_exporter.sdlogin
print(" ".join(sorted(m for m in ("pycparser", "yaml", "bcrypt") if m in sys.modules)))
"""


def test_the_default_start_imports_no_parser_yaml_or_bcrypt() -> None:
    result = subprocess.run(
        [sys.executable, "-c", IMPORTS], cwd=ROOT, capture_output=True, text=True, timeout=60,
        check=True,
    )  # fmt: skip
    assert result.stdout.split() == []
