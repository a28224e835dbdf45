"""The golden fixtures kept in this repository: real logind state, what loginctl said of it, and
the expositions the exporter makes of them (tests/fixtures/README.md says how each was made).

An expected exposition is compared exactly after :func:`normalise`; ``UPDATE_GOLDEN=1`` makes
:func:`check_golden` rewrite it instead, so a metric change shows up as its diff in review.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
REAL_252 = FIXTURES / "real-252"
"""/run/systemd/{sessions,seats,users,machines} as a booted systemd 252 wrote them."""
REAL_252_LOGINCTL = FIXTURES / "real-252-loginctl.json"

# Every captured /run/systemd tree under tests/fixtures whose expositions are kept as golden
# files (<tree>-once.prom, <tree>-metrics.om). Adding a tree is
# one line here, then `UPDATE_GOLDEN=1 python3 -m pytest tests/integration/test_golden.py`.
GOLDEN_TREES = ("real-252", "real-262-multiseat")
# Bus views kept as golden files: <view>.json (what a booted logind answered on its bus,
# recorded by tests/e2e/record_bus_view.py) -> <view>.prom.
GOLDEN_BUS_VIEWS = ("bus-252",)

UPDATE = "UPDATE_GOLDEN"

# What differs between two runs or two machines, and nothing else: the versions in
# logind_exporter_build_info, when the snapshot was taken, how long refreshes took, and where a
# session's start and its user name come from (the host's libsystemd: 254 and newer have
# sd_session_get_start_time and sd_session_get_username; older ones leave the name to the host's
# passwd database, which knows none of the fixture's users or some other ones).
_VERSION_LABEL = re.compile(r'(\w*version)="[^"]*"')
_USER_LABEL = re.compile(r'(?<=[{,])user="[^"]*"')
_TIMESTAMP = re.compile(r"^(logind_exporter_last_refresh_timestamp_seconds) \S+$", re.MULTILINE)
_DURATION = re.compile(
    r"^(logind_exporter_refresh_duration_seconds_(?:bucket\{[^}]*\}|sum)) \S+$", re.MULTILINE
)
_START_SOURCE = re.compile(r"(its start is taken from ).*$", re.MULTILINE)


def normalise(exposition: str) -> str:
    """Return ``exposition`` with its run- and machine-dependent parts replaced by placeholders.

    ``*version`` label values of build_info become ``<version>``, the ``user`` label values of
    logind_session_info ``<user>`` and its lines are sorted (they come in the order of
    sd_get_sessions, i.e. of the directory's entries); the value of
    ``logind_exporter_last_refresh_timestamp_seconds`` becomes ``<timestamp>``; the bucket
    and sum values of ``logind_exporter_refresh_duration_seconds`` become ``<duration>`` (its
    count stays: it is the number of refreshes); the end of the session-duration HELP naming
    where a session's start is read from becomes ``<start source>``.
    """
    lines, session_info = [], []
    for line in exposition.splitlines(keepends=True):
        if line.startswith("logind_exporter_build_info{"):
            line = _VERSION_LABEL.sub(r'\1="<version>"', line)
        elif line.startswith("logind_session_info{"):
            session_info.append(_USER_LABEL.sub('user="<user>"', line))
            continue
        elif session_info:
            lines.extend(sorted(session_info))
            session_info = []
        lines.append(line)
    lines.extend(sorted(session_info))
    text = "".join(lines)
    text = _TIMESTAMP.sub(r"\1 <timestamp>", text)
    text = _DURATION.sub(r"\1 <duration>", text)
    return _START_SOURCE.sub(r"\1<start source>", text)


def check_golden(expected: Path, exposition: str) -> None:
    """Compare ``normalise(exposition)`` with the file ``expected``; under ``UPDATE_GOLDEN=1``
    write it there instead.

    Raises AssertionError with a unified diff (expected -> got) when they differ.
    """
    got = normalise(exposition)
    if os.environ.get(UPDATE):
        expected.write_text(got)
        return
    want = expected.read_text() if expected.exists() else ""
    if got != want:
        diff = "".join(difflib.unified_diff(
            want.splitlines(keepends=True), got.splitlines(keepends=True),
            expected.name, "this run",
        ))  # fmt: skip
        raise AssertionError(
            f"the exposition differs from {expected.name}; if the change is intended, run "
            f"{UPDATE}=1 and commit the diff:\n{diff}"
        )


def loginctl_252() -> Any:
    """Return what loginctl and machinectl said about REAL_252 (parsed JSON). Raises OSError."""
    return json.loads(REAL_252_LOGINCTL.read_text())

REAL_262_MULTISEAT = FIXTURES / "real-262-multiseat"
"""/run/systemd/{seats,sessions,users} as a booted systemd 262 wrote them with seat1..seat3
(tests/capture_multiseat.py)."""
REAL_262_MULTISEAT_LOGINCTL = FIXTURES / "real-262-multiseat-loginctl.json"


def loginctl_262_multiseat() -> Any:
    """Return what loginctl said about REAL_262_MULTISEAT (parsed JSON). Raises OSError."""
    return json.loads(REAL_262_MULTISEAT_LOGINCTL.read_text())
