"""Fixtures for the end-to-end suite: ONE booted container for the whole run, the exporter and
node_exporter inside it, a real Prometheus on the host scraping them.

Ports (127.0.0.1), from scenario.PORT_BASE (19800 unless $LOGIN_EXPORTER_E2E_PORT_BASE says
otherwise): +0 exporter, +1 node_exporter, +2 Prometheus, +3-+9 spare (+4: this machine's
exporter, +5: the exporter under attack in test_bus_attacker.py, +6-+9: test_elogind.py's
exporters on its own booted elogind); +10-+12 test_service_managers.py's; +20-+22
test_seats.py's own container; +60-+66 test_alerts.py's (exporter, Prometheus, Alertmanager,
webhook; its fixtures').
None of these tests may use the ``logind`` fixture: the container has its own /run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def _boot_release(request: pytest.FixtureRequest) -> Iterator[Container]:
    """Boot the release ``request.param`` names, yield it, always tear it down.

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


@pytest.fixture(scope="session", params=RELEASES)
def container(request: pytest.FixtureRequest) -> Iterator[Container]:
    """A booted systemd of one release, once per release for the whole run; always torn down."""
    yield from _boot_release(request)


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


def _run_exporter(container: Container, port: int = EXPORTER_PORT) -> Iterator[Service]:
    # No resync: every change must reach /metrics through the monitors alone.
    svc = exporter_service(container, port, "--collector.session-info",
                           "--refresh.resync-interval=0")
    svc.start()
    try:
        svc.wait_answering(port)
        yield svc
    finally:
        svc.stop()


@pytest.fixture(scope="session")
def exporter(container: Container) -> Iterator[Service]:
    """The exporter from the working tree, started once (before any scenario) inside."""
    yield from _run_exporter(container)


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


def _run_prometheus(container: Container, ports: Ports | None = None) -> Iterator[Prometheus]:
    host_release_only(container, "the Prometheus pipeline")
    ports = ports or Ports()
    # The second job carries the target labels deploy/prometheus alerts select hosts by.
    prom = Prometheus(ports.prometheus, [f"127.0.0.1:{ports.exporter}"],
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
def prometheus(container: Container, exporter: Service) -> Iterator[Prometheus]:
    """Prometheus on the host; yields once the exporter's first sample is queryable."""
    yield from _run_prometheus(container)


@dataclass(frozen=True)
class Ports:
    """Where the exporter, Prometheus and this machine's exporter listen (the containers share
    this machine's network: a module with a container of its own needs ports of its own)."""

    exporter: int = EXPORTER_PORT
    prometheus: int = PROMETHEUS_PORT
    host_exporter: int = HOST_EXPORTER_PORT


def own_container_fixtures(ports: Ports) -> tuple[Any, ...]:
    """Module-scoped ``container``, ``scene``, ``exporter``, ``prometheus`` and ``host_exporter``
    fixtures, for a test module whose tests change logind for good (restarts, stops, seats given
    and taken).

    Assign them in the module (``container, scene, exporter, prometheus, host_exporter =
    own_container_fixtures(Ports(...))``, with ports apart from the shared container's): its
    tests then run in a container of their own per release, booted for the module and torn down
    after it. (On systemd 257 and newer a stopped and started logind forgets the sessions that
    were open and refuses logins while their scopes run: in the shared container every later
    test inherited that.)
    """

    @pytest.fixture(scope="module", params=RELEASES, name="container")
    def own_container(request: pytest.FixtureRequest) -> Iterator[Container]:
        yield from _boot_release(request)

    @pytest.fixture(scope="module", name="scene")
    def own_scene(container: Container) -> Scene:
        return Scene(container)

    @pytest.fixture(scope="module", name="exporter")
    def own_exporter(container: Container) -> Iterator[Service]:
        yield from _run_exporter(container, ports.exporter)

    @pytest.fixture(scope="module", name="prometheus")
    def own_prometheus(container: Container, exporter: Service) -> Iterator[Prometheus]:
        yield from _run_prometheus(container, ports)

    @pytest.fixture(scope="module", name="host_exporter")
    def own_host_exporter(container: Container) -> Iterator[int]:
        yield from _run_host_exporter(container, ports.host_exporter)

    return own_container, own_scene, own_exporter, own_prometheus, own_host_exporter


def _run_host_exporter(container: Container, port: int = HOST_EXPORTER_PORT) -> Iterator[int]:
    host_release_only_not(container)
    svc = exporter_service(container, port, "--collector.session-info",
                           "--refresh.resync-interval=0", host=True)
    svc.start()
    try:
        svc.wait_answering(port)
        build = scrape(port).series("logind_exporter_build_info")
        versions = {dict(labels)["libsystemd_version"] for labels in build}
        assert versions == {HOST_LIBSYSTEMD}, f"host exporter loaded libsystemd {versions}"
        yield port
    finally:
        svc.stop()


@pytest.fixture(scope="session")
def host_exporter(container: Container) -> Iterator[int]:
    """This machine's exporter (its Python, its libsystemd 252: the container image's) reading a
    newer release's /run/systemd, as a DaemonSet on a newer host does; yields its port."""
    yield from _run_host_exporter(container)
