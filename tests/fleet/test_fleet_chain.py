"""The fleet chain for real: exporters -> Prometheus agent -> remote write -> central Prometheus
(and VictoriaMetrics), and site Prometheus -> /federate -> central, every series keeping its
site, pool and kiosk labels, and nothing per session or per user reaching a central store."""

from __future__ import annotations

from collections import Counter

import pytest
import requests

from tests.fleet.conftest import LAYOUT
from tests.support import fleet
from tests.support.prometheus import Prometheus

pytestmark = pytest.mark.private_mounts

ARRIVAL_TIMEOUT = 60.0


def _expected_hosts() -> Counter[tuple[str, str, str]]:
    """(site, pool, kiosk) -> hosts, after the agent's defaults (pool none, kiosk false)."""
    return Counter(
        (site, pool or "none", kiosk or "false")
        for identities in LAYOUT.values()
        for site, pool, kiosk in identities
    )


def _by_labels(store: Prometheus, expr: str) -> Counter[tuple[str, str, str]]:
    return Counter({(s["metric"].get("site", ""), s["metric"].get("pool", ""),
                     s["metric"].get("kiosk", "")): int(float(s["value"][1]))
                    for s in store.query(expr)})  # fmt: skip


def _arrives(store: Prometheus, expr: str, want: Counter[tuple[str, str, str]]) -> None:
    store.wait(lambda: _by_labels(store, expr) == want, ARRIVAL_TIMEOUT, f"{expr} == {want}")


def test_remote_write_brings_every_host_to_the_central_prometheus(
    running_fleet: fleet.Fleet,
) -> None:
    central = running_fleet.central
    assert central is not None
    _arrives(central, 'count by (site, pool, kiosk) (logind_up{job="login-exporter"})',
             _expected_hosts())  # fmt: skip
    _arrives(central, 'count by (site, pool, kiosk) (up{job="login-exporter"} == 1)',
             _expected_hosts())  # fmt: skip
    # One series per identity, not per exporter process; the target without a site is dropped.
    instances = {s["metric"]["instance"] for s in central.query("logind_seat_present")}
    assert len(instances) == sum(len(v) for v in LAYOUT.values())
    assert "nosite-01" not in instances
    # The values travel too: the occupied kiosks' x11 user sessions, per host.
    in_front = 'pool="entrance", class="user", state="active", seat="seat0"'
    sessions = central.query(f"logind_sessions{{{in_front}}}")
    assert len(sessions) == 10 and {s["value"][1] for s in sessions} == {"1"}


def test_the_same_stream_reaches_victoriametrics(running_fleet: fleet.Fleet) -> None:
    vm = running_fleet.vm
    assert vm is not None
    _arrives(vm, 'count by (site, pool, kiosk) (logind_up{job="login-exporter"})',
             _expected_hosts())  # fmt: skip
    series = vm.api("series", **{"match[]": '{__name__=~"logind_.*", site="library"}'})
    assert series and all({"site", "pool", "kiosk", "instance"} <= set(s) for s in series)


def test_federation_brings_up_and_the_site_series_with_their_labels(
    running_fleet: fleet.Fleet,
) -> None:
    federation = running_fleet.federation
    assert federation is not None
    _arrives(federation, 'count by (site, pool, kiosk) (up{job="login-exporter"} == 1)',
             _expected_hosts())  # fmt: skip
    names = set(federation.api("label/__name__/values"))
    # Nothing raw is pulled: only up and the site-level series the fleet rules record.
    assert not {n for n in names if n.startswith("logind_")}, names


@pytest.mark.parametrize("store", ["central", "vm", "federation"])
def test_no_per_session_or_per_user_label_reaches_a_central_store(
    running_fleet: fleet.Fleet, store: str
) -> None:
    server = getattr(running_fleet, store)
    assert server is not None
    # The hosts do export them (opt-in families on): the agent is what keeps them home.
    exposition = requests.get(f"{running_fleet.exporters[0].url}/metrics", timeout=5).text
    assert 'logind_session_info{' in exposition and 'user="' in exposition
    _arrives(server, 'count by (site, pool, kiosk) (up{job="login-exporter"} == 1)',
             _expected_hosts())  # fmt: skip
    labels = set(server.api("labels"))
    assert labels & fleet.PRIVATE_LABELS == set(), labels
    names = set(server.api("label/__name__/values"))
    assert names & {"logind_session_info", "logind_inhibitor_info"} == set()
    assert not [n for n in names if n.startswith("python_")], "dropped at the agent's scrape"


# -- the fleet rules on what arrived (fleet-rules.yml, fleet-alerts.yml) -----------------------

# (site, pool, kiosk) -> (seats with a user's session in front, seats without), from LAYOUT:
# entrance's trees have a user in front, reading-room's the login screen, lab's nobody.
SEATS = {
    ("library", "entrance", "true"): (10, 0),
    ("library", "reading-room", "true"): (0, 10),
    ("lab", "desks", "false"): (0, 5),
    ("lab", "none", "false"): (0, 5),
}


def _rollups(store: Prometheus, alerts: Prometheus | None = None) -> None:
    """The fleet rules' values as LAYOUT makes them, at ``store``; the share alert pending and
    no other, in ``alerts``' API (the store's own by default)."""
    with_user = Counter({k: v[0] for k, v in SEATS.items()})
    without = Counter({k: v[1] for k, v in SEATS.items()})
    _arrives(store, "site_pool_kiosk:logind_seats_with_user_session:sum", with_user)
    _arrives(store, "site_pool_kiosk:logind_seats_without_user_session:sum", without)
    _arrives(store, "site_pool_kiosk:logind_seats:count", with_user + without)
    _arrives(store, "site_pool_kiosk:up:sum", _expected_hosts())
    _arrives(store, "site_pool_kiosk:logind_up:sum", _expected_hosts())
    greeters = 'site_pool_class_type:logind_sessions:sum{class="greeter", type="wayland"}'
    _arrives(store, f"sum by (site, pool, kiosk) ({greeters}) > 0",
             Counter({("library", "reading-room", ""): 10}))  # fmt: skip
    occupied = "site_pool:logind_kiosk_seats_occupied:sum"
    _arrives(store, occupied, Counter({("library", "entrance", ""): 10,
                                       ("library", "reading-room", ""): 0}))  # fmt: skip
    # Half of library's kiosks show the login screen: the share alert's expression holds there.
    shares = {s["metric"]["site"]: float(s["value"][1])
              for s in store.query("site:logind_kiosks_without_user_session:ratio")}  # fmt: skip
    assert shares == {"library": 0.5}
    expressions = {r["alert"]: r["expr"] for g in fleet.load("fleet-alerts.yml")["groups"]
                   for r in g["rules"]}  # fmt: skip
    holding = store.query(expressions["FleetKiosksWithoutUserSession"])
    assert {s["metric"]["site"] for s in holding} == {"library"}
    assert store.query(expressions["FleetKiosksDown"]) == []
    api = alerts or store

    def active() -> set[tuple[str, str, str]]:
        found = api.api("alerts")["alerts"] or []  # vmalert says null for none
        return {(a["labels"].get("alertname", a.get("name")), a["labels"]["site"], a["state"])
                for a in found}  # fmt: skip

    store.wait(lambda: active() == {("FleetKiosksWithoutUserSession", "library", "pending")},
               ARRIVAL_TIMEOUT, "the share alert pending, no other")  # fmt: skip


def test_fleet_rules_and_alerts_on_the_central_prometheus(running_fleet: fleet.Fleet) -> None:
    assert running_fleet.central is not None
    _rollups(running_fleet.central)


def test_fleet_rules_recorded_at_the_site_and_federated(running_fleet: fleet.Fleet) -> None:
    assert running_fleet.federation is not None
    _rollups(running_fleet.federation)


def test_fleet_rules_and_alerts_on_victoriametrics_through_vmalert(
    running_fleet: fleet.Fleet,
) -> None:
    # The same rule files, evaluated by vmalert on VictoriaMetrics (MetricsQL) and written back.
    assert running_fleet.vm is not None and running_fleet.vmalert is not None
    _rollups(running_fleet.vm, running_fleet.vmalert)
