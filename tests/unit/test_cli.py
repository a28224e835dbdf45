"""Command line: durations, defaults, --version and --help, the exit codes of a failed start.

Every bad flag and every bad web-config field (exit 2, naming it) is pinned once, in
tests/reliability/test_bad_input.py.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from login_exporter import __version__
from login_exporter.agent import Settings
from login_exporter.cli import (
    DEFAULT_PORT,
    build_parser,
    flags_in_force,
    format_duration,
    from_flags,
    parse_duration,
)
from login_exporter.collector import Options
from login_exporter.web import landing_page
from tests.support.exporter import ROOT
from tests.support.flags import help_flags, landing_flags

# -- parse_duration -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0.0), ("0s", 0.0), ("50ms", 0.05), ("1ms", 0.001), ("10ms", 0.01), ("1s", 1.0),
        ("1.5s", 1.5), ("5m", 300.0), ("1h", 3600.0), ("1h30m", 5400.0), ("1d", 86400.0),
        ("2m30s", 150.0), ("1s500ms", 1.5),
    ],
)  # fmt: skip
def test_parse_duration_accepts_prometheus_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0, "0"), (0.05, "50ms"), (0.001, "1ms"), (1.5, "1.5s"), (90.0, "90s"), (300.0, "5m"),
     (7200.0, "2h")],
)  # fmt: skip
def test_format_duration_round_trips(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text",
    ["", "abc", "5", "10 s", "-5s", "5x", "ms", "s5", "5m ", " 5m", "1.s", ".5s", "5mm", "1e3s",
     "5M", "1h-30m"],
)  # fmt: skip
def test_parse_duration_rejects_everything_else_naming_the_text(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    assert repr(text) in str(info.value)


# -- defaults -------------------------------------------------------------------------------------


def test_defaults_follow_the_contract() -> None:
    args = build_parser().parse_args([])
    assert DEFAULT_PORT == 9844
    assert args.listen is None  # main() turns it into [":9844"]
    assert args.telemetry_path == "/metrics"
    assert args.web_config is None and not args.systemd_socket
    assert not args.disable_exporter_metrics
    assert (args.machines, args.machine_info, args.session_info) == (True, True, False)
    assert args.debounce == pytest.approx(0.05)
    assert args.resync_interval == pytest.approx(300.0)
    assert (args.log_level, args.log_format) == ("info", "logfmt")
    assert not args.once


def test_boolean_collector_flags_have_no_forms() -> None:
    args = build_parser().parse_args(
        ["--no-collector.machines", "--no-collector.machine-info", "--collector.session-info",
         "--refresh.resync-interval=0", "--web.listen-address=[::]:1",
         "--web.listen-address=127.0.0.1:2"]
    )  # fmt: skip
    assert (args.machines, args.machine_info, args.session_info) == (False, False, True)
    assert args.resync_interval == 0.0
    assert args.listen == ["[::]:1", "127.0.0.1:2"]


def test_abbreviated_flags_are_refused() -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["--once", "--refresh.deb=1s"])
    assert info.value.code == 2


# -- the landing page's flags in force ------------------------------------------------------------


def test_flags_in_force_are_every_flag_of_the_help() -> None:
    # Derived from the parser: a new flag shows up on the landing page without a second list.
    parser = build_parser()
    shown = {f"--{name}" for name in flags_in_force(parser, parser.parse_args([]))}
    assert shown == help_flags()


def test_flags_in_force_show_values_as_the_flags_take_them() -> None:
    parser = build_parser()
    args = parser.parse_args(
        ["--web.listen-address=[::]:1", "--web.listen-address=127.0.0.1:2", "--log.level=debug",
         "--log.format=json", "--web.disable-exporter-metrics", "--no-collector.dbus",
         "--refresh.debounce=1m30s", "--refresh.resync-interval=0", "--dbus.address=unix:path=/b"]
    )  # fmt: skip
    flags = flags_in_force(parser, args)
    assert flags == {
        "web.listen-address": "[::]:1, 127.0.0.1:2",
        "web.telemetry-path": "/metrics",
        "web.config.file": "",
        "web.systemd-socket": "false",
        "web.disable-exporter-metrics": "true",
        "collector.machines": "true",
        "collector.machine-info": "true",
        "collector.session-info": "false",
        "collector.dbus": "false",
        "dbus.address": "unix:path=/b",
        "collector.inhibitor-info": "false",
        "sdlogin.library": "",
        "refresh.debounce": "90s",
        "refresh.resync-interval": "0",
        "log.level": "debug",
        "log.format": "json",
    }
    page = landing_page("1.0", [("/metrics", "Metrics")], flags).decode()
    assert landing_flags(page) == {f"--{name}": value for name, value in flags.items()}


# -- the real program -----------------------------------------------------------------------------


def run(*args: str, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "login_exporter", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_version_prints_and_exits_0() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert __version__ in result.stdout


def test_help_lists_every_contract_flag() -> None:
    result = run("--help")
    assert result.returncode == 0
    for flag in (
        "--web.listen-address", "--web.telemetry-path", "--web.config.file",
        "--web.systemd-socket", "--web.disable-exporter-metrics", "--collector.machines",
        "--no-collector.machines", "--collector.machine-info", "--collector.session-info",
        "--refresh.debounce", "--refresh.resync-interval", "--log.level", "--log.format",
        "--once", "--version",
    ):  # fmt: skip
        assert flag in result.stdout, flag




@pytest.mark.parametrize("settings", [Options, Settings])
def test_what_flags_configure_is_named_by_the_parsers_dests(settings: type) -> None:
    """Options and Settings are built from the flags by field name (from_flags), and their
    defaults are the flags' defaults: a flag is defined once, in build_parser()."""
    args = build_parser().parse_args([])
    built = settings(**from_flags(settings, args))
    assert built == settings(), "a field's default differs from its flag's default"
    with pytest.raises(AttributeError, match="has no attribute"):
        from_flags(settings, argparse.Namespace())  # a field no flag sets fails loudly
