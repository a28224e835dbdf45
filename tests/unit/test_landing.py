"""The landing page links exactly the routes served: its links come from the route table."""

from __future__ import annotations

import re

import pytest

from login_exporter.web import landing_page
from login_exporter.web.routes import HEALTH_PATHS, Links, route_table


class Source:
    def exposition(self, openmetrics: bool, gzip: bool) -> bytes:
        return b""

    def ready(self) -> bool:
        return True


@pytest.mark.parametrize("telemetry_path", ["/metrics", "/custom", HEALTH_PATHS[0]])
def test_the_landing_page_links_every_route_but_itself(telemetry_path: str) -> None:
    def page(links: Links) -> bytes:
        return landing_page("1.0", links, {})

    table = route_table(Source(), telemetry_path, page)
    body = table["/"]({}).body.decode()
    hrefs = re.findall(r'<a href="([^"]+)">([^<]+)</a>', body)
    assert sorted(path for path, _ in hrefs) == sorted(set(table) - {"/"})
    assert (telemetry_path, "Metrics") == hrefs[0]
