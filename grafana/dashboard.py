#!/usr/bin/env python3
"""Generate the login-exporter Grafana dashboard (grafana/login-exporter.json).

Run ``python3 grafana/dashboard.py`` after changing this file and commit both; CI regenerates the
JSON and fails when it differs. ``--output PATH`` writes elsewhere (``-`` for stdout).

Built with grafana-foundation-sdk (pinned in pyproject.toml's test extra). Every query filters by
``job=~"$job", instance=~"$instance"`` and every panel reads from the ``$datasource`` variable.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from grafana_foundation_sdk.builders import (
    bargauge,
    heatmap,
    stat,
    statetimeline,
    table,
    timeseries,
)
from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import dashboard as dashboard_builder
from grafana_foundation_sdk.builders import prometheus as prometheus_builder
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import heatmap as heatmap_model
from grafana_foundation_sdk.models import prometheus as prometheus_model

OUTPUT = Path(__file__).resolve().parent / "login-exporter.json"

UID = "login-exporter"
TITLE = "systemd-logind (login-exporter)"

DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
SELECTOR = 'job=~"$job", instance=~"$instance"'

# A refresh older than the default resync interval (5m) plus slack means the agent is stuck.
REFRESH_AGE_WARN = 360.0
REFRESH_AGE_CRIT = 900.0

PanelBuilder = cogbuilder.Builder[model.Panel]
PRESENCE_ROW = "Presence and power"  # needs logind on the system bus: see tests/e2e


def sel(metric: str, extra: str = "") -> str:
    """Return ``metric{job=~"$job", instance=~"$instance"[, extra]}``."""
    matchers = f"{SELECTOR}, {extra}" if extra else SELECTOR
    return f"{metric}{{{matchers}}}"


def no_seat(expr: str) -> str:
    """Return ``expr`` with the empty seat label (seatless sessions) shown as ``(no seat)``."""
    return f'label_replace({expr}, "seat", "(no seat)", "seat", "")'


def query(
    expr: str,
    legend: str = "__auto",
    *,
    ref: str = "A",
    instant: bool = False,
    fmt: prometheus_model.PromQueryFormat = prometheus_model.PromQueryFormat.TIME_SERIES,
) -> prometheus_builder.Dataquery:
    """Return a Prometheus target on ``$datasource``."""
    target = (
        prometheus_builder.Dataquery()
        .expr(expr)
        .legend_format(legend)
        .ref_id(ref)
        .format(fmt)
        .datasource(DATASOURCE)
    )
    return target.instant() if instant else target.range()


def thresholds(*steps: tuple[float | None, str]) -> dashboard_builder.ThresholdsConfig:
    """Return absolute thresholds; the first step's value is None (the base colour)."""
    return (
        dashboard_builder.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=value, color=color) for value, color in steps])
    )


def bool_mapping(false_text: str, true_text: str, false_color: str = "red") -> model.ValueMap:
    """Return a 0/1 value mapping with texts and colours."""
    return model.ValueMap(
        options={
            "0": model.ValueMappingResult(text=false_text, color=false_color, index=0),
            "1": model.ValueMappingResult(text=true_text, color="green", index=1),
        }
    )


def legend_table() -> common_builder.VizLegendOptions:
    """Return a bottom legend as a table with last and max values."""
    return (
        common_builder.VizLegendOptions()
        .display_mode(common.LegendDisplayMode.TABLE)
        .placement(common.LegendPlacement.BOTTOM)
        .show_legend(True)
        .calcs(["lastNotNull", "max"])
    )


def multi_tooltip() -> common_builder.VizTooltipOptions:
    """Return a tooltip listing every series, largest first."""
    return (
        common_builder.VizTooltipOptions()
        .mode(common.TooltipDisplayMode.MULTI)
        .sort(common.SortOrder.DESCENDING)
    )


def graph(
    title: str,
    description: str,
    targets: list[prometheus_builder.Dataquery],
    *,
    unit: str = "short",
    stacked: bool = False,
    signed: bool = False,
    width: int = 8,
    height: int = 8,
) -> timeseries.Panel:
    """Return a time series panel; ``signed`` ones draw a second series below zero."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(list(targets))
        .unit(unit)
        .span(width)
        .height(height)
        .fill_opacity(20 if stacked else 10)
        .line_width(1)
        .legend(legend_table())
        .tooltip(multi_tooltip())
    )
    if not signed:
        panel = panel.min(0)
    if stacked:
        panel = panel.stacking(common_builder.StackingConfig().mode(common.StackingMode.NORMAL))
    return panel


def single_stat(
    title: str,
    description: str,
    target: prometheus_builder.Dataquery,
    *,
    unit: str = "short",
    steps: tuple[tuple[float | None, str], ...] = ((None, "blue"),),
    mappings: list[model.ValueMapping] | None = None,
) -> stat.Panel:
    """Return a 4-wide stat panel showing the last value of each series."""
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .with_target(target)
        .unit(unit)
        .span(4)
        .height(4)
        .thresholds(thresholds(*steps))
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.NONE)
        .text_mode(common.BigValueTextMode.AUTO)
        .reduce_options(common_builder.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    if mappings:
        panel = panel.mappings(mappings)
    return panel


# -- rows -------------------------------------------------------------------------------------


def health_row() -> list[PanelBuilder]:
    """Scrape health, logind readability, snapshot freshness and headline counts."""
    up_mapping: list[model.ValueMapping] = [bool_mapping("DOWN", "UP")]
    return [
        single_stat(
            "Exporter scraped",
            "Prometheus `up`: 1 when the last scrape of the exporter succeeded.",
            query(f"min by (instance) ({sel('up')})", "{{instance}}", instant=True),
            steps=((None, "red"), (1, "green")),
            mappings=up_mapping,
        ),
        single_stat(
            "logind readable",
            "`logind_up`: 1 when logind's state (seat0) is readable through sd-login. "
            "0 means logind never ran here or /run/systemd is not mounted into the exporter.",
            query(f"min by (instance) ({sel('logind_up')})", "{{instance}}", instant=True),
            steps=((None, "red"), (1, "green")),
            mappings=up_mapping,
        ),
        single_stat(
            "Snapshot age",
            "Seconds since the exporter last rebuilt its snapshot. The exporter refreshes on every "
            "logind change and re-reads everything at the resync interval (default 5m), so an "
            "age well above that means its event loop is stuck.",
            query(
                "max by (instance) (time() - "
                + sel("logind_exporter_last_refresh_timestamp_seconds")
                + ")",
                "{{instance}}",
                instant=True,
            ),
            unit="s",
            steps=((None, "green"), (REFRESH_AGE_WARN, "orange"), (REFRESH_AGE_CRIT, "red")),
        ),
        single_stat(
            "Sessions",
            "All sessions logind knows about, on the selected instances.",
            query(f"sum({sel('logind_sessions')})", "sessions", instant=True),
        ),
        single_stat(
            "Active users",
            "Users with at least one active (foreground) session.",
            query(
                "sum(" + sel("logind_users", 'state="active"') + ")", "active users", instant=True
            ),
        ),
        single_stat(
            "Running machines",
            "VMs and containers registered with systemd-machined.",
            query(f"sum({sel('logind_machines')})", "machines", instant=True),
        ),
    ]


def sessions_row() -> list[PanelBuilder]:
    """Sessions broken down by each attribute logind reports."""
    sessions = sel("logind_sessions")
    return [
        graph(
            "Sessions by seat",
            "Sessions per seat; seatless sessions (ssh, su, services) are shown as `(no seat)`.",
            [query(f"sum by (seat) ({no_seat(sessions)})", "{{seat}}")],
            stacked=True,
        ),
        graph(
            "Sessions by type",
            "x11, wayland, tty, mir, web or unspecified (services and cron).",
            [query(f"sum by (type) ({sessions})", "{{type}}")],
            stacked=True,
        ),
        graph(
            "Sessions by class",
            "user, greeter (a login screen), lock-screen, background, manager, ...",
            [query(f"sum by (class) ({sessions})", "{{class}}")],
            stacked=True,
        ),
        graph(
            "Sessions by state",
            "online (logged in, in the background), active (in the foreground), closing (logged "
            "out, processes still running).",
            [query(f"sum by (state) ({sessions})", "{{state}}")],
            stacked=True,
            width=12,
        ),
        graph(
            "Local and remote sessions",
            "Remote sessions were opened with a remote host (ssh and the like).",
            [query(f"sum by (remote) ({sessions})", "remote={{remote}}")],
            stacked=True,
            width=12,
        ),
    ]


def seats_row() -> list[PanelBuilder]:
    """One line per seat: does it exist, is someone on it, what can it do."""
    columns = [
        ("logind_seat_present", "Present"),
        ("logind_seat_active_session", "Active session"),
        ("logind_seat_can_graphical", "Graphical"),
        ("logind_seat_can_tty", "TTY"),
        ("logind_seat_sessions", "Sessions"),
    ]
    refs = "ABCDE"
    targets = [
        query(
            f"max by (instance, seat) ({sel(metric)})",
            ref=ref,
            instant=True,
            fmt=prometheus_model.PromQueryFormat.TABLE,
        )
        for ref, (metric, _) in zip(refs, columns, strict=True)
    ]
    seat_table = (
        table.Panel()
        .title("Seats")
        .description(
            "Every seat the exporter has seen. Present 0: the seat went away (hardware unplugged "
            "or logind restarted). Active session: someone (or a greeter) is in the foreground."
        )
        .datasource(DATASOURCE)
        .targets(list(targets))
        .span(12)
        .height(9)
        .with_transformation(model.DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(
            model.DataTransformerConfig(
                id_val="organize",
                options={
                    "excludeByName": {"Time": True},
                    "indexByName": {"instance": 0, "seat": 1},
                    "renameByName": {
                        f"Value #{ref}": title
                        for ref, (_, title) in zip(refs, columns, strict=True)
                    },
                },
            )
        )
        .sort_by([common_builder.TableSortByFieldState().display_name("seat")])
    )
    for title, mapping in [
        ("Present", bool_mapping("gone", "present")),
        ("Active session", bool_mapping("none", "yes", "orange")),
        ("Graphical", bool_mapping("no", "yes", "text")),
        ("TTY", bool_mapping("no", "yes", "text")),
    ]:
        seat_table = seat_table.override_by_name(
            title,
            [
                model.DynamicConfigValue(id_val="mappings", value=[mapping]),
                model.DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-text"}),
            ],
        )
    active = (
        statetimeline.Panel()
        .title("Active session per seat")
        .description(
            "Green while the seat has a foreground session; orange while nobody is on it. "
            "For a kiosk, orange means the kiosk user is not logged in."
        )
        .datasource(DATASOURCE)
        .with_target(
            query(
                f"max by (instance, seat) ({sel('logind_seat_active_session')})",
                "{{instance}} {{seat}}",
            )
        )
        .mappings([bool_mapping("none", "active", "orange")])
        .show_value(common.VisibilityMode.NEVER)
        .merge_values(True)
        .span(12)
        .height(9)
    )
    per_seat = graph(
        "Sessions per seat",
        "Sessions attached to each seat (a greeter plus the user's session is 2).",
        [
            query(
                f"max by (instance, seat) ({sel('logind_seat_sessions')})",
                "{{instance}} {{seat}}",
            )
        ],
        width=24,
        height=7,
    )
    return [seat_table, active, per_seat]


def users_machines_row() -> list[PanelBuilder]:
    """Users by login state and the machines machined runs."""
    machines_table = (
        table.Panel()
        .title("Running machines")
        .description("One line per VM or container registered with systemd-machined.")
        .datasource(DATASOURCE)
        .with_target(
            query(
                f"max by (instance, machine, class) ({sel('logind_machine_info')}) == 1",
                instant=True,
                fmt=prometheus_model.PromQueryFormat.TABLE,
            )
        )
        .with_transformation(
            model.DataTransformerConfig(
                id_val="organize",
                options={
                    "excludeByName": {"Time": True, "Value": True},
                    "indexByName": {"instance": 0, "machine": 1, "class": 2},
                },
            )
        )
        .span(6)
        .height(8)
    )
    starts = sel("logind_machine_starts_total")
    stops = sel("logind_machine_stops_total")
    churn = graph(
        "Machine starts and stops",
        "Machines that appeared (up) and went away (down), per minute.",
        [
            query(
                f"sum by (class) (rate({starts}[$__rate_interval])) * 60",
                "started {{class}}",
                ref="A",
            ),
            query(
                f"-sum by (class) (rate({stops}[$__rate_interval])) * 60",
                "stopped {{class}}",
                ref="B",
            ),
        ],
        unit="opm",
        signed=True,
        width=6,
    )
    return [
        graph(
            "Users by state",
            "Users (uids) by login state: active (in the foreground somewhere), online (logged in "
            "in the background), lingering (no session, services kept running), closing.",
            [query(f"sum by (state) ({sel('logind_users')})", "{{state}}")],
            stacked=True,
            width=6,
        ),
        graph(
            "Machines by class",
            "Running VMs and containers by class.",
            [query(f"sum by (class) ({sel('logind_machines')})", "{{class}}")],
            stacked=True,
            width=6,
        ),
        machines_table,
        churn,
    ]


def logins_row() -> list[PanelBuilder]:
    """How often people log in and out."""
    starts = sel("logind_session_starts_total")
    ends = sel("logind_session_ends_total")
    rates = graph(
        "Logins and logouts",
        "Sessions opened (up) and closed (down) per minute, by class and remote. A storm here "
        "is a crash-looping kiosk or greeter, or a burst of ssh logins.",
        [
            query(
                f"sum by (class, remote) (rate({starts}[$__rate_interval])) * 60",
                "logins {{class}} remote={{remote}}",
                ref="A",
            ),
            query(
                f"-sum by (class, remote) (rate({ends}[$__rate_interval])) * 60",
                "logouts {{class}} remote={{remote}}",
                ref="B",
            ),
        ],
        unit="opm",
        signed=True,
        width=16,
    )
    per_seat = (
        bargauge.Panel()
        .title("Logins and logouts per seat (time range)")
        .description("Sessions opened and closed on each seat over the dashboard's time range.")
        .datasource(DATASOURCE)
        .targets(
            [
                query(
                    f"sum by (seat) ({no_seat(f'increase({starts}[$__range])')})",
                    "{{seat}} logins",
                    ref="A",
                    instant=True,
                ),
                query(
                    f"sum by (seat) ({no_seat(f'increase({ends}[$__range])')})",
                    "{{seat}} logouts",
                    ref="B",
                    instant=True,
                ),
            ]
        )
        .unit("short")
        .decimals(0)
        .min(0)
        .thresholds(thresholds((None, "blue")))
        .display_mode(common.BarGaugeDisplayMode.GRADIENT)
        .orientation(common.VizOrientation.HORIZONTAL)
        .reduce_options(common_builder.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .span(8)
        .height(8)
    )
    return [rates, per_seat]


def duration_row() -> list[PanelBuilder]:
    """How long sessions last, from the histogram of ended sessions."""
    bucket = sel("logind_session_duration_seconds_bucket")
    distribution = (
        heatmap.Panel()
        .title("Session duration distribution")
        .description("Ended sessions per duration bucket (logind_session_duration_seconds).")
        .datasource(DATASOURCE)
        .with_target(
            query(
                f"sum by (le) (increase({bucket}[$__interval]))",
                "{{le}}",
                fmt=prometheus_model.PromQueryFormat.HEATMAP,
            )
        )
        .calculate(False)
        .y_axis(heatmap.YAxisConfig().unit("s").decimals(0))
        .color(
            heatmap.HeatmapColorOptions()
            .mode(heatmap_model.HeatmapColorMode.SCHEME)
            .scheme("Oranges")
            .steps(64)
        )
        .rows_frame(heatmap.RowsHeatmapOptions().layout(common.HeatmapCellLayout.LE))
        .cell_gap(1)
        .span(12)
        .height(9)
    )
    quantiles = graph(
        "Session duration quantiles",
        "Median, 90th and 99th percentile lifetime of sessions that ended, and the mean.",
        [
            *[
                query(
                    f"histogram_quantile({q}, sum by (le) (rate({bucket}[$__rate_interval])))",
                    f"p{int(q * 100)}",
                    ref=ref,
                )
                for ref, q in (("A", 0.5), ("B", 0.9), ("C", 0.99))
            ],
            query(
                f"sum(rate({sel('logind_session_duration_seconds_sum')}[$__rate_interval]))"
                f" / sum(rate({sel('logind_session_duration_seconds_count')}[$__rate_interval]))",
                "mean",
                ref="D",
            ),
        ],
        unit="s",
        width=12,
        height=9,
    )
    return [distribution, quantiles]


def presence_row() -> list[PanelBuilder]:
    """What only logind's bus knows: idle and locked sessions, inhibitors, shutdown, power."""
    return [
        single_stat(
            "logind on the bus",
            "`logind_dbus_up`: 1 while the exporter is connected to the system bus and logind "
            "owns org.freedesktop.login1. 0: logind stopped, the bus down, or the bus socket not "
            "reachable by the exporter; the other panels of this row are then empty.",
            query(f"min by (instance) ({sel('logind_dbus_up')})", "{{instance}}", instant=True),
            steps=((None, "red"), (1, "green")),
            mappings=[bool_mapping("OFF THE BUS", "ON THE BUS")],
        ),
        single_stat(
            "Scheduled shutdown",
            "When logind will power off or reboot the host (`shutdown` with a time); 0: none.",
            query(
                "max by (instance, type) ("
                + sel("logind_scheduled_shutdown_timestamp_seconds")
                + ") * 1000",
                "{{type}} {{instance}}",
                instant=True,
            ),
            unit="dateTimeAsIso",
            mappings=[model.ValueMap(options={
                "0": model.ValueMappingResult(text="none", color="green", index=0)})],
        ),
        graph(
            "Idle seats",
            "1 while every session of the seat says it is idle (IdleHint set by the desktop, or a "
            "text console untouched for a while). A kiosk seat idle all day: nobody uses it.",
            [
                query(
                    f"max by (instance, seat) ({sel('logind_seat_idle')})", "{{seat}} {{instance}}"
                )
            ],
        ),
        graph(
            "Idle and locked sessions",
            "Sessions whose IdleHint / LockedHint is set (screen locker on), by seat.",
            [
                query(
                    no_seat(f"sum by (seat) ({sel('logind_sessions_idle')})"),
                    "idle {{seat}}",
                    ref="A",
                ),
                query(
                    no_seat(f"sum by (seat) ({sel('logind_sessions_locked')})"),
                    "locked {{seat}}",
                    ref="B",
                ),
            ],
        ),
        graph(
            "Inhibitor locks",
            "Locks held on shutdown, sleep, idle and the power/lid keys, by mode: block stops the "
            "operation, delay holds it for up to InhibitDelayMaxSec.",
            [query(f"sum by (what, mode) ({sel('logind_inhibitors')})", "{{what}} {{mode}}")],
            stacked=True,
        ),
        graph(
            "Oldest inhibitor lock held for",
            "Age of the oldest lock per operation and mode (from when the exporter first saw it; "
            "0 while none is held). "
            "Block locks on shutdown or sleep held for days are usually a hung program.",
            [
                query(
                    "max by (what, mode) ((time() - "
                    + sel("logind_inhibitor_since_seconds")
                    + ") * ("
                    + sel("logind_inhibitor_since_seconds")
                    + " > bool 0))",
                    "{{what}} {{mode}}",
                )
            ],
            unit="s",
        ),
        graph(
            "Power",
            "Preparing for shutdown or sleep (1 during the transition), lid closed, on external "
            "power; absent where logind lacks the property.",
            [
                query(f"max by (instance) ({sel(metric)})", f"{label} {{{{instance}}}}", ref=ref)
                for ref, metric, label in (
                    ("A", "logind_preparing_for_sleep", "preparing for sleep"),
                    ("B", "logind_preparing_for_shutdown", "preparing for shutdown"),
                    ("C", "logind_lid_closed", "lid closed"),
                    ("D", "logind_on_external_power", "on external power"),
                )
            ],
        ),
    ]


def exporter_row() -> list[PanelBuilder]:
    """The exporter's own health: refreshes, wake-ups, errors, races, memory."""
    duration = sel("logind_exporter_refresh_duration_seconds_bucket")
    return [
        graph(
            "Refreshes by reason",
            "Snapshot rebuilds per second: event (logind changed), resync (safety net), startup.",
            [
                query(
                    f"sum by (reason) (rate({sel('logind_exporter_refreshes_total')}"
                    "[$__rate_interval]))",
                    "{{reason}}",
                )
            ],
            unit="ops",
            stacked=True,
        ),
        graph(
            "Refresh duration",
            "Time to read logind's state and build a snapshot (median and 99th percentile).",
            [
                query(
                    f"histogram_quantile({q}, sum by (instance, le) "
                    f"(rate({duration}[$__rate_interval])))",
                    f"p{int(q * 100)} {{{{instance}}}}",
                    ref=ref,
                )
                for ref, q in (("A", 0.5), ("B", 0.99))
            ],
            unit="s",
        ),
        graph(
            "Monitor wake-ups",
            "Wake-ups of the sd-login monitor fd per second; several wake-ups in a burst are "
            "coalesced into one refresh.",
            [
                query(
                    f"sum by (instance) (rate({sel('logind_exporter_monitor_wakeups_total')}"
                    "[$__rate_interval]))",
                    "{{instance}}",
                )
            ],
            unit="ops",
        ),
        graph(
            "Errors by kind",
            "Exporter failures per second (monitor re-creation, read errors, ...). Anything "
            "above zero deserves a look at the exporter's log. A kind appears with its first "
            "error; the panel shows 0 until then.",
            [
                query(
                    f"sum by (kind) (rate({sel('logind_exporter_errors_total')}"
                    "[$__rate_interval]))",
                    "{{kind}}",
                )
            ],
            unit="ops",
        ).no_value("0"),
        graph(
            "Read races",
            "Objects that vanished between listing and reading them, per second: normal while "
            "people log in and out, not an error.",
            [
                query(
                    f"sum by (instance) (rate({sel('logind_exporter_read_races_total')}"
                    "[$__rate_interval]))",
                    "{{instance}}",
                )
            ],
            unit="ops",
        ),
        graph(
            "Resident memory",
            "Resident set size of the exporter process.",
            [query(sel("process_resident_memory_bytes"), "{{instance}}")],
            unit="bytes",
        ),
    ]


def variables() -> list[cogbuilder.Builder[model.VariableModel]]:
    """Return the datasource, job and instance template variables."""
    datasource = (
        dashboard_builder.DatasourceVariable("datasource").label("Data source").type("prometheus")
    )
    job = (
        dashboard_builder.QueryVariable("job")
        .label("Job")
        .datasource(DATASOURCE)
        .query("label_values(logind_up, job)")
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".+")
    )
    instance = (
        dashboard_builder.QueryVariable("instance")
        .label("Instance")
        .datasource(DATASOURCE)
        .query('label_values(logind_up{job=~"$job"}, instance)')
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".+")
    )
    return [datasource, job, instance]


def build() -> model.Dashboard:
    """Return the dashboard model, panels numbered from 1 in layout order."""
    board = (
        dashboard_builder.Dashboard(TITLE)
        .uid(UID)
        .description(
            "Sessions, seats, users and machines from systemd-logind and systemd-machined, "
            "exported by login-exporter; for fleets of login nodes, labs and kiosks."
        )
        .tags(["login-exporter", "systemd", "logind", "prometheus"])
        .editable()
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .time("now-6h", "now")
        .refresh("1m")
        .timezone("browser")
        .variables(variables())
        .annotation(
            dashboard_builder.AnnotationQuery()
            .name("Annotations & Alerts")
            .datasource(model.DataSourceRef(type_val="grafana", uid="-- Grafana --"))
            .enable(True)
            .hide(True)
            .icon_color("rgba(0, 211, 255, 1)")
            .type("dashboard")
            .built_in(1)
        )
    )
    rows: list[tuple[str, list[PanelBuilder]]] = [
        ("Health", health_row()),
        ("Sessions", sessions_row()),
        ("Seats", seats_row()),
        ("Users and machines", users_machines_row()),
        ("Logins and logouts", logins_row()),
        ("Session duration", duration_row()),
        (PRESENCE_ROW, presence_row()),
        ("Exporter", exporter_row()),
    ]
    return assemble(board, rows)


def assemble(
    board: dashboard_builder.Dashboard, rows: list[tuple[str, list[PanelBuilder]]]
) -> model.Dashboard:
    """Return ``board`` built with each row's title and panels, panels numbered from 1 in
    layout order (grafana/fleet_dashboard.py uses it too)."""
    for title, panels in rows:
        board = board.with_row(dashboard_builder.Row(title))
        for panel in panels:
            board = board.with_panel(panel)
    built = board.build()
    for number, built_panel in enumerate(built.panels or [], start=1):
        built_panel.id_val = number
    return built


def render(board: model.Dashboard | None = None) -> str:
    """Return ``board`` (this dashboard by default) as stable, sorted, indented JSON ending in a
    newline."""
    return json.dumps(board or build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def main(
    argv: list[str] | None = None, text: Callable[[], str] | None = None, output: Path = OUTPUT,
    description: str | None = __doc__,
) -> int:  # fmt: skip
    """Write the dashboard JSON ``text()`` gives (this one's by default) to ``output`` or where
    --output says; return the exit status."""
    parser = argparse.ArgumentParser(
        description=description.splitlines()[0] if description else None
    )
    parser.add_argument(
        "--output", default=str(output), help=f"where to write (default {output}; - for stdout)"
    )
    args = parser.parse_args(argv)
    body = (text or render)()
    if args.output == "-":
        sys.stdout.write(body)
    else:
        Path(args.output).write_text(body, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
