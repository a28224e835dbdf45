#!/usr/bin/env python3
"""Generate the fleet Grafana dashboard (grafana/login-exporter-fleet.json).

A site/pool overview on the fleet recording rules (deploy/prometheus/fleet/fleet-rules.yml),
for the central Prometheus (remote write) or the federation's. Run
``python3 grafana/fleet_dashboard.py`` after changing this file and commit both; CI regenerates
the JSON and fails when it differs (``--output PATH`` writes elsewhere, ``-`` for stdout).
Built like grafana/dashboard.py, whose helpers it uses. Every query filters by
``site=~"$site", pool=~"$pool"`` (the site-only series by ``site``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard as dashboard_builder
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import dashboard as model

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dashboard as host  # grafana/dashboard.py: the per-host dashboard's helpers

OUTPUT = Path(__file__).resolve().parent / "login-exporter-fleet.json"
UID = "login-exporter-fleet"
TITLE = "systemd-logind fleet (login-exporter)"
# The row whose queries need the exporters on logind's bus (idle and locked hints); their
# rules' values are pinned by promtool (deploy/prometheus/fleet/tests/fleet.test.yml).
PRESENCE_ROW = "Kiosk presence (needs the bus)"

SITE = 'site=~"$site"'
SITE_POOL = 'site=~"$site", pool=~"$pool"'
PanelBuilder = cogbuilder.Builder[model.Panel]


def rule(name: str, matchers: str = SITE_POOL) -> str:
    """Return ``name{matchers}``."""
    return f"{name}{{{matchers}}}"


def by_pool(name: str) -> str:
    """Return ``sum by (site, pool) (name{site and pool filters})``."""
    return f"sum by (site, pool) ({rule(name)})"


def overview_row() -> list[PanelBuilder]:
    """Headline numbers over the selected sites and pools."""
    return [
        host.single_stat(
            "Hosts scraped",
            "Exporters the site agents scraped successfully, of all targets.",
            host.query(f"sum({rule('site_pool_kiosk:up:sum')})", "scraped", instant=True),
        ),
        host.single_stat(
            "Hosts not scraped",
            "Targets whose last scrape failed (exporter down, host off, network).",
            host.query(f"sum({rule('site_pool_kiosk:up:count')}) - "
                       f"sum({rule('site_pool_kiosk:up:sum')})", "down", instant=True),
            steps=((None, "green"), (1, "orange")),
        ),
        host.single_stat(
            "logind down",
            "Scraped hosts whose logind is not running (logind_up 0).",
            host.query(f"sum({rule('site_pool_kiosk:up:sum')}) - "
                       f"sum({rule('site_pool_kiosk:logind_up:sum')})",
                       "down", instant=True),
            steps=((None, "green"), (1, "red")),
        ),
        host.single_stat(
            "Seats with a user in front",
            "Seats whose active session is a user's, of all seats of the scraped hosts.",
            host.query(f"sum({rule('site_pool_kiosk:logind_seats_with_user_session:sum')})",
                       "seats", instant=True),
        ),
        host.single_stat(
            "Kiosks without a user session",
            "Worst site: share of its kiosk hosts (kiosk=\"true\") with no user's session in "
            "front of any seat. FleetKiosksWithoutUserSession fires above 20 % for 10 minutes.",
            host.query(f"max({rule('site:logind_kiosks_without_user_session:ratio', SITE)})",
                       "share", instant=True),
            unit="percentunit",
            steps=((None, "green"), (0.2, "orange")),
        ),
        host.single_stat(
            "User logins per minute",
            "User sessions started per minute over the last 5 minutes, all selected sites.",
            host.query(f"sum({rule('site:logind_user_session_starts:rate5m', SITE)}) * 60",
                       "logins/min", instant=True),
        ),
    ]


def seats_row() -> list[PanelBuilder]:
    """Seats per site and pool, with and without a user's session in front."""
    return [
        host.graph(
            "Seats with a user's session in front",
            "Per site and pool: seats whose active session is of class user.",
            [host.query(by_pool("site_pool_kiosk:logind_seats_with_user_session:sum"),
                        "{{site}}/{{pool}}")],
            stacked=True,
        ),
        host.graph(
            "Seats without a user's session",
            "Per site and pool: seats showing a login screen or nothing.",
            [host.query(by_pool("site_pool_kiosk:logind_seats_without_user_session:sum"),
                        "{{site}}/{{pool}}")],
            stacked=True,
        ),
        host.graph(
            "Kiosk seats occupied",
            "Per site and pool: kiosk seats (kiosk=\"true\") with a user's session in front.",
            [host.query(rule("site_pool:logind_kiosk_seats_occupied:sum"), "{{site}}/{{pool}}")],
            stacked=True,
        ),
    ]


def presence_row() -> list[PanelBuilder]:
    """Occupied kiosk seats whose user is idle or locked (logind's hints, over the bus)."""
    return [
        host.graph(
            "Kiosk seats idle",
            "Occupied kiosk seats whose user's session says it is idle (IdleHint).",
            [host.query(rule("site_pool:logind_kiosk_seats_idle:sum"), "{{site}}/{{pool}}")],
            stacked=True,
        ),
        host.graph(
            "Kiosk seats locked",
            "Occupied kiosk seats whose user's session is locked (LockedHint).",
            [host.query(rule("site_pool:logind_kiosk_seats_locked:sum"), "{{site}}/{{pool}}")],
            stacked=True,
        ),
    ]


def sessions_row() -> list[PanelBuilder]:
    """Sessions by class and by type, and logins per site."""
    sessions = rule("site_pool_class_type:logind_sessions:sum")
    return [
        host.graph("Sessions by class", "user, greeter, background, manager, ...",
                   [host.query(f"sum by (class) ({sessions})", "{{class}}")], stacked=True),
        host.graph("Sessions by type", "x11, wayland, tty, unspecified, ...",
                   [host.query(f"sum by (type) ({sessions})", "{{type}}")], stacked=True),
        host.graph(
            "User logins per minute by site",
            "Over 5 minutes, and the last hour's rate for comparison (dashed in the legend: 1h). "
            "FleetSiteLoginsCollapsed / FleetSiteLoginStorm compare the two.",
            [host.query(f"{rule('site:logind_user_session_starts:rate5m', SITE)} * 60",
                        "{{site}}", ref="A"),
             host.query(f"{rule('site:logind_user_session_starts:rate1h', SITE)} * 60",
                        "{{site}} (1h)", ref="B")],
        ),
    ]


def health_row() -> list[PanelBuilder]:
    """Exporters and logind up per pool, and the shares the fleet alerts watch."""
    return [
        host.graph(
            "Hosts scraped by pool",
            "Targets scraped successfully per site and pool.",
            [host.query(by_pool("site_pool_kiosk:up:sum"),
                        "{{site}}/{{pool}}")],
            stacked=True,
        ),
        host.graph(
            "Hosts with logind up by pool",
            "Scraped hosts whose logind runs, per site and pool.",
            [host.query(by_pool("site_pool_kiosk:logind_up:sum"),
                        "{{site}}/{{pool}}")],
            stacked=True,
        ),
        host.graph(
            "Kiosk shares by site",
            "Share of each site's kiosks without a user session (alert above 20 %) and "
            "unwatched: exporter or logind down (alert above 10 %).",
            [host.query(rule("site:logind_kiosks_without_user_session:ratio", SITE),
                        "{{site}} without session", ref="A"),
             host.query(rule("site:logind_kiosks_down:ratio", SITE), "{{site}} down",
                        ref="B")],
            unit="percentunit",
        ),
    ]


def variables() -> list[cogbuilder.Builder[model.VariableModel]]:
    """Return the datasource, site and pool template variables."""
    datasource = (
        dashboard_builder.DatasourceVariable("datasource").label("Data source").type("prometheus")
    )

    def label(name: str, title: str, query: str) -> dashboard_builder.QueryVariable:
        return (
            dashboard_builder.QueryVariable(name)
            .label(title)
            .datasource(host.DATASOURCE)
            .query(query)
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(model.VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            .all_value(".+")
        )

    return [
        datasource,
        label("site", "Site", "label_values(site_pool_kiosk:up:count, site)"),
        label("pool", "Pool", 'label_values(site_pool_kiosk:up:count{site=~"$site"}, pool)'),
    ]


def build() -> model.Dashboard:
    """Return the dashboard model, panels numbered from 1 in layout order."""
    board = (
        dashboard_builder.Dashboard(TITLE)
        .uid(UID)
        .description("Sites and pools of login-exporter hosts: seats, kiosks, sessions, logins "
                     "and exporter health, from the fleet recording rules.")
        .tags(["login-exporter", "systemd", "logind", "prometheus", "fleet"])
        .editable()
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .time("now-6h", "now")
        .refresh("1m")
        .timezone("browser")
        .variables(variables())
    )
    rows: list[tuple[str, list[PanelBuilder]]] = [
        ("Overview", overview_row()),
        ("Seats", seats_row()),
        (PRESENCE_ROW, presence_row()),
        ("Sessions and logins", sessions_row()),
        ("Exporters and logind", health_row()),
    ]
    return host.assemble(board, rows)


def render() -> str:
    """Return the dashboard as stable, sorted, indented JSON ending in a newline."""
    return host.render(build())


def main(argv: list[str] | None = None) -> int:
    """Write the dashboard JSON; return the exit status."""
    return host.main(argv, render, OUTPUT, __doc__)


if __name__ == "__main__":
    sys.exit(main())
