"""The landing page at ``/``: what this is, its version, the flags in force, the links."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

__all__ = ["landing_page"]


def landing_page(
    version: str, links: Sequence[tuple[str, str]], flags: Mapping[str, str]
) -> bytes:
    """Return a small HTML page with the version, a link to each (path, title) of ``links`` (the
    route table's, see routes.route_table) and the flags in force."""
    esc = html.escape
    items = "".join(f"<li><a href=\"{esc(path)}\">{esc(title)}</a></li>\n" for path, title in links)
    rows = "".join(
        f"<tr><td><code>--{esc(name.removeprefix('--'))}</code></td>"
        f"<td><code>{esc(value)}</code></td></tr>\n"
        for name, value in sorted(flags.items())
    )
    page = (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\">"
        "<title>login-exporter</title></head>\n<body>\n<h1>login-exporter</h1>\n"
        "<p>Prometheus exporter for systemd-logind: sessions, seats, users and machines.</p>\n"
        f"<p>Version: <code>{esc(version)}</code></p>\n<ul>\n{items}</ul>\n"
        + (f"<h2>Flags</h2>\n<table>\n{rows}</table>\n" if rows else "")
        + "</body>\n</html>\n"
    )
    return page.encode("utf-8")
