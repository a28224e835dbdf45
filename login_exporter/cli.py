"""Command line: parse flags, wire sdlogin → state → collector → web, run the agent (sddaemon).

Exit codes: 0 clean, 2 bad command line or config (stderr names the problem), 1 anything else.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import re
import socket
import sys
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
)

from login_exporter import __version__, logs, sddaemon, sdlogin
from login_exporter.agent import Agent, Settings
from login_exporter.bus import SYSTEM_BUS, LogindBus, socket_path
from login_exporter.collector import LogindCollector, Options
from login_exporter.exposition import Publisher
from login_exporter.presence import PresenceFamilies
from login_exporter.sdlogin import plumbing as sdlogin_library
from login_exporter.state import Refresher
from login_exporter.web import WebServer, bind_listen_addresses, landing_page, parse_listen_address
from login_exporter.webconfig import WebConfig, WebConfigError, load_web_config

DEFAULT_PORT = 9844
ONCE_BUS_TIMEOUT = 2.0  # --once waits this long at most for logind's answers on the bus
log = logging.getLogger("login_exporter")

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Return seconds for a Prometheus-style duration ("50ms", "5m", "1h30m", "0").

    Raises ValueError naming the text when it is not one.
    """
    if text == "0":
        return 0.0
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"invalid duration {text!r} (examples: 50ms, 5m, 1h30m, 0)")
    return sum(float(number) * _UNITS[unit] for number, unit in parts)


def format_duration(seconds: float) -> str:
    """Return ``seconds`` the way the flags take it back ("50ms", "5m", "90s", "0")."""
    if seconds == 0:
        return "0"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    if seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    if seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _checked_by(check: Callable[[str], object]) -> Callable[[str], str]:
    """Return an argparse type that keeps the text when ``check`` accepts it; check's ValueError
    becomes the flag's error (exit 2 naming the flag)."""

    def convert(text: str) -> str:
        try:
            check(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text

    return convert


_listen_address = _checked_by(parse_listen_address)
_dbus_address = _checked_by(socket_path)


def _telemetry_path(text: str) -> str:
    if not text.startswith("/") or any(c.isspace() for c in text):
        raise argparse.ArgumentTypeError(f"{text!r} must start with '/' and hold no spaces")
    return text


def build_parser() -> argparse.ArgumentParser:
    """Return the parser for every flag in the interface contract."""
    parser = argparse.ArgumentParser(
        prog="login-exporter",
        description="Prometheus exporter for systemd-logind (sessions, seats, users, machines).",
        allow_abbrev=False,
    )
    add = parser.add_argument
    add("--web.listen-address", dest="listen", action="append", type=_listen_address,
        metavar="ADDR", help=f"address to listen on; may repeat (default :{DEFAULT_PORT})")
    add("--web.telemetry-path", dest="telemetry_path", default="/metrics", type=_telemetry_path,
        help="path serving metrics (default /metrics)")
    add("--web.config.file", dest="web_config", metavar="FILE",
        help="exporter-toolkit web config (TLS, basic auth)")
    add("--web.systemd-socket", dest="systemd_socket", action="store_true",
        help="use the socket(s) passed by systemd socket activation")
    add("--web.disable-exporter-metrics", dest="disable_exporter_metrics", action="store_true",
        help="drop the process_* and python_* metrics")
    add("--collector.machines", dest="machines", action=argparse.BooleanOptionalAction,
        default=True, help="export machines registered with machined (default on)")
    add("--collector.machine-info", dest="machine_info", action=argparse.BooleanOptionalAction,
        default=True, help="export logind_machine_info per machine (default on)")
    add("--collector.session-info", dest="session_info", action=argparse.BooleanOptionalAction,
        default=False, help="export logind_session_info per session with identifying labels "
        "(user, uid, remote host, session id; default off)")
    add("--collector.dbus", dest="dbus", action=argparse.BooleanOptionalAction, default=True,
        help="follow logind on the system bus: idle and lock hints, inhibitors, shutdown, "
        "sleep, lid (default on)")
    add("--dbus.address", dest="dbus_address", type=_dbus_address, metavar="ADDRESS",
        default=os.environ.get("DBUS_SYSTEM_BUS_ADDRESS") or SYSTEM_BUS,
        help=f"D-Bus address of the system bus (default $DBUS_SYSTEM_BUS_ADDRESS or {SYSTEM_BUS})")
    add("--collector.inhibitor-info", dest="inhibitor_info",
        action=argparse.BooleanOptionalAction, default=False,
        help="export logind_inhibitor_info per lock with who and why labels (default off)")
    add("--sdlogin.library", dest="sdlogin_library", metavar="PATH",
        default=os.environ.get(sdlogin_library.ENVIRONMENT) or None,
        help="the sd-login library to load (default $LOGIN_EXPORTER_SDLOGIN_LIBRARY, else "
        "libsystemd.so.0, then elogind's libelogind.so.0)")
    add("--refresh.debounce", dest="debounce", type=_duration, default="50ms",
        help="minimum time between two refreshes; bursts are coalesced (default 50ms)")
    add("--refresh.resync-interval", dest="resync_interval", type=_duration, default="5m",
        help="full re-read even without events, 0 disables (default 5m)")
    add("--log.level", dest="log_level", default="info", choices=logs.LEVELS)
    add("--log.format", dest="log_format", default="logfmt", choices=("logfmt", "json"))
    add("--once", action="store_true", help="print one exposition to stdout and exit")
    add("--version", action="version", version=f"login-exporter {__version__}")
    return parser  # fmt: skip


# Never in force while the landing page is served: --once prints and exits, as do these two.
NOT_SERVING = frozenset({"help", "version", "once"})


def flags_in_force(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, str]:
    """Return flag name (without "--") -> value as the flag takes it, for every flag the parser
    knows but --help, --version and --once: a new flag shows up without a second list."""
    flags = {}
    for action in parser._actions:  # argparse has no public list of its actions
        if not action.option_strings or action.dest in NOT_SERVING:
            continue
        name = action.option_strings[0].removeprefix("--")
        flags[name] = _as_given(getattr(args, action.dest), action)
    return flags


def _as_given(value: object, action: argparse.Action) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if action.type is _duration and isinstance(value, float):
        return format_duration(value)
    return str(value)


def from_flags(settings: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Return {field: value of the flag whose dest is that field} for the dataclass
    ``settings``: what the flags configure is named once, by the parser's dests.

    Raises AttributeError naming a field no flag sets (tests/unit/test_cli.py checks them all).
    """
    return {field.name: getattr(args, field.name) for field in dataclasses.fields(settings)}


def _live_registry(disabled: bool) -> CollectorRegistry | None:
    if disabled:
        return None
    live = CollectorRegistry(auto_describe=False)
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        live.register(collector)
    return live


def _systemd_sockets() -> list[socket.socket]:
    count = sddaemon.listen_fds()
    if count < 1:
        raise WebConfigError("--web.systemd-socket: systemd passed no socket (LISTEN_FDS unset)")
    return [socket.socket(fileno=3 + i) for i in range(count)]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the exporter; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.listen = args.listen or [f":{DEFAULT_PORT}"]
    logs.configure(args.log_level, args.log_format)
    try:
        config = load_web_config(args.web_config) if args.web_config else WebConfig()
    except WebConfigError as exc:
        parser.exit(2, f"login-exporter: error: {exc}\n")
    if args.sdlogin_library:
        sdlogin_library.use_library(args.sdlogin_library)
        try:
            sdlogin_library.load()  # now, so that a wrong path is a bad command line (exit 2)
        except sdlogin_library.ExplicitLibraryError as exc:
            parser.exit(2, f"login-exporter: error: argument --sdlogin.library: {exc.strerror}\n")
    try:
        return _run(parser, args, config)
    except WebConfigError as exc:
        parser.exit(2, f"login-exporter: error: {exc}\n")
    except OSError as exc:
        log.error("fatal: %s", exc)
        return 1


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace, config: WebConfig) -> int:
    live = _live_registry(args.disable_exporter_metrics)
    options = Options(**from_flags(Options, args))
    collector = LogindCollector(
        options,
        libsystemd_version=sdlogin.abi_version(),
        start_time_known=sdlogin.capabilities()["sd_session_get_start_time"],
        library=sdlogin.library(),
    )
    publisher = Publisher(live)
    refresher = Refresher(machines=options.machines, details=options.session_info)
    settings = Settings(**from_flags(Settings, args))
    agent = Agent(
        settings,
        refresher,
        collector,
        publisher,
        notify=sddaemon.notify,
        watchdog_usec=sddaemon.watchdog_usec(),
        bus=LogindBus(args.dbus_address) if args.dbus else None,
        presence=PresenceFamilies(args.inhibitor_info),
    )
    if args.once:
        agent.once(ONCE_BUS_TIMEOUT)
        sys.stdout.buffer.write(publisher.exposition(openmetrics=False))
        sys.stdout.flush()
        agent.close()
        return 0
    sockets = _systemd_sockets() if args.systemd_socket else bind_listen_addresses(args.listen)
    server = WebServer(
        sockets,
        publisher,
        telemetry_path=args.telemetry_path,
        config=config,
        landing_page=partial(landing_page, __version__, flags=flags_in_force(parser, args)),
        # Serving nothing while looking alive helps nobody: stop, exit 1, let systemd restart.
        on_failure=lambda exc: agent.request_stop(),
    )
    agent.install_signal_handlers()
    agent.start()
    server.start()
    addresses = ", ".join(f"{host}:{port}" for host, port in server.addresses)
    log.info("listening", extra={"address": addresses, "version": __version__})
    sddaemon.notify("READY=1")
    try:
        agent.run()
    finally:
        sddaemon.notify("STOPPING=1")
        server.shutdown()
        agent.close()
    if server.failure is not None:
        log.error("fatal: the web server stopped accepting connections: %s", server.failure)
        return 1
    log.info("stopped")
    return 0
