"""The fleet of tests/fleet: three exporters on three state trees, 31 target identities.

site library: pool entrance (10 kiosks, a user session in front of each, and an ssh login once
running), pool reading-room (10 kiosks showing the login screen); site lab: 10 desks (5 in pool
desks, 5 in no pool, none labelled kiosk) with nobody on them; and one target without a site,
which the agent must drop. The exporters run with the opt-in per-session and per-inhibitor
families on, so that the central store's labels show what the agent keeps from leaving the site.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import fleet
from tests.support.exporter import free_port
from tests.support.logind_state import LogindState

# exporter tree -> its identities' (site, pool label or None, kiosk label or None)
LAYOUT: dict[str, list[tuple[str, str | None, str | None]]] = {
    "occupied": [("library", "entrance", "true")] * 10,
    "greeter": [("library", "reading-room", "true")] * 10,
    "empty": [("lab", "desks", None)] * 5 + [("lab", None, None)] * 5,
}


def hosts_for(addresses: dict[str, str]) -> list[fleet.Host]:
    """The identities of LAYOUT on the exporters at ``addresses`` (tree -> host:port)."""
    hosts: list[fleet.Host] = []
    for tree, identities in LAYOUT.items():
        for n, (site, pool, kiosk) in enumerate(identities, 1):
            labels = {"site": site, **({"pool": pool} if pool else {}),
                      **({"kiosk": kiosk} if kiosk else {})}  # fmt: skip
            hosts.append(fleet.Host(f"{site}-{pool or 'x'}-{n:02d}", addresses[tree], labels))
    hosts.append(fleet.Host("nosite-01", addresses["empty"], {"pool": "desks"}))
    return hosts


@pytest.fixture(scope="package")
def running_fleet(
    private_mounts: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[fleet.Fleet]:
    """The whole chain, with VictoriaMetrics and federation, the fleet rules loaded."""
    work = tmp_path_factory.mktemp("fleet")
    trees = {
        "occupied": fleet.occupied(LogindState(work / "occupied")),
        "greeter": fleet.on_greeter(LogindState(work / "greeter")),
        "empty": fleet.empty_seat(LogindState(work / "empty")),
    }
    running = fleet.Fleet(work, free_port, victoria=True, federation=True)
    try:
        opt_in = ("--collector.session-info", "--collector.inhibitor-info")
        addresses = {name: running.add_exporter(tree.root, *opt_in) for name, tree in trees.items()}
        running.start(hosts_for(addresses))
        # A user logs in over ssh on the occupied kiosks' tree once they run (no seat, so the
        # seat rollups stay as they are): the login counters and rates get series.
        trees["occupied"].user(1500, sessions=["s1"])
        trees["occupied"].session("s1", uid=1500, type="tty", remote=True, service="sshd",
                                  remote_host="192.0.2.7", tty="pts/0")
        yield running
    finally:
        running.stop()
