"""Exact on every release the suite boots, each change on /metrics within a second.

Each step changes something real inside the booted release (a login, the release's own
root-login class, lingering, a logout, a machine that lives 2 s), then requires every exporter
reading that release to agree with loginctl / machinectl within VISIBLE seconds, with no scrape,
signal or resync to help (the exporters run with --refresh.resync-interval=0). The exporters:
the one inside the container (its own Python and libsystemd) and, on a newer release, this
machine's (libsystemd 252, as in the container image) reading the container's /run/systemd.
"""

from __future__ import annotations

import time

import pytest

from tests.e2e.checks import assert_agrees
from tests.e2e.container import Container
from tests.e2e.scenario import EXPORTER_PORT, Exposition, Scene, Service, scrape, wait_until

pytestmark = pytest.mark.e2e

VISIBLE = 1.0


@pytest.fixture
def ports(request: pytest.FixtureRequest, container: Container, exporter: Service) -> list[int]:
    """The exporters reading this release: inside, and this machine's on a newer release."""
    if container.lower is None:
        return [EXPORTER_PORT]
    return [EXPORTER_PORT, request.getfixturevalue("host_exporter")]


def agree_within(scene: Scene, ports: list[int], what: str) -> list[Exposition]:
    """Require every exporter to agree with logind within VISIBLE seconds from now."""
    started = time.monotonic()
    out = []
    for port in ports:
        remaining = max(0.05, VISIBLE - (time.monotonic() - started))
        try:
            out.append(assert_agrees(scene, port, timeout=remaining))
        except AssertionError as e:
            raise AssertionError(f"{what}: exporter on port {port} after {VISIBLE}s: {e}") from e
    return out


def test_logins_root_login_linger_and_logouts(
    scene: Scene, container: Container, ports: list[int]
) -> None:
    agree_within(scene, ports, "start")
    user = scene.add_user("rl")
    login = scene.pam_session(user)
    agree_within(scene, ports, "a login")
    desktop = scene.pam_session(user, session_type="x11", session_class="user", seat="seat0")
    agree_within(scene, ports, "a graphical login on seat0")
    root = scene.pam_session("root")
    exps = agree_within(scene, ports, "root's login")
    # The classes this release gives root's session and the service managers' sessions are
    # exported as logind says (252: user; 257: manager-early; 262: background-light).
    root_class = scene.truth.session(root).session_class
    for exp in exps:
        classes = {dict(labels).get("class") for labels, v in exp.series("logind_sessions").items()
                   if v}
        assert root_class in classes

    lingerer = scene.add_user("lg")
    scene.enable_linger(lingerer)
    wait_until(lambda: scene.truth.user(lingerer).file_state == "lingering" or None,
               timeout=10, what="the lingering user's file")
    agree_within(scene, ports, "lingering")

    for session in (login, desktop, root):
        scene.stop_scope(session)
        scene.wait_session_gone(session)
        agree_within(scene, ports, f"logout of {session}")
    scene.disable_linger(lingerer)


def test_a_machine_that_lives_two_seconds_is_counted(scene: Scene, ports: list[int]) -> None:
    before = [scrape(port) for port in ports]
    name = f"{scene.add_user('m')}-short"
    scene.register_machine(name, "container")
    exps = agree_within(scene, ports, "a machine registered")
    for exp in exps:
        assert exp.value("logind_machine_info", machine=name, **{"class": "container"}) == 1
    time.sleep(2)
    scene.terminate_machine(name)
    wait_until(lambda: all(m.name != name for m in scene.truth.machines()) or None,
               timeout=10, what="the machine gone")
    exps = agree_within(scene, ports, "a machine terminated")
    for b, exp in zip(before, exps, strict=True):
        for total in ("logind_machine_starts_total", "logind_machine_stops_total"):
            assert exp.value(total, **{"class": "container"}) == b.value(
                total, **{"class": "container"}) + 1, total
        assert exp.value("logind_machines", **{"class": "container"}) == b.value(
            "logind_machines", **{"class": "container"})
