"""Fixtures for the end-to-end suite: ONE booted container for the whole run, the exporter and
node_exporter inside it, a real Prometheus on the host scraping them.

Ports (127.0.0.1): 19800 exporter, 19801 node_exporter, 19802 Prometheus, 19803-19809 spare.
None of these tests may use the ``logind`` fixture: the container has its own /run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.e2e.container import Container
from tests.e2e.scenario import (
    EXPORTER_PORT,
    NODE_EXPORTER_PORT,
    PROMETHEUS_PORT,
    Scene,
    Service,
    exporter_service,
    scrape,
    wait_until,
)
from tests.support.prometheus import Prometheus


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def container() -> Iterator[Container]:
    """This machine's own systemd, booted once for the whole e2e run; always torn down."""
    if os.geteuid() != 0:
        pytest.fail("the e2e suite needs root (systemd-nspawn, mount)")
    c = Container()
    c.boot()
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="session")
def scene(container: Container) -> Scene:
    return Scene(container)


@pytest.fixture(scope="session")
def exporter(container: Container) -> Iterator[Service]:
    """The exporter from the working tree, started once (before any scenario) inside."""
    svc = exporter_service(container, EXPORTER_PORT, "--collector.session-info")
    svc.start()
    try:
        def ready() -> bool | None:
            if not svc.is_active():
                raise AssertionError(f"exporter exited:\n{svc.journal()}")
            r = requests.get(f"http://127.0.0.1:{EXPORTER_PORT}/-/ready", timeout=2)
            return True if r.status_code == 200 else None

        try:
            wait_until(ready, timeout=20, interval=0.1, what="exporter /-/ready")
        except AssertionError as e:
            pytest.fail(f"{e}\n--- exporter journal ---\n{svc.journal()}")
        yield svc
    finally:
        svc.stop()


@pytest.fixture
def metrics(exporter: Service) -> Iterator[None]:
    """Fails the test with the exporter's journal attached when the exporter died meanwhile."""
    yield
    if not exporter.is_active():
        pytest.fail(f"exporter is no longer running:\n{exporter.journal()}")


@pytest.fixture(scope="session")
def node_exporter(container: Container) -> Iterator[Service]:
    """Debian's prometheus-node-exporter with only the logind collector, inside."""
    binary = shutil.which("prometheus-node-exporter")
    if binary is None:
        pytest.fail("prometheus-node-exporter missing: apt-get install prometheus-node-exporter")
    svc = Service(container, "e2e-node-exporter", [
        binary, "--collector.disable-defaults", "--collector.logind",
        f"--web.listen-address=127.0.0.1:{NODE_EXPORTER_PORT}",
    ], cwd="/")
    svc.start()
    try:
        wait_until(lambda: scrape(NODE_EXPORTER_PORT), timeout=15, what="node_exporter")
        yield svc
    finally:
        svc.stop()


@pytest.fixture(scope="session")
def prometheus(exporter: Service) -> Iterator[Prometheus]:
    """Prometheus on the host; yields once the exporter's first sample is queryable."""
    # The second job carries the target labels deploy/prometheus alerts select hosts by.
    prom = Prometheus(PROMETHEUS_PORT, [f"127.0.0.1:{EXPORTER_PORT}"],
                      labelled={"kiosk": "true", "remote_logins": "forbidden"})
    try:
        prom.start()
        # The first sample becomes queryable after about 6 s (notes §4): poll for it.
        wait_until(lambda: prom.query("logind_up") or None, timeout=30, interval=0.25,
                   what="the first sample of logind_up in Prometheus")
        yield prom
    finally:
        prom.stop()
