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
    port's first scrape that agrees with them in everything.

    ``since`` is time.monotonic() when the step ended. Returns one Agreement per port; raises
    AssertionError when a port first agreed more than ``within`` seconds after ``since``, or not
    at all by GIVE_UP seconds after it (with the last scrape's differences).
    """
    out = []
    with Scrapes(ports) as scrapes:
        login, answers = LoginAnswers.collect(scene), Answers.collect(bus)
        for port in ports:
            seen, last = 0, ["no scrape answered"]
            while True:
                batch = scrapes.taken(port, seen)
                seen += len(batch)
                found = None
                for when, text in batch:
                    exp = Exposition.parse(text)
                    last = differences(login, answers, exp)
                    if not last:
                        found = Agreement(port, when - since, exp)
                        break
                if found is not None:
                    out.append(found)
                    break
                if time.monotonic() - since > GIVE_UP:
                    raise AssertionError(
                        f"port {port} disagrees with loginctl/busctl {GIVE_UP:.0f} s after the "
                        "step:\n  " + "\n  ".join(last))
                time.sleep(0.05)
    late = [a for a in out if a.seconds > within]
    if late:
        raise AssertionError("; ".join(f"port {a.port} agreed only {a.seconds:.3f} s after the "
                                       f"step (allowed {within} s)" for a in late))
    return out
