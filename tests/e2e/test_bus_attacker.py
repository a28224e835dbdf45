"""An unprivileged local user against the exporter's bus connection (issue 16, "Trust boundary").

dbus-daemon's default system policy lets any user send a signal addressed to another
connection's unique name, and such a unicast signal bypasses match rules. Here the exporter runs
as the shipped unit's system user (login-exporter, from deploy/systemd/login-attacked.sysusers)
with default flags and no resync, and a user with a real PAM session runs tests/e2e/attacker.py
inside the container: forged logind signals, malformed bodies, an oversized signal, floods, a
method call and unrequested replies, each addressed to the exporter (the forgeries once as
broadcasts too).

After each attack, for a few seconds: /metrics says what busctl says, ``logind_dbus_up`` and
``logind_up`` stay 1, the connection was never lost (``logind_exporter_errors_total{kind="dbus"}``
unchanged), the process is the same one (MainPID, ``process_start_time_seconds``), and every
message the bus delivered was counted in ``logind_exporter_bus_messages_dropped_total{reason}``.
While the attacker floods, the session's own user's SetIdleHint reaches /metrics within 1 s.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from tests.e2e.bus_truth import Answers, BusTruth, as_user, bus_differences, session_path
from tests.e2e.container import PROJECT, Container
from tests.e2e.scenario import (
    ATTACKED_EXPORTER_PORT,
    EXPORTER_USER,
    Exposition,
    Scene,
    Service,
    exporter_service,
    exporter_user,
    scrape,
)

pytestmark = pytest.mark.e2e

PORT = ATTACKED_EXPORTER_PORT
DROPPED = "logind_exporter_bus_messages_dropped_total"
REASONS = ("sender", "unexpected", "size", "signature", "property")
HOLD = 3.0  # seconds the exporter must stay right after an attack
SEAT0 = "/org/freedesktop/login1/seat/seat0"

Report = dict[str, Any]


# -- the exporter under attack, its victim and its attacker ------------------------------------

@pytest.fixture(scope="module")
def truth(container: Container) -> BusTruth:
    return BusTruth(container)


@pytest.fixture(scope="module")
def target(container: Container) -> Iterator[Service]:
    """The exporter as the packaged unit runs it: its own system user, default flags (the
    suite's 10 ms debounce put back to the default), no resync behind the test's back."""
    user = exporter_user(container)
    svc = exporter_service(container, PORT, "--refresh.debounce=50ms",
                           "--refresh.resync-interval=0", user=user)
    svc.start()
    try:
        svc.wait_answering(PORT)
        yield svc
    finally:
        svc.stop()


@dataclass(frozen=True)
class Desk:
    """The victim: a graphical session on seat0 and its own user."""

    user: str
    sid: str
    path: str


@pytest.fixture(scope="module")
def desk(scene: Scene) -> Iterator[Desk]:
    user = scene.add_user("victim")
    sid = scene.pam_session(user, session_type="x11", session_class="user", seat="seat0")
    try:
        yield Desk(user, sid, session_path(scene.c, sid))
    finally:
        scene.c.run(["systemctl", "stop", f"session-{sid}.scope"], check=False)
        scene.wait_session_gone(sid)


@pytest.fixture(scope="module")
def attacker(scene: Scene) -> Iterator[str]:
    """An unprivileged user with a real PAM session of its own (no seat)."""
    user = scene.add_user("evil")
    sid = scene.pam_session(user)
    try:
        yield user
    finally:
        scene.c.run(["systemctl", "stop", f"session-{sid}.scope"], check=False)


def _agrees(truth: BusTruth) -> bool:
    try:
        want = Answers.collect(truth)
        return not bus_differences(want, scrape(PORT))
    except requests.RequestException:
        return False


@pytest.fixture
def attacked(container: Container, target: Service, truth: BusTruth) -> Service:
    """The attacked exporter as a test starts: running, connected and agreeing with busctl.

    One that an earlier test left dead, stuck or wrong (the exporter without the issue's fix) is
    killed and started again, so that each test fails for its own attack only.
    """
    if not (target.is_active() and _agrees(truth)):
        container.run(["systemctl", "kill", "--signal=SIGKILL", target.unit], check=False)
        target.stop()
        target.start()
        target.wait_answering(PORT)
    deadline = time.monotonic() + 5
    while not _agrees(truth):
        assert time.monotonic() < deadline, "the attacked exporter disagrees with busctl"
        time.sleep(0.1)
    return target


def attack(c: Container, user: str, pid: int, name: str, *args: str,
           timeout: float = 60.0) -> Report:
    """Run attacker.py as ``user`` (runuser: that uid, the default system bus address) against
    the connection of process ``pid``; return its report."""
    r = c.run(["runuser", "-u", user, "--", "python3", f"{PROJECT}/tests/e2e/attacker.py",
               "--pid", str(pid), name, *args], timeout=timeout)
    report: Report = json.loads(r.stdout.splitlines()[-1])
    return report


# -- what must hold after an attack ------------------------------------------------------------

@dataclass(frozen=True)
class Before:
    """The exporter and busctl before an attack."""

    pid: int
    start: float
    dbus_errors: float
    dropped: dict[str, float]
    want: Answers

    @classmethod
    def take(cls, svc: Service, truth: BusTruth) -> Before:
        want = Answers.collect(truth)
        exp = scrape(PORT)
        assert not bus_differences(want, exp), bus_differences(want, exp)
        return cls(pid=svc.main_pid(), start=exp.value("process_start_time_seconds"),
                   dbus_errors=exp.get("logind_exporter_errors_total", kind="dbus") or 0.0,
                   dropped={r: exp.get(DROPPED, reason=r) or 0.0 for r in REASONS}, want=want)


def problems(before: Before, exp: Exposition, want: Answers | None = None) -> list[str]:
    """Every way one scrape shows harm: values unlike busctl's, logind or its bus seen gone,
    the connection lost, another process."""
    out = bus_differences(want or before.want, exp)
    if exp.get("logind_up") != 1.0:
        out.append(f"logind_up = {exp.get('logind_up')}, want 1")
    errors = exp.get("logind_exporter_errors_total", kind="dbus")
    if errors != before.dbus_errors:
        out.append(f'logind_exporter_errors_total{{kind="dbus"}} = {errors}, was '
                   f"{before.dbus_errors}: the connection was lost")
    if exp.get("process_start_time_seconds") != before.start:
        out.append("process_start_time_seconds changed: another process")
    return out


def scrape_or_problem(svc: Service) -> tuple[Exposition | None, list[str]]:
    try:
        return scrape(PORT), []
    except requests.RequestException as e:
        return None, [f"/metrics does not answer ({e}); unit active: {svc.is_active()}"]


def dropped_growth(before: Before, exp: Exposition) -> dict[str, float | None]:
    return {r: None if exp.get(DROPPED, reason=r) is None
            else exp.value(DROPPED, reason=r) - before.dropped[r] for r in REASONS}


def assert_unharmed(svc: Service, before: Before, report: Report, *,
                    dropped: Mapping[tuple[str, ...], int], seconds: float = HOLD,
                    interval: float = 0.2, want: Answers | None = None) -> Exposition:
    """For ``seconds`` after the attack, scrape every ``interval``: no harm (see problems());
    then the same process, and the dropped counter grew by at least the given number of
    messages, summed over each tuple of reasons."""
    started = time.monotonic()
    while True:
        exp, trouble = scrape_or_problem(svc)
        if exp is not None:
            trouble = problems(before, exp, want)
        if trouble:
            raise AssertionError(
                f"{time.monotonic() - started:.2f} s after the attack ({report}):\n  "
                + "\n  ".join(trouble) + f"\n--- journal ---\n{svc.journal(15)}")
        if time.monotonic() - started >= seconds:
            break
        time.sleep(interval)
    assert svc.main_pid() == before.pid, "the exporter's process changed"
    assert exp is not None
    growth = dropped_growth(before, exp)
    for reasons, least in dropped.items():
        missing = [r for r in reasons if growth[r] is None]
        assert not missing, f"{DROPPED} has no series for reason {missing}"
        got = sum(growth[r] or 0.0 for r in reasons)
        assert got >= least, (f"{DROPPED}{{reason in {reasons}}} grew by {got}, want at least "
                              f"{least} (the bus delivered them: {report})")
    return exp


def wait_dropped(before: Before, reasons: tuple[str, ...], least: int,
                 timeout: float) -> None:
    """Wait until the dropped counter has grown by ``least`` over ``reasons`` (a flood is
    counted as it is read)."""
    deadline = time.monotonic() + timeout
    while True:
        growth = dropped_growth(before, scrape(PORT))
        got = sum(growth[r] or 0.0 for r in reasons)
        if got >= least:
            return
        assert time.monotonic() < deadline, (
            f"{DROPPED}{{reason in {reasons}}} grew by {got} in {timeout} s, want {least}")
        time.sleep(0.1)


def delivered(report: Report) -> int:
    """The unicast messages the bus let through; the attack means nothing if it refused them."""
    n = int(report["delivered"])
    assert n > 0, f"the bus delivered none of the attack: {report}"
    return n


# -- the tests ---------------------------------------------------------------------------------

def test_runs_as_the_units_user_with_every_drop_reason_at_zero(
        container: Container, attacked: Service) -> None:
    pid = attacked.main_pid()
    user = container.run(["ps", "-o", "user=", "-p", str(pid)]).stdout.strip()
    assert user == EXPORTER_USER
    exp = scrape(PORT)
    assert exp.get("logind_dbus_up") == 1.0
    assert exp.get("logind_exporter_errors_total", kind="dbus") == 0.0
    reasons = {dict(labels).get("reason"): v for labels, v in exp.series(DROPPED).items()}
    assert reasons == dict.fromkeys(REASONS, 0.0), f"{DROPPED}: {reasons}"


def test_forged_properties_are_dropped(container: Container, truth: BusTruth, desk: Desk,
                                       attacker: str, attacked: Service) -> None:
    # The opposite of logind's Manager IdleHint and PreparingForShutdown, a ScheduledShutdown,
    # the desk's IdleHint and LockedHint, seat0's IdleHint: broadcast (the bus routes them to
    # nobody: the exporter's match rule names logind), then addressed to the attacked.
    before = Before.take(attacked, truth)
    report = attack(container, attacker, before.pid, "forge-values", "--session", desk.path,
                    "--seat", SEAT0, "--broadcast")
    assert_unharmed(attacked, before, report, dropped={("sender",): delivered(report)})


def test_forged_removals_hide_no_real_lock_or_idle_seat(
        container: Container, truth: BusTruth, desk: Desk, attacker: str,
        attacked: Service) -> None:
    as_user(container, desk.user, desk.path, "SetLockedHint", True)
    as_user(container, desk.user, desk.path, "SetIdleHint", True)
    try:
        deadline = time.monotonic() + 1
        while not _agrees(truth):  # the real lock and idleness shown first
            assert time.monotonic() < deadline, "the real hints did not reach /metrics"
            time.sleep(0.05)
        before = Before.take(attacked, truth)
        assert sum(before.want.locked.values()) >= 1, "busctl shows no locked session"
        report = attack(container, attacker, before.pid, "forge-removed", "--session",
                        desk.path, "--session-id", desk.sid, "--seat", SEAT0, "--broadcast")
        assert_unharmed(attacked, before, report, dropped={("sender",): delivered(report)})
    finally:
        as_user(container, desk.user, desk.path, "SetIdleHint", False)
        as_user(container, desk.user, desk.path, "SetLockedHint", False)


def test_forged_name_owner_change_is_dropped(container: Container, truth: BusTruth,
                                             attacker: str, attacked: Service) -> None:
    before = Before.take(attacked, truth)
    report = attack(container, attacker, before.pid, "forge-owner", "--broadcast")
    assert_unharmed(attacked, before, report, dropped={("sender",): delivered(report)})


def test_repeated_prepare_signals_are_dropped(container: Container, truth: BusTruth,
                                              attacker: str, attacked: Service) -> None:
    # PrepareForShutdown(true) and PrepareForSleep(true) every 50 ms for 2 s; /metrics is
    # scraped throughout and must never show either.
    before = Before.take(attacked, truth)
    wrong: list[str] = []
    scrapes = 0
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(attack, container, attacker, before.pid, "prepare",
                              "--seconds", "2", "--interval", "0.05")
        while not running.done():
            exp, trouble = scrape_or_problem(attacked)
            scrapes += 1
            if exp is not None:
                trouble = problems(before, exp)
            wrong.extend(f"scrape {scrapes}: {t}" for t in trouble)
            time.sleep(0.1)
        report = running.result()
    assert not wrong, f"{len(wrong)} problems in {scrapes} scrapes during the attack " \
                      f"({report}):\n  " + "\n  ".join(wrong[:20])
    assert_unharmed(attacked, before, report, dropped={("sender",): delivered(report)})


def test_malformed_bodies_are_dropped(container: Container, truth: BusTruth, desk: Desk,
                                      attacker: str, attacked: Service) -> None:
    # PropertiesChanged with signature "s", PrepareForShutdown with no argument,
    # NameOwnerChanged and SessionNew with one, IdleSinceHint and LockedHint as strings.
    # From the attacker they fail the sender check too: counted under any of those reasons.
    before = Before.take(attacked, truth)
    report = attack(container, attacker, before.pid, "malformed", "--session", desk.path)
    assert_unharmed(attacked, before, report,
                    dropped={("sender", "signature", "property"): delivered(report)})


def test_oversized_signal_is_skipped_without_losing_the_connection(
        container: Container, truth: BusTruth, desk: Desk, attacker: str,
        attacked: Service) -> None:
    before = Before.take(attacked, truth)
    report = attack(container, attacker, before.pid, "oversized", "--session", desk.path,
                    "--mib", "17")
    # Scraped often: logind_dbus_up must not even flap. The sender is judged first: a message
    # from someone else counts as "sender" whatever its size ("size" is logind's own).
    assert_unharmed(attacked, before, report, dropped={("sender", "size"): delivered(report)},
                    interval=0.05)


def test_method_call_and_unrequested_replies(container: Container, truth: BusTruth,
                                             attacker: str, attacked: Service) -> None:
    # The system bus refuses all three from an unprivileged user (method calls are denied by
    # default, replies must be requested); whatever it lets through is counted "unexpected".
    before = Before.take(attacked, truth)
    report = attack(container, attacker, before.pid, "calls")
    print(f"\nbus on {container.release}: {report['refused']}, answers {report['answers']}")
    assert report["answers"].get("method call") != "method_return", report
    assert_unharmed(attacked, before, report,
                    dropped={("unexpected",): int(report["delivered"])})


def _owner_sets_idle_during(container: Container, truth: BusTruth, desk: Desk,
                            attacked: Service, flood: Callable[[int], Report],
                            reasons: tuple[str, ...]) -> None:
    """``flood`` (given the exporter's pid) returns once the bus has queued everything for the
    exporter; the desk's own user then sets its idle hint, and /metrics must show it within
    1 s: the exporter cannot have spent its time on the flood."""
    before = Before.take(attacked, truth)
    try:
        report = flood(before.pid)
        for idle in (True, False):
            as_user(container, desk.user, desk.path, "SetIdleHint", idle)
            done = time.monotonic()
            want = Answers.collect(truth)
            while True:
                exp, trouble = scrape_or_problem(attacked)
                if exp is not None:
                    trouble = problems(before, exp, want)
                if not trouble:
                    break
                late = time.monotonic() - done
                if late >= 1.0:
                    raise AssertionError(
                        f"SetIdleHint({idle}) by the session's user not on /metrics {late:.2f}"
                        f" s later, during the flood ({report}):\n  " + "\n  ".join(trouble)
                        + f"\n--- journal ---\n{attacked.journal(15)}")
                time.sleep(0.02)
    finally:
        as_user(container, desk.user, desk.path, "SetIdleHint", False)
    wait_dropped(before, reasons, delivered(report), timeout=10)
    assert_unharmed(attacked, before, report, dropped={reasons: delivered(report)},
                    seconds=1.0, want=Answers.collect(truth))


def test_big_bodies_do_not_delay_the_owners_idle_hint(
        container: Container, truth: BusTruth, desk: Desk, attacker: str,
        attacked: Service) -> None:
    # Six 15 MiB signals whose bodies are arrays of 4-byte elements (millions of objects if
    # parsed), under the 16 MiB bound: dropped by sender (or signature) without the delay.
    def flood(pid: int) -> Report:
        return attack(container, attacker, pid, "big-bodies", "--session", desk.path,
                      "--count", "6", "--mib", "15")

    _owner_sets_idle_during(container, truth, desk, attacked, flood, ("sender", "signature"))


def test_session_new_storm_does_not_delay_the_owners_idle_hint(
        container: Container, truth: BusTruth, desk: Desk, attacker: str,
        attacked: Service) -> None:
    # 30,000 SessionNew naming sessions that do not exist: no call queued for any of them.
    def flood(pid: int) -> Report:
        return attack(container, attacker, pid, "storm", "--count", "30000")

    _owner_sets_idle_during(container, truth, desk, attacked, flood, ("sender",))
