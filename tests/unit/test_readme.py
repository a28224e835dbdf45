"""What README.md promises, checked against the program's own definitions (issue 22).

Wherever a README claim can be checked mechanically it is: the flags table against the argparse
parser, the metric tables against the families the collector and the presence code build, the
error kinds, the web-config fields against what webconfig.py accepts, the paths it names, the
dashboard's rows, and the alert table against the shipped alert file. Pure: reads files of
this repository and builds values by hand; no root.
"""

from __future__ import annotations

import argparse
import re
import selectors
import socket
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest
import yaml

from login_exporter import cli, webconfig
from login_exporter.bus import SYSTEM_BUS, LogindBus
from login_exporter.collector import (
    ERROR_KINDS,
    REFRESH_REASONS,
    USER_STATES,
    LogindCollector,
    Options,
    Totals,
)
from login_exporter.liveness import RULES
from login_exporter.sdlogin import _ffi as sdlogin_ffi
from login_exporter.specs import SPECS
from tests.grafana import support as grafana
from tests.support.exposition import parse_samples
from tests.support.snapshots import snapshot

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"

Table = list[list[str]]

# -- reading README ---------------------------------------------------------------------------


def _cells(line: str) -> list[str]:
    """The cells of a Markdown table row (a `|` inside backticks is still a separator here;
    README's tables hold none)."""
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def tables(text: str, header: Iterable[str]) -> list[Table]:
    """Every Markdown table in ``text`` whose header row is ``header``, as rows of cells."""
    wanted = list(header)
    found: list[Table] = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("|") and _cells(line) == wanted:
            rows: Table = []
            for row in lines[i + 2 :]:
                if not row.startswith("|"):
                    break
                rows.append(_cells(row))
            found.append(rows)
    return found


def section(text: str, heading: str) -> str:
    """The text under a Markdown heading (``## X`` or ``### X``) up to the next heading of the
    same or a higher level. Raises AssertionError when README has no such heading."""
    match = re.search(rf"^(#+) {re.escape(heading)}\n", text, re.MULTILINE)
    assert match, f"README has no heading {heading!r}"
    level = len(match.group(1))
    end = re.compile(rf"^#{{1,{level}}} ", re.MULTILINE).search(text, match.end())
    return text[match.end() : end.start() if end else len(text)]


def code_spans(text: str) -> list[str]:
    return re.findall(r"`([^`\n]+)`", text)


def readme() -> str:
    return README.read_text(encoding="utf-8")


# -- (a) flags --------------------------------------------------------------------------------

FLAGS_HEADER = ("flag", "default", "meaning")
# Flags that make the program do something else than serve: their default cell may stay empty.
MODES = ("--once", "--version")


def flags_table(text: str) -> dict[str, tuple[str, str]]:
    """README's flags table: flag as spelled there -> (default cell, whole row)."""
    found = tables(text, FLAGS_HEADER)
    assert len(found) == 1, f"README should have one flags table, has {len(found)}"
    rows: dict[str, tuple[str, str]] = {}
    for flag, default, meaning in found[0]:
        spans = code_spans(flag)
        assert len(spans) == 1, f"flag cell {flag!r} should hold one `--flag`"
        rows[spans[0]] = (default, " | ".join((flag, default, meaning)))
    return rows


def spelling(action: argparse.Action) -> str:
    """How README spells a flag: ``--[no-]name`` for a boolean one with its negation."""
    if isinstance(action, argparse.BooleanOptionalAction):
        return "--[no-]" + action.option_strings[0].removeprefix("--")
    (flag,) = action.option_strings
    return flag


def documented_default(action: argparse.Action) -> set[str]:
    """The default cells that say what the program's default for ``action`` is."""
    if action.dest == "listen":  # applied after parsing: cli.main()
        return {f"`:{cli.DEFAULT_PORT}`"}
    if isinstance(action, argparse.BooleanOptionalAction):
        return {"on" if action.default else "off"}
    if isinstance(action, argparse._StoreTrueAction):
        return {"off", ""} if action.option_strings[0] in MODES else {"off"}
    if isinstance(action, argparse._VersionAction):
        return {""}
    if action.default is None:
        return {"none"}
    return {f"`{action.default}`"}


def parser_flags(monkeypatch: pytest.MonkeyPatch) -> dict[str, argparse.Action]:
    monkeypatch.delenv("DBUS_SYSTEM_BUS_ADDRESS", raising=False)
    monkeypatch.delenv(sdlogin_ffi.ENVIRONMENT, raising=False)
    return {
        spelling(action): action
        for action in cli.build_parser()._actions
        if not isinstance(action, argparse._HelpAction)
    }


def flag_problems(text: str, flags: dict[str, argparse.Action]) -> list[str]:
    table = flags_table(text)
    problems = [f"{flag}: not in README's flags table" for flag in flags.keys() - table.keys()]
    problems += [f"{flag}: in README's flags table, not a flag"
                 for flag in table.keys() - flags.keys()]  # fmt: skip
    for flag in sorted(flags.keys() & table.keys()):
        action, (default, row) = flags[flag], table[flag]
        if action.dest == "dbus_address":
            # Default from the environment, else the system bus: README names both.
            if f"`{SYSTEM_BUS}`" not in default or "`$DBUS_SYSTEM_BUS_ADDRESS`" not in default:
                problems.append(f"{flag}: default {default!r}, program: $DBUS_SYSTEM_BUS_ADDRESS"
                                f" else {SYSTEM_BUS}")  # fmt: skip
        elif action.dest == "sdlogin_library":
            # Default from the environment, else the sonames tried in order: README names them.
            wanted = [f"`${sdlogin_ffi.ENVIRONMENT}`", *(f"`{n}`" for n in sdlogin_ffi.SONAMES[:2])]
            if [w for w in wanted if w not in default] or action.default is not None:
                problems.append(f"{flag}: default {default!r}, program: {wanted}")
        elif default not in documented_default(action):
            problems.append(f"{flag}: default {default!r}, program: {documented_default(action)}")
        missing = [c for c in action.choices or () if c not in code_spans(row)]
        if missing:
            problems.append(f"{flag}: README does not name the choices {missing}")
    return problems


def test_readme_flags_table_is_the_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    problems = flag_problems(readme(), parser_flags(monkeypatch))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("| `--refresh.debounce` | `50ms` |", "| `--refresh.debounce` | `5ms` |",
         "--refresh.debounce: default '`5ms`'"),
        ("| `--[no-]collector.dbus` |", "| `--collector.dbus` |",
         "--[no-]collector.dbus: not in README's flags table"),
        ("| `--web.systemd-socket` | off |", "| `--web.systemd-socket` | on |",
         "--web.systemd-socket: default 'on'"),
        ("| `--once` |", "| `--twice` |", "--twice: in README's flags table, not a flag"),
        ("`debug`, `info`,", "`info`,", "--log.level: README does not name the choices ['debug']"),
    ],
)  # fmt: skip
def test_the_flags_check_fails_on_a_drifted_table(
    monkeypatch: pytest.MonkeyPatch, old: str, new: str, problem: str
) -> None:
    text = readme()
    assert old in text
    problems = flag_problems(text.replace(old, new), parser_flags(monkeypatch))
    assert any(p.startswith(problem) for p in problems), problems


# -- (b) metric families, (c) error kinds ---------------------------------------------------

METRICS_HEADERS = (
    ("metric", "type", "labels", "example query"),
    ("metric", "type", "labels", "logind source"),
)


def readme_metrics(text: str) -> dict[str, tuple[str, str]]:
    """README's metric tables: each name as exposed (counters with _total) -> (type, labels)."""
    metrics: dict[str, tuple[str, str]] = {}
    for header in METRICS_HEADERS:
        found = tables(text, header)
        assert len(found) == 1, f"README should have one table headed {header}"
        for name_cell, kind, labels, _ in found[0]:
            names = code_spans(name_cell)
            assert names, f"metric cell {name_cell!r} names no `metric`"
            for name in names:
                assert name not in metrics, f"{name} listed twice"
                metrics[name] = (kind, labels)
    return metrics


# Label values README lists in parentheses, where the program has them as constants.
LABEL_VALUES = {
    ("logind_users", "state"): USER_STATES,
    ("logind_exporter_refreshes_total", "reason"): REFRESH_REASONS,
    ("logind_exporter_liveness_rule", "rule"): RULES,
}


def readme_labels(cell: str) -> tuple[tuple[str, ...], dict[str, set[str]]]:
    """A labels cell, e.g. ``state (offline, online), seat``: the label names in order, and the
    values listed for some of them."""
    names, values = [], {}
    for name, listed in re.findall(r"(\w+)(?: \(([^)]*)\))?", cell):
        names.append(name)
        if listed:
            values[name] = {v.strip() for v in listed.split(",")}
    return tuple(names), values


def metric_problems(text: str) -> list[str]:
    """What README's metric tables say otherwise than SPECS (every family the program defines;
    tests/unit/test_structure.py checks that the program exports exactly those)."""
    documented = readme_metrics(text)
    problems = [f"{name}: exported, not in README's metric tables"
                for name in sorted(SPECS.keys() - documented.keys())]  # fmt: skip
    problems += [f"{name}: in README's metric tables, not exported"
                 for name in sorted(documented.keys() - SPECS.keys())]  # fmt: skip
    for name, (kind, cell) in sorted(documented.items()):
        if name not in SPECS:
            continue
        spec = SPECS[name]
        labels, values = readme_labels(cell)
        if kind != spec.type:
            problems.append(f"{name}: README says {kind}, exported as {spec.type}")
        if labels != spec.labels:
            problems.append(f"{name}: README's labels {labels}, exported {spec.labels}")
        for label, listed in values.items():
            known = LABEL_VALUES.get((name, label))
            if known is not None and listed != set(known):
                problems.append(f"{name}: README lists {label} {sorted(listed)}, the program "
                                f"has {sorted(known)}")
    return problems


def test_readme_metric_tables_are_the_specs() -> None:
    assert {"logind_up", "logind_session_info", "logind_dbus_up", "logind_docked"} <= set(SPECS)
    problems = metric_problems(readme())
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("| `logind_seat_can_tty` | gauge | seat | `logind_seat_can_tty` |\n", "",
         "logind_seat_can_tty: exported, not in README"),
        ("`logind_docked`, ", "`logind_docking`, ", "logind_docking: in README's metric tables"),
        ("| `logind_exporter_read_races_total` | counter |",
         "| `logind_exporter_read_races_total` | gauge |",
         "logind_exporter_read_races_total: README says gauge"),
        ("| `logind_seat_can_tty` | gauge | seat |",
         "| `logind_seat_can_tty` | gauge | seat, tty |",
         "logind_seat_can_tty: README's labels ('seat', 'tty')"),
        ("rule (unit, pidfile, files)", "rule (unit, files)",
         "logind_exporter_liveness_rule: README lists rule ['files', 'unit']"),
    ],
)  # fmt: skip
def test_the_metrics_check_fails_on_a_drifted_table(old: str, new: str, problem: str) -> None:
    text = readme()
    assert old in text
    problems = metric_problems(text.replace(old, new))
    assert any(p.startswith(problem) for p in problems), problems


def readme_error_kinds(text: str) -> set[str]:
    _, cell = readme_metrics(text)["logind_exporter_errors_total"]
    names, values = readme_labels(cell)
    assert names == ("kind",) and "kind" in values, (
        f"errors_total's labels {cell!r} should read `kind (a, b, ...)`")
    return values["kind"]


@pytest.fixture
def lost_bus(tmp_path: Path) -> Iterator[LogindBus]:
    """A LogindBus whose connection was accepted, then reset by the other side."""
    path = tmp_path / "bus"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        server.listen()
        bus = LogindBus(f"unix:path={path}", shutdown_dir=str(tmp_path))
        try:
            bus.start()
            server.accept()[0].close()
            for fd in list(bus.fds()):
                bus.handle(fd, selectors.EVENT_READ)
            yield bus
        finally:
            bus.close()


def exported_error_kinds(bus: LogindBus) -> set[str]:
    """The kinds of logind_exporter_errors_total: the collector's own, and what the bus counts
    (the agent adds the bus's errors to the totals, agent.py)."""
    assert bus.errors, "the lost connection was not counted"
    totals = Totals()
    totals.errors.update(bus.errors)
    collector = LogindCollector(Options(), "252", start_time_known=True)
    collector.update(snapshot(), totals)
    text = collector.exposition().get(openmetrics=False, gzip=False).decode()
    return {dict(labels)["kind"] for name, labels in parse_samples(text)
            if name == "logind_exporter_errors_total"}  # fmt: skip


def test_readme_error_kinds_are_the_programs(lost_bus: LogindBus) -> None:
    kinds = exported_error_kinds(lost_bus)
    assert kinds == {*ERROR_KINDS, "dbus"}
    assert readme_error_kinds(readme()) == kinds


def test_the_error_kinds_check_fails_without_dbus(lost_bus: LogindBus) -> None:
    text = re.sub(r"kind \(([^)]*)\)", "kind (list, monitor, read)", readme())
    assert readme_error_kinds(text) != exported_error_kinds(lost_bus)


# -- (d) web configuration ------------------------------------------------------------------


def accepted_web_config_keys(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> set[str]:
    """Every field webconfig.py accepts, qualified (``tls_server_config.cert_file``): what its
    sections check their keys against while loading an empty config."""
    accepted: set[str] = set()
    check_keys = webconfig._Fields.check_keys

    def recording(
        self: webconfig._Fields, known: frozenset[str], unsupported: object
    ) -> None:
        prefix = self._prefix
        accepted.update(f"{prefix}.{key}" if prefix else key for key in known)
        check_keys(self, known, unsupported)  # type: ignore[arg-type]

    monkeypatch.setattr(webconfig._Fields, "check_keys", recording)
    empty = tmp_path / "web.yml"
    empty.write_text("{}\n", encoding="utf-8")
    webconfig.load_web_config(empty)
    assert "tls_server_config.cert_file" in accepted, "the key sets were not recorded"
    return accepted


KEY = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*")


def web_config_problems(text: str, accepted: set[str]) -> list[str]:
    """Each accepted field must be named in README's "Web configuration" (by its own name, or
    as a part of a dotted ``section.field``), and each field-like name there must be one."""
    spans = [s for s in code_spans(section(text, "Web configuration")) if KEY.fullmatch(s)]
    named = {part for span in spans for part in span.split(".")}
    leaves = {key.rsplit(".", 1)[-1] for key in accepted}
    problems = [f"{key}: accepted by webconfig.py, not in README's Web configuration"
                for key in sorted(accepted) if key.rsplit(".", 1)[-1] not in named]  # fmt: skip
    refused = set(webconfig._TLS_UNSUPPORTED)  # named in README as what is refused
    problems += [f"{span}: in README's Web configuration, not a field webconfig.py accepts"
                 for span in spans if ("_" in span or "." in span)
                 and not set(span.split(".")) <= leaves | refused]  # fmt: skip
    return problems


def test_readme_web_configuration_is_what_webconfig_accepts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    problems = web_config_problems(readme(), accepted_web_config_keys(monkeypatch, tmp_path))
    assert not problems, "\n".join(problems)


def test_the_web_configuration_check_fails_on_drift(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    accepted = accepted_web_config_keys(monkeypatch, tmp_path)
    text = readme().replace("`max_version`", "`max_versions`")
    problems = web_config_problems(text, accepted)
    assert "tls_server_config.max_version: accepted by webconfig.py, not in README's Web " \
        "configuration" in problems
    assert "max_versions: in README's Web configuration, not a field webconfig.py accepts" \
        in problems


# -- (e) paths ------------------------------------------------------------------------------

PATH = re.compile(r"(?<![\w./-])((?:deploy|grafana|bench|tests|debian|\.ci)/[\w./*-]*)")
MODULE = re.compile(r"python3 -m ((?:bench|tests|grafana)(?:\.\w+)+)")


def named_paths(text: str) -> set[str]:
    """Repository paths README names (``deploy/...``, ``tests/...``, ...) and the modules it
    runs with ``python3 -m`` (as paths)."""
    paths = {p.rstrip(".") for p in PATH.findall(text)}
    paths |= {m.replace(".", "/") + ".py" for m in MODULE.findall(text)}
    return paths


def missing_paths(text: str) -> list[str]:
    return sorted(p for p in named_paths(text) if not any(ROOT.glob(p.rstrip("/"))))


def test_paths_readme_names_exist() -> None:
    paths = named_paths(readme())
    assert {"deploy/systemd/login-exporter.service", "grafana/dashboard.py",
            "bench/floor/", "tests/e2e/test_bus_attacker.py", "bench/soak.py"} <= paths
    assert not missing_paths(readme())


def test_the_paths_check_fails_on_a_missing_path() -> None:
    text = readme() + "\nSee `deploy/systemd/login-exporter.timer` and `python3 -m bench.nope`.\n"
    assert missing_paths(text) == ["bench/nope.py", "deploy/systemd/login-exporter.timer"]


def base_images(text: str) -> set[str]:
    """The Python base images README names (``python:3.11-...``)."""
    return set(re.findall(r"`(python:[\w.-]+)`", text))


def test_readme_names_the_dockerfiles_base_image() -> None:
    match = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert match, "the Dockerfile no longer names its base in ARG PYTHON_IMAGE"
    assert base_images(readme()) == {match.group(1)}


def test_the_base_image_check_fails_on_another_image() -> None:
    assert base_images("multi-stage on `python:3.11-slim`") == {"python:3.11-slim"}


# -- (f) dashboard rows ---------------------------------------------------------------------


def readme_rows(text: str) -> list[str]:
    return re.findall(r"^- \*\*(.+?)\*\*", section(text, "Dashboard"), re.MULTILINE)


def dashboard_rows() -> list[str]:
    """The rows of the committed dashboard (tests/grafana/test_dashboard.py keeps it equal to
    what grafana/dashboard.py generates)."""
    return [p["title"] for p in grafana.load()["panels"] if p["type"] == "row"]


def test_readme_lists_the_dashboards_rows() -> None:
    assert len(dashboard_rows()) >= 8
    assert readme_rows(readme()) == dashboard_rows()


def test_the_rows_check_fails_on_a_missing_row() -> None:
    text = re.sub(r"^- \*\*Exporter\*\*:", "- Exporter:", readme(), flags=re.MULTILINE)
    assert readme_rows(text) != dashboard_rows()


# -- (g) alerts -----------------------------------------------------------------------------

ALERTS_HEADER = ("alert", "severity", "what it means for you", "what to do", "tune")
ALERT_FILE = ROOT / "deploy" / "prometheus" / "login-exporter-alerts.yml"


def shipped_alerts() -> dict[str, str]:
    """Every alert in the shipped alert file -> its severity."""
    doc = yaml.safe_load(ALERT_FILE.read_text(encoding="utf-8"))
    return {rule["alert"]: rule["labels"]["severity"]
            for group in doc["groups"] for rule in group["rules"] if "alert" in rule}


def alert_problems(text: str, shipped: dict[str, str]) -> list[str]:
    """README's alert table against the shipped alerts: each in both, once, with its severity,
    and with something in every cell."""
    found = tables(text, ALERTS_HEADER)
    assert len(found) == 1, f"README should have one table headed {ALERTS_HEADER}"
    documented: dict[str, str] = {}
    problems = []
    for row in found[0]:
        names = code_spans(row[0])
        assert len(names) == 1, f"alert cell {row[0]!r} should hold one `Alert`"
        name = names[0]
        if name in documented:
            problems.append(f"{name}: twice in README's alert table")
        documented[name] = row[1]
        if len(row) != len(ALERTS_HEADER) or not all(row):
            problems.append(f"{name}: a cell of its row is empty or missing")
    problems += [f"{name}: in the alert file, not in README's alert table"
                 for name in sorted(shipped.keys() - documented.keys())]  # fmt: skip
    problems += [f"{name}: in README's alert table, not in the alert file"
                 for name in sorted(documented.keys() - shipped.keys())]  # fmt: skip
    problems += [f"{name}: README says {documented[name]}, the alert file {severity}"
                 for name, severity in sorted(shipped.items())
                 if name in documented and documented[name] != severity]  # fmt: skip
    return problems


def test_readme_alert_table_is_the_alert_file() -> None:
    shipped = shipped_alerts()
    assert len(shipped) >= 17
    problems = alert_problems(readme(), shipped)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda t: re.sub(r"^\| `KioskSeatIdle` \|.*\n", "", t, flags=re.MULTILINE),
         "KioskSeatIdle: in the alert file, not in README"),
        (lambda t: t.replace("| `LoginStorm` |", "| `LoginStorms` |"),
         "LoginStorms: in README's alert table, not in the alert file"),
        (lambda t: t.replace("| `ShutdownScheduled` | info |", "| `ShutdownScheduled` | warning |"),
         "ShutdownScheduled: README says warning"),
        (lambda t: re.sub(r"^(\| `LogindDown` \|[^|]*\|[^|]*\|)[^|]*\|", r"\1 |", t,
                          flags=re.MULTILINE),
         "LogindDown: a cell of its row is empty"),
    ],
)  # fmt: skip
def test_the_alert_check_fails_on_a_drifted_table(
    edit: Callable[[str], str], problem: str
) -> None:
    text = readme()
    drifted = edit(text)
    assert drifted != text
    problems = alert_problems(drifted, shipped_alerts())
    assert any(p.startswith(problem) for p in problems), problems
