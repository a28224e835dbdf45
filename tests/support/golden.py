"""The golden fixture kept in this repository: real logind state and what loginctl said of it.

tests/fixtures/README.md says how they were captured.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
REAL_252 = FIXTURES / "real-252"
"""/run/systemd/{sessions,seats,users,machines} as a booted systemd 252 wrote them."""
REAL_252_LOGINCTL = FIXTURES / "real-252-loginctl.json"


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
