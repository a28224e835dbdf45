"""The landing page at ``/``: what this is, its version, the flags in force, the links."""

from __future__ import annotations

import html
from collections.abc import Mapping

__all__ = ["landing_page"]


def landing_page(version: str, telemetry_path: str, flags: Mapping[str, str]) -> bytes:
    """A small HTML page linking to the telemetry path, with the version and flags in force."""
    esc = html.escape
    rows = "".join(
        f"<tr><td><code>--{esc(name.removeprefix('--'))}</code></td>"
        f"<td><code>{esc(value)}</code></td></tr>\n"
        for name, value in sorted(flags.items())
    )
    page = (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\">"
        "<title>login-exporter</title></head>\n<body>\n<h1>login-exporter</h1>\n"
        "<p>Prometheus exporter for systemd-logind: sessions, seats, users and machines.</p>\n"
        f"<p>Version: <code>{esc(version)}</code></p>\n<ul>\n"
        f"<li><a href=\"{esc(telemetry_path)}\">Metrics</a></li>\n"
        "<li><a href=\"/-/healthy\">Health</a></li>\n<li><a href=\"/-/ready\">Readiness</a></li>\n"
        "</ul>\n"
        + (f"<h2>Flags</h2>\n<table>\n{rows}</table>\n" if rows else "")
        + "</body>\n</html>\n"
    )
    return page.encode("utf-8")
