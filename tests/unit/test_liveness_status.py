"""logind_up from the liveness rule in force and, while the bus is connected, its owner."""

from __future__ import annotations

import pytest

from login_exporter.liveness import RULE_FILES, RULE_PIDFILE, RULE_UNIT, Status


@pytest.mark.parametrize(
    ("status", "state_readable", "up"),
    [
        (Status(RULE_UNIT, True), False, True),  # the link decides, not the files
        (Status(RULE_UNIT, False), True, False),  # stopped; its files stay
        (Status(RULE_PIDFILE, True), False, True),  # elogind's pid file decides too
        (Status(RULE_PIDFILE, False), True, False),
        (Status(RULE_PIDFILE, True, bus_owner=False), True, False),
        (Status(RULE_FILES, None), True, True),
        (Status(RULE_FILES, None), False, False),
        (Status(RULE_UNIT, True, bus_owner=True), True, True),
        (Status(RULE_UNIT, True, bus_owner=False), True, False),  # off the bus
        (Status(RULE_FILES, None, bus_owner=False), True, False),  # the bus sees a stop
        (Status(RULE_FILES, None, bus_owner=True), False, False),  # no state to serve
    ],
)
def test_up(status: Status, state_readable: bool, up: bool) -> None:
    assert status.up(state_readable) is up
