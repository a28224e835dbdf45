"""Seats beyond seat0 in a real logind, on every release the suite boots (issue 17, item 1).

seat1 and seat2 are given to the booted logind as notes/multi-seat.md describes (a tty device in
/sys tagged master-of-seat in udev's database files, then a logind restart: Scene.add_seats).
On them: a greeter and graphical logins (x11, wayland) opened through PAM as a display manager
opens them, a second user on seat1 and the active session switched back and forth, idle and
lock hints set by each session's own user from inside it, logouts, and seat2 taken away and
given back across logind restarts (its session left without a seat).

After every step each exporter reading the release (inside; on a newer release also this
machine's, libsystemd 252) must agree within VISIBLE seconds of the step's end with loginctl
(every state-file family: logind_seat_*, logind_sessions{seat,...}, logind_session_info) and with
busctl (idle and locked sessions by seat, each seat's IdleHint and IdleSinceHint); a seat logind
no longer has may stay exported only at 0. The exporters run with --refresh.resync-interval=0
and nothing signals or scrapes them to help.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator

import pytest

from tests.e2e.agreement import first_agreements
from tests.e2e.bus_truth import BusTruth
from tests.e2e.checks import LoginAnswers, gone_seat_differences, login_differences
from tests.e2e.conftest import Ports, own_container_fixtures
from tests.e2e.container import Container
from tests.e2e.scenario import (
    PORT_BASE,
    USER_STATES,
    Exposition,
    Scene,
    SeatTruth,
    Service,
    SessionTruth,
)
from tests.grafana import support as grafana
from tests.support.prometheus import JOB, Prometheus

pytestmark = pytest.mark.e2e

# Seats given and taken and logind restarted: a container of this module's own.
# Its ports apart from the shared container's (one network).
PORTS = Ports(exporter=PORT_BASE + 20, prometheus=PORT_BASE + 21, host_exporter=PORT_BASE + 22)
container, scene, exporter, prometheus, host_exporter = own_container_fixtures(PORTS)

VISIBLE = 1.0
SEATS = ("seat1", "seat2")


@pytest.fixture
def ports(request: pytest.FixtureRequest, container: Container, exporter: Service) -> list[int]:
    """The exporters reading this release: inside, and this machine's on a newer release."""
    if container.lower is None:
        return [PORTS.exporter]
    return [PORTS.exporter, request.getfixturevalue("host_exporter")]


@pytest.fixture
def seats(scene: Scene) -> Iterator[tuple[str, ...]]:
    """seat1 and seat2 given to logind; whatever of them is left is taken back afterwards."""
    try:
        yield SEATS
    finally:
        left = [s for s in SEATS if s in scene.added_seats()]
        if left:
            scene.remove_seats(*left)


class Steps:
    """Each step's check: every exporter agrees with loginctl and busctl within VISIBLE
    seconds of the step's end (agreement.py: the scrapes are taken while the truth is
    collected); keeps how long each took."""

    def __init__(self, scene: Scene, ports: list[int], release: str) -> None:
        self.scene, self.ports, self.release = scene, ports, release
        self.bus = BusTruth(scene.c)
        self.took: list[tuple[str, float]] = []

    def agree(self, what: str, since: float | None = None) -> list[Exposition]:
        """Require every exporter to have agreed within VISIBLE seconds of ``since``
        (time.monotonic() when the step ended; default now). Returns each port's first agreeing
        scrape; raises AssertionError naming the step, the port and the differences."""
        since = time.monotonic() if since is None else since
        try:
            agreed = first_agreements(self.scene, self.bus, self.ports, since, VISIBLE)
        except AssertionError as e:
            raise AssertionError(f"{self.release}: {what}: {e}") from e
        self.took.append((what, max(a.seconds for a in agreed)))
        return [a.exposition for a in agreed]

    def summary(self) -> str:
        """One line per step: how long after its end the slowest exporter agreed."""
        return "\n".join(f"  {t:5.2f}s  {what}" for what, t in self.took)


def test_seats_sessions_switching_hints_logout_and_a_seat_gone_and_back(
    scene: Scene, container: Container, ports: list[int], seats: tuple[str, ...],
    metrics: None,
) -> None:
    steps = Steps(scene, ports, container.release)
    steps.agree("start")
    seat1, seat2 = seats

    steps.agree("seat1 and seat2 given to logind", scene.add_seats(seat1, seat2))
    assert {seat1, seat2} <= set(scene.seat_names())

    greeter, alice, bob, carol = (scene.add_user(p) for p in ("sg", "sa", "sb", "sc"))
    greet = scene.graphical_session(greeter, seat1, "x11", "greeter")
    steps.agree("a greeter (x11) on seat1")
    desk_a = scene.graphical_session(alice, seat1, "x11", "user")
    steps.agree("alice logs in on seat1 (x11)")
    scene.stop_scope(greet)
    scene.wait_session_gone(greet)
    steps.agree("the greeter goes")
    desk_c = scene.graphical_session(carol, seat2, "wayland", "user")
    steps.agree("carol logs in on seat2 (wayland)")

    # A user switch on seat1: bob's login takes the front, then alice's comes back.
    desk_b = scene.graphical_session(bob, seat1, "wayland", "user")
    steps.agree("bob logs in on seat1 beside alice")
    t = scene.truth
    assert t.session(desk_b).active and not t.session(desk_a).active
    steps.agree("alice's session active again", scene.activate(desk_a))
    assert t.session(desk_a).active and not t.session(desk_b).active
    steps.agree("bob's session active again", scene.activate(desk_b))

    # Hints from inside each session, by its own user. carol is alone on seat2: the seat goes
    # idle with her, and its idle-since is hers.
    for exp in steps.agree("carol's session idle: seat2 idle", scene.set_idle_hint(desk_c, True)):
        assert exp.get("logind_seat_idle", seat=seat2) == 1
        assert exp.value("logind_seat_idle_since_seconds", seat=seat2) > time.time() - 60
        assert exp.get("logind_seat_idle", seat=seat1) == 0
    for exp in steps.agree("carol's session locked", scene.set_locked_hint(desk_c, True)):
        assert exp.value("logind_sessions_locked", seat=seat2, remote="false", type="wayland",
                         **{"class": "user"}) == 1
    steps.agree("alice's session idle (seat1 is not: bob is not idle)",
                scene.set_idle_hint(desk_a, True))
    for exp in steps.agree("bob's session idle: seat1 idle", scene.set_idle_hint(desk_b, True)):
        assert exp.get("logind_seat_idle", seat=seat1) == 1
    steps.agree("bob's session locked", scene.set_locked_hint(desk_b, True))
    steps.agree("bob back: seat1 not idle", scene.set_idle_hint(desk_b, False))
    steps.agree("bob unlocks", scene.set_locked_hint(desk_b, False))
    steps.agree("carol unlocks", scene.set_locked_hint(desk_c, False))

    scene.stop_scope(desk_b)
    scene.wait_session_gone(desk_b)
    steps.agree("bob logs out of seat1")

    # seat2 taken away across a logind restart: carol's session stays, with no seat; then
    # given back across another restart.
    exps = steps.agree("seat2 removed (logind restarted)", scene.remove_seats(seat2))
    assert seat2 not in scene.seat_names()
    assert t.session(desk_c).seat == ""
    for exp in exps:
        assert exp.get("logind_seat_present", seat=seat2) == 0
        assert exp.get("logind_seat_present", seat=seat1) == 1
    steps.agree("seat2 restored (logind restarted)", scene.add_seats(seat2))
    assert seat2 in scene.seat_names()
    steps.agree("a restarted logind with nothing changed", scene.restart_logind())

    for sid, who in ((desk_a, "alice"), (desk_c, "carol")):
        scene.stop_scope(sid)
        scene.wait_session_gone(sid)
        steps.agree(f"{who} logs out")
    steps.agree("seat1 and seat2 taken back", scene.remove_seats(seat1, seat2))
    print(f"\n{container.release}: seconds from each step's end to agreement\n"
          f"{steps.summary()}")


def test_the_checks_fail_while_a_gone_seat_is_still_shown() -> None:
    """The check the steps above rely on fails for a seat logind no longer has but the exporter
    still counts, and passes for one kept at 0."""
    kept = Exposition.parse('logind_seat_present{seat="seat0"} 1\n'
                            'logind_seat_present{seat="seat2"} 0\n'
                            'logind_seat_sessions{seat="seat2"} 0\n')
    assert gone_seat_differences(kept, {"seat0"}, ("logind_seat_present",
                                                   "logind_seat_sessions")) == []
    shown = Exposition.parse('logind_seat_present{seat="seat0"} 1\n'
                             'logind_seat_present{seat="seat2"} 1\n'
                             'logind_seat_sessions{seat="seat2"} 1\n')
    assert len(gone_seat_differences(shown, {"seat0"}, ("logind_seat_present",
                                                        "logind_seat_sessions"))) == 2


def test_the_checks_fail_when_a_given_seat_is_missing_or_wrong() -> None:
    """login_differences (what the steps compare each scrape with) flags a seat logind has but
    the exporter lacks, and a session counted on the wrong seat."""
    want = LoginAnswers(
        sessions=[SessionTruth("c1", 1000, "a", "seat1", False, "", "x11", "user", "active",
                               "login", True)],
        user_file_states=Counter({"active": 1}),
        seats=[SeatTruth("seat1", "c1", False, True, ("c1",))],
        machines=[])
    users = "".join(f'logind_users{{state="{s}"}} {int(s == "active")}\n' for s in USER_STATES)
    right = ('logind_up 1\n' + users +
             'logind_sessions{seat="seat1",remote="false",type="x11",class="user",'
             'state="active"} 1\n'
             'logind_session_info{session="c1",uid="1000",user="a",seat="seat1",type="x11",'
             'class="user",state="active",remote="false",remote_host="",service="login"} 1\n' +
             "".join(f'{name}{{seat="seat1"}} {v}\n' for name, v in (
                 ("logind_seat_present", 1), ("logind_seat_sessions", 1),
                 ("logind_seat_active_session", 1), ("logind_seat_can_graphical", 1),
                 ("logind_seat_can_tty", 0), ("logind_seat_can_multi_session", 1))))
    assert login_differences(want, Exposition.parse(right)) == []
    missing = "\n".join(line for line in right.splitlines() if "seat_present" not in line)
    assert login_differences(want, Exposition.parse(missing + "\n"))
    moved = right.replace('logind_sessions{seat="seat1"', 'logind_sessions{seat="seat2"')
    assert login_differences(want, Exposition.parse(moved))


# Dashboard panels that may rightly return nothing after the multi-seat run below, and why.
# (Every other panel must return finite data; the per-seat ones must name seat1 and seat2.)
LEGITIMATELY_EMPTY: dict[str, str] = {}


def test_dashboard_on_a_multi_seat_run(
    scene: Scene, container: Container, seats: tuple[str, ...], metrics: None,
    prometheus: Prometheus,
) -> None:
    """Issue 17, item 4: after a multi-seat run in the booted container, every panel query of
    grafana/login-exporter.json, evaluated by the real Prometheus that scraped the exporter,
    returns data, and the seat panels and tables show seat1 and seat2 with loginctl's figures."""
    seat1, seat2 = seats
    sel = f'job="{JOB}", instance="127.0.0.1:{PORTS.exporter}"'

    def total(expr: str) -> float:
        return prometheus.total(expr.replace("SEL", sel))

    def seen(what: str, expr: str, at_least: float) -> None:
        """Wait until Prometheus has scraped the step (so the next one is an increase)."""
        prometheus.wait(lambda: total(expr) >= at_least, 20, what)

    scene.add_seats(seat1, seat2)
    greeters = [scene.add_user("dg"), scene.add_user("dg")]
    alice, bob, carol = (scene.add_user(p) for p in ("da", "db", "dc"))
    # A display manager's day on each seat, each step scraped before the next, so that every
    # counter series exists before it increases and rates and quantiles have values.
    ends, stops = total("sum(logind_session_ends_total{SEL})"), total(
        "sum(logind_machine_stops_total{SEL})")
    greet = [scene.graphical_session(g, seat, "x11", "greeter")
             for g, seat in zip(greeters, seats, strict=True)]
    desk_a = scene.graphical_session(alice, seat1, "x11", "user")
    scene.stop_scope(greet[0])  # the greeter goes once the user is in
    scene.wait_session_gone(greet[0])
    scene.register_machine(f"{alice}-ct", "container")
    scene.terminate_machine(f"{alice}-ct")
    seen("a logout and a machine stop", "sum(logind_session_ends_total{SEL}) + "
         "sum(logind_machine_stops_total{SEL})", ends + stops + 2)
    desk_b = scene.graphical_session(bob, seat2, "wayland", "user")
    scene.stop_scope(greet[1])
    scene.wait_session_gone(greet[1])
    scene.register_machine(f"{bob}-ct", "container")
    scene.terminate_machine(f"{bob}-ct")
    seen("a second logout and machine stop", "sum(logind_session_ends_total{SEL}) + "
         "sum(logind_machine_stops_total{SEL})", ends + stops + 4)
    desk_c = scene.graphical_session(carol, seat1, "x11", "user")
    scene.activate(desk_a)  # carol's switched away from: alice in front again
    scene.set_idle_hint(desk_c, True)
    scene.set_locked_hint(desk_c, True)
    scene.set_idle_hint(desk_b, True)  # bob alone on seat2: the seat is idle
    machine = f"{carol}-ct"
    scene.register_machine(machine, "container")  # one running through the evaluation
    try:
        prometheus.wait(lambda: total(f'logind_seat_idle{{SEL, seat="{seat2}"}}') == 1
                        and total(f'logind_seat_sessions{{SEL, seat="{seat1}"}}') == 2
                        and total(f'logind_seat_active_session{{SEL, seat="{seat1}"}}') == 1
                        and total("logind_machine_info{SEL}") >= 1,
                        20, "the multi-seat run in Prometheus")
        seat_truth = {s.name: s for s in scene.truth.seats()}
        variables = {"job": JOB, "instance": f"127.0.0.1:{PORTS.exporter}", "__rate_interval": "1m",
                     "__interval": "1m", "__range": "5m"}
        targets = grafana.targets(grafana.load())
        assert len(targets) > 40

        def problem(target: grafana.Target) -> str | None:
            try:
                data = grafana.evaluate(prometheus, target, variables)
            except AssertionError as e:
                return f"does not evaluate: {e}"
            if not grafana.finite_values(data):
                return f"returns no data: {data['result']}"
            if "seat)" not in target.expr:
                return None
            by_seat = grafana.last_by(data, "seat")
            if not {seat1, seat2} <= set(by_seat):
                return f"shows seats {sorted(by_seat)}, not {seat1} and {seat2}"
            for name, want in SEAT_TABLE.items():
                if f"({name}{{" in target.expr:
                    for seat in (seat1, seat2):
                        if by_seat[seat] != want(seat_truth[seat]):
                            return (f"{seat}: {by_seat[seat]}, loginctl says "
                                    f"{want(seat_truth[seat])}")
            return None

        # Rates need two samples of each new series in their window: retry the stragglers.
        deadline = time.monotonic() + 15
        pending = [t for t in targets if t.panel not in LEGITIMATELY_EMPTY]
        while True:
            failures = {t: why for t in pending if (why := problem(t)) is not None}
            if not failures or time.monotonic() > deadline:
                break
            pending = list(failures)
            time.sleep(1)
        assert not failures, f"{len(failures)} of {len(targets)} panel queries:\n" + "\n".join(
            f"{t}\n    -> {why}" for t, why in failures.items())
        seat_panels = {t.panel for t in targets if "seat)" in t.expr}
        assert {"Seats", "Sessions by seat", "Idle seats"} <= seat_panels, seat_panels
    finally:
        scene.terminate_machine(machine)
        for sid in (desk_a, desk_b, desk_c):
            scene.stop_scope(sid)
            scene.wait_session_gone(sid)


# What loginctl says for each seat-table family (a seat's figure in the dashboard's tables).
SEAT_TABLE: dict[str, Callable[[SeatTruth], float]] = {
    "logind_seat_present": lambda s: 1.0,
    "logind_seat_active_session": lambda s: float(bool(s.active_session)),
    "logind_seat_can_graphical": lambda s: float(s.can_graphical),
    "logind_seat_can_tty": lambda s: float(s.can_tty),
    "logind_seat_sessions": lambda s: float(len(s.sessions)),
}
