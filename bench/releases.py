"""Change -> visible on /metrics on a booted newer systemd: `python3 -m bench.releases [REL...]`.

Boots each release (default: sid, the newest; also trixie or host) with the e2e harness
(tests/e2e/container.py, root filesystems cached by .ci/rootfs), opens N = 100 real PAM sessions,
starts the exporter inside with that release's libsystemd (default flags but
--refresh.resync-interval=0), then times TRIALS new sessions and TRIALS new machines each: from
the moment logind or machined created the object (REALTIME= in its state file, a CLOCK_REALTIME
stamp taken before the file is written, so the figure errs high) to the first scrape from this
machine that shows it. The scraper polls /metrics over one keep-alive connection every 0.5 ms.
Prints one line per figure with the p50, p99 and the target (p99 <= 10 ms, as on 252).
"""

from __future__ import annotations

import http.client
import re
import sys
import time
from collections.abc import Callable

from bench import latency
from tests.e2e.container import Container, rootfs
from tests.e2e.scenario import Scene, exporter_service, scrape, wait_until

N = 100
TRIALS = 30
PORT = 19850
TARGET_MS = 10.0


def _count(text: str, pattern: re.Pattern[str]) -> float:
    return sum(float(m.group(1)) for m in pattern.finditer(text))


SESSIONS = re.compile(r"^logind_sessions\{[^}]*\} (\S+)$", re.M)
MACHINES = re.compile(r"^logind_machines\{[^}]*\} (\S+)$", re.M)


class Poller:
    """Scrapes /metrics over one keep-alive connection."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)

    def text(self) -> str:
        self.conn.request("GET", "/metrics")
        return self.conn.getresponse().read().decode()

    def until(self, pattern: re.Pattern[str], want: float, timeout: float = 5.0) -> float:
        """Poll until the summed samples reach ``want``; return the wall-clock time seen."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _count(self.text(), pattern) >= want:
                return time.time()
            time.sleep(0.0005)
        raise RuntimeError(f"not visible within {timeout}s")


def _created(c: Container, path: str) -> float:
    """REALTIME= of a state file (µs since the epoch), in seconds."""
    text = c.run(["cat", path]).stdout
    match = re.search(r"^REALTIME=(\d+)$", text, re.M)
    if match is None:
        raise RuntimeError(f"{path} has no REALTIME=")
    return int(match.group(1)) / 1e6


def _trials(what: str, make: Callable[[int], tuple[str, re.Pattern[str], float]],
            c: Container, poller: Poller) -> list[float]:
    timings = []
    for k in range(TRIALS):
        path, pattern, want = make(k)
        seen = poller.until(pattern, want)
        timings.append(seen - _created(c, path))
        time.sleep(0.1)  # each trial an isolated change, as on 252
    return timings


def measure(release: str) -> list[str]:
    """Return the result lines for one release."""
    c = Container(lower=None if release == "host" else rootfs(release))
    c.boot()
    try:
        version = c.systemd_version()
        scene = Scene(c)
        user = scene.add_user("bench")
        for _ in range(N):
            c.run(["systemd-run", "--quiet", "-p", "PAMName=login", "-p", f"User={user}",
                   "sleep", "3600"])
        wait_until(lambda: len(scene.truth.sessions()) >= N or None, timeout=120,
                   what=f"{N} sessions")
        svc = exporter_service(c, PORT, "--refresh.resync-interval=0")
        svc.start()
        wait_until(lambda: scrape(PORT), timeout=20, what="the exporter")
        poller = Poller(PORT)
        time.sleep(0.5)

        def new_session(k: int) -> tuple[str, re.Pattern[str], float]:
            want = _count(poller.text(), SESSIONS) + 1
            sid = scene.pam_session(user)
            return f"/run/systemd/sessions/{sid}", SESSIONS, want

        def new_machine(k: int) -> tuple[str, re.Pattern[str], float]:
            want = _count(poller.text(), MACHINES) + 1
            name = f"bench-{k}"
            scene.register_machine(name, "container")
            return f"/run/systemd/machines/{name}", MACHINES, want

        lines = [f"{release}: systemd {version}, N = {len(scene.truth.sessions())} sessions"]
        for what, make in (("new session", new_session), ("new machine", new_machine)):
            timings = sorted(_trials(what, make, c, poller))
            p50, p99 = (latency.percentile(timings, q) * 1e3 for q in (50, 99))
            met = "met" if p99 <= TARGET_MS else "NOT met"
            lines.append(f"  change -> visible on /metrics, {what}: p50 {p50:.1f} ms, "
                         f"p99 {p99:.1f} ms ({len(timings)} trials; target p99 <= "
                         f"{TARGET_MS:g} ms: {met})")
        svc.stop()
        return lines
    finally:
        c.close()


def main(argv: list[str]) -> int:
    """Measure each release named (default: sid) and print the figures."""
    for release in argv or ["sid"]:
        for line in measure(release):
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
