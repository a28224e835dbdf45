"""Fixtures for the end-to-end suite: ONE booted container for the whole run, the exporter and
node_exporter inside it, a real Prometheus on the host scraping them.

Ports (127.0.0.1): 19800 exporter, 19801 node_exporter, 19802 Prometheus, 19803-19809 spare
(19804: this machine's exporter, 19805: the exporter under attack in test_bus_attacker.py,
19806-19808: test_elogind.py's exporters on its own booted elogind).
None of these tests may use the ``logind`` fixture: the container has its own /run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from login_exporter.sdlogin import abi_version
from tests.e2e.container import Container, RootfsUnavailable, rootfs
from tests.e2e.scenario import (
    EXPORTER_PORT,
    HOST_EXPORTER_PORT,
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


# The releases every e2e test runs on: this machine's own systemd (an overlay of /), Debian 13
# and Debian unstable (cached root filesystems from .ci/rootfs). LOGIN_EXPORTER_E2E_RELEASES
# narrows the list for a quick local run (e.g. "host").
HOST_LIBSYSTEMD = abi_version()  # this machine's libsystemd ("252" on Debian 12)
RELEASES = tuple(os.environ.get("LOGIN_EXPORTER_E2E_RELEASES", "host trixie sid").split())


def pytest_report_header() -> str:
    return f"e2e releases: {', '.join(RELEASES)}"


@pytest.fixture(scope="session", params=RELEASES)
def container(request: pytest.FixtureRequest) -> Iterator[Container]:
    """A booted systemd of one release, once per release for the whole run; always torn down.

    A release whose root filesystem cannot be bootstrapped (mirror down) is skipped with the
    reason; anything else that goes wrong fails.
    """
    if os.geteuid() != 0:
        pytest.fail("the e2e suite needs root (systemd-nspawn, mount)")
    release = request.param
    try:
        lower = None if release == "host" else rootfs(release)
    except RootfsUnavailable as e:
        pytest.skip(str(e))
    c = Container(lower=lower)
    c.boot()
    try:
        c.release = release
        line = f"e2e: booted {release}: systemd {c.systemd_version()}"
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            print(f"\n{line}", flush=True)
        yield c
    finally:
        c.close()


def host_release_only_not(container: Container) -> None:
    """Skip when ``container`` is this machine's own systemd (nothing newer to read)."""
    if container.lower is None:
        pytest.skip("this machine's exporter against its own systemd is the in-container run")


def host_release_only(container: Container, what: str) -> None:
    """Skip, naming ``what``, unless ``container`` is this machine's own systemd (whose
    binaries, such as node_exporter, are the ones inside)."""
    if container.lower is not None:
        pytest.skip(f"{what} runs against this machine's own systemd only")


@pytest.fixture(scope="session")
def scene(container: Container) -> Scene:
    return Scene(container)


@pytest.fixture(scope="session")
def exporter(container: Container) -> Iterator[Service]:
    """The exporter from the working tree, started once (before any scenario) inside."""
    # No resync: every change must reach /metrics through the monitors alone.
    svc = exporter_service(container, EXPORTER_PORT, "--collector.session-info",
                           "--refresh.resync-interval=0")
    svc.start()
    try:
        svc.wait_answering(EXPORTER_PORT)
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
    host_release_only(container, "the comparison with node_exporter")
    binary = shutil.which("prometheus-node-exporter")
    if binary is None:
        pytest.fail("prometheus-node-exporter missing: apt-get install prometheus-node-exporter")
    svc = Service(container, "e2e-node-exporter", [
        binary, "--collector.disable-defaults", "--collector.logind",
        f"--web.listen-address=127.0.0.1:{NODE_EXPORTER_PORT}",
    ], cwd="/")
    svc.start()
    try:
        svc.wait_answering(NODE_EXPORTER_PORT, "/metrics", timeout=15)
        yield svc
    finally:
        svc.stop()


@pytest.fixture(scope="session")
def prometheus(container: Container, exporter: Service) -> Iterator[Prometheus]:
    """Prometheus on the host; yields once the exporter's first sample is queryable."""
    host_release_only(container, "the Prometheus pipeline")
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


@pytest.fixture(scope="session")
def host_exporter(container: Container) -> Iterator[int]:
    """This machine's exporter (its Python, its libsystemd 252: the container image's) reading a
    newer release's /run/systemd, as a DaemonSet on a newer host does; yields its port."""
    host_release_only_not(container)
    svc = exporter_service(container, HOST_EXPORTER_PORT, "--collector.session-info",
                           "--refresh.resync-interval=0", host=True)
    svc.start()
    try:
        svc.wait_answering(HOST_EXPORTER_PORT)
        build = scrape(HOST_EXPORTER_PORT).series("logind_exporter_build_info")
        versions = {dict(labels)["libsystemd_version"] for labels in build}
        assert versions == {HOST_LIBSYSTEMD}, f"host exporter loaded libsystemd {versions}"
        yield HOST_EXPORTER_PORT
    finally:
        svc.stop()
