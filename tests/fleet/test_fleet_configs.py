"""deploy/prometheus/fleet: promtool accepts every config, and the two agent configs agree."""

from __future__ import annotations

import pytest

from tests.deploy.tools import describe, find_tool, run
from tests.support import fleet

CONFIGS = {
    "agent.yml": ["--agent"],
    "agent-victoriametrics.yml": ["--agent"],
    "central.yml": [],
    "site-server.yml": [],
    "central-federation.yml": [],
}


@pytest.mark.parametrize("name", CONFIGS)
def test_promtool_check_config(name: str) -> None:
    proc = run([find_tool("promtool"), "check", "config", *CONFIGS[name], name], cwd=fleet.FLEET)
    assert proc.returncode == 0 and "SUCCESS" in proc.stdout + proc.stderr, describe(proc)


def test_agent_configs_scrape_and_filter_alike() -> None:
    prometheus, victoria = fleet.load("agent.yml"), fleet.load("agent-victoriametrics.yml")
    assert prometheus["scrape_configs"] == victoria["scrape_configs"]
    assert fleet.load("site-server.yml")["scrape_configs"] == prometheus["scrape_configs"]
    relabel = [w["write_relabel_configs"] for w in prometheus["remote_write"]]
    assert relabel == [w["write_relabel_configs"] for w in victoria["remote_write"]]
    assert "/api/v1/write" in prometheus["remote_write"][0]["url"]
    assert "/insert/0/prometheus/api/v1/write" in victoria["remote_write"][0]["url"]
