"""How long after a change the exporter agreed with loginctl and busctl, measured without the
time the truth takes to collect.

Asking loginctl and busctl about every session takes a second or more on a busy machine, longer
than the deadline being tested. So the exporters are scraped back to back in a thread from the
moment the check starts, the truth is collected meanwhile, and then the scrapes are compared
with it in the order they were taken: the first that agrees in everything says when the
exporter showed the change.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import requests

from tests.e2e.bus_truth import Answers, BusTruth, bus_differences
from tests.e2e.checks import LoginAnswers, login_differences
from tests.e2e.scenario import Exposition, Scene

GIVE_UP = 5.0  # seconds after the step: past this a disagreement is reported as it stands


class Scrapes:
    """Scrapes every port back to back in a thread while open; keeps (time.monotonic(), text)."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self._taken: dict[int, list[tuple[float, str]]] = {port: [] for port in ports}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._session = requests.Session()

    def __enter__(self) -> Scrapes:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._session.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            for port in self.ports:
                try:
                    r = self._session.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
                    r.raise_for_status()
                except requests.RequestException:
                    continue  # a failed scrape is no answer; the checks then see none
                with self._lock:
                    self._taken[port].append((time.monotonic(), r.text))
            self._stop.wait(0.01)

    def taken(self, port: int, start: int = 0) -> list[tuple[float, str]]:
        """The scrapes of ``port`` from the ``start``-th on, oldest first."""
        with self._lock:
            return self._taken[port][start:]


@dataclass(frozen=True)
class Agreement:
    """When a port's exporter first agreed (seconds after the step) and that scrape."""

    port: int
    seconds: float
    exposition: Exposition


def differences(login: LoginAnswers, bus: Answers, exp: Exposition) -> list[str]:
    """Every way ``exp`` disagrees with loginctl's and busctl's answers ([] when none)."""
    return login_differences(login, exp) + bus_differences(bus, exp)


def first_agreements(scene: Scene, bus: BusTruth, ports: list[int], since: float,
                     within: float = 1.0) -> list[Agreement]:
    """Scrape ``ports`` from now on, collect loginctl's and busctl's answers, and find each
    port's first scrape that agrees with them in everything. When none does, the answers are
    collected again (logind may still have been finishing the step: a session it was closing)
    and all the scrapes compared with those, until GIVE_UP seconds after the step.

    ``since`` is time.monotonic() when the step ended. Returns one Agreement per port; raises
    AssertionError when a port first agreed more than ``within`` seconds after ``since``, or not
    at all by GIVE_UP seconds after it (with the last scrape's differences and the state files).
    """
    parsed: dict[tuple[int, float], Exposition] = {}
    found: dict[int, Agreement] = {}
    last: dict[int, list[str]] = {port: ["no scrape answered"] for port in ports}
    with Scrapes(ports) as scrapes:
        while True:
            login, answers = LoginAnswers.collect(scene), Answers.collect(bus)
            for port in ports:
                if port in found:
                    continue
                for when, text in scrapes.taken(port):
                    exp = parsed.get((port, when))
                    if exp is None:
                        exp = parsed[(port, when)] = Exposition.parse(text)
                    last[port] = differences(login, answers, exp)
                    if not last[port]:
                        found[port] = Agreement(port, when - since, exp)
                        break
            if len(found) == len(ports):
                break
            if time.monotonic() - since > GIVE_UP:
                port = next(p for p in ports if p not in found)
                raise AssertionError(
                    f"port {port} disagrees with loginctl/busctl {GIVE_UP:.0f} s after the "
                    "step:\n  " + "\n  ".join(last[port]) + "\nstate files now:\n"
                    + state_files(scene))
            time.sleep(0.1)
    late = [a for a in found.values() if a.seconds > within]
    if late:
        raise AssertionError("; ".join(f"port {a.port} agreed only {a.seconds:.3f} s after the "
                                       f"step (allowed {within} s)" for a in late))
    return [found[port] for port in ports]

def state_files(scene: Scene) -> str:
    """One line per session and seat state file inside (name, STATE/ACTIVE/SEAT/CLASS/
    SESSIONS lines): what sd-login reads, for a failure message."""
    return scene.c.sh(
        "cd /run/systemd && for f in sessions/* seats/*; do case $f in *.ref) continue;; esac; "
        "[ -f \"$f\" ] && echo \"$f: $(grep -E '^(STATE|ACTIVE|SEAT|CLASS|SESSIONS)=' \"$f\" "
        "| tr '\\n' ' ')\"; done; true", check=False)
