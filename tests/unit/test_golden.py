"""Golden bus views: the bus follower reading logind's recorded answers
(tests/fixtures/bus-252.json, recorded by tests/e2e/record_bus_view.py) from a scripted bus (a
real socket, the real parser and view) renders exactly the kept exposition; and the normaliser
the golden files go through hides only what differs between runs.

``UPDATE_GOLDEN=1 python3 -m pytest tests/unit/test_golden.py`` rewrites the bus views' files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from login_exporter.bus import LogindBus
from login_exporter.exposition import Exposition
from login_exporter.presence import PresenceFamilies
from tests.support.golden import FIXTURES, GOLDEN_BUS_VIEWS, check_golden, normalise
from tests.support.scripted_bus import ScriptedBus


def _typed(properties: dict[str, list[Any]]) -> dict[str, tuple[str, Any]]:
    """{name: [signature, value]} from JSON as jeepney takes it (structs as tuples)."""
    return {name: (sig, tuple(value) if sig.startswith("(") else value)
            for name, (sig, value) in properties.items()}  # fmt: skip


def bus_view_exposition(view: Path, tmp_path: Path) -> str:
    """Return the bus families a LogindBus renders after reading what ``view`` (JSON: manager,
    seats, sessions, inhibitors, wall_clock) says logind answered, opt-in inhibitor info on."""
    recorded = json.loads(view.read_text())
    peer = ScriptedBus(tmp_path / "bus")
    peer.manager = _typed(recorded["manager"])
    peer.seats = {path: _typed(props) for path, props in recorded["seats"].items()}
    peer.sessions = {path: _typed(props) for path, props in recorded["sessions"].items()}
    peer.inhibitors = [tuple(lock) for lock in recorded["inhibitors"]]
    bus = LogindBus(peer.address, shutdown_dir=str(tmp_path),
                    wall_clock=lambda: float(recorded["wall_clock"]))  # fmt: skip
    try:
        peer.connect(bus)
        assert bus.view().up and bus.settled
        families = PresenceFamilies(inhibitor_info=True).build(bus.view(), bus.messages,
                                                               bus.dropped)
    finally:
        bus.close()
        peer.close()
    return Exposition(families).get(openmetrics=False, gzip=False).decode()


@pytest.mark.parametrize("view", GOLDEN_BUS_VIEWS)
def test_bus_view_renders_the_golden_exposition(view: str, tmp_path: Path) -> None:
    exposition = bus_view_exposition(FIXTURES / f"{view}.json", tmp_path)
    check_golden(FIXTURES / f"{view}.prom", exposition)


def test_normalise_hides_only_what_differs_between_runs() -> None:
    run = (FIXTURES / "real-252-once.prom").read_text()
    assert normalise(run) == run  # idempotent: the kept files are already normal
    again = run.replace("<timestamp>", "1796249468.123").replace(
        'libsystemd_version="<version>"', 'libsystemd_version="257"')
    assert normalise(again) == run
    for changed in (
        run.replace("Sessions attached to the seat.", "Sessions on the seat."),  # a HELP
        run.replace('logind_users{state="online"} 1.0', 'logind_users{state="online"} 2.0'),
        run.replace('seat="seat0"', 'seat="seat1"'),  # a label value
        run.replace("logind_exporter_refresh_duration_seconds_count 1.0",
                    "logind_exporter_refresh_duration_seconds_count 2.0"),
    ):
        assert normalise(changed) != run


def test_check_golden_fails_with_a_diff(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UPDATE_GOLDEN", raising=False)
    expected = tmp_path / "x.prom"
    expected.write_text("a 1.0\n")
    with pytest.raises(AssertionError, match=r"(?s)-a 1\.0.*\+a 2\.0"):
        check_golden(expected, "a 2.0\n")
    monkeypatch.setenv("UPDATE_GOLDEN", "1")
    check_golden(expected, "a 2.0\n")
    assert expected.read_text() == "a 2.0\n"
