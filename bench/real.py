"""node_exporter `--collector.logind` vs ours on a real logind: `python3 -m bench.run --real`.

Boots this machine's own OS with the e2e harness (tests/e2e/container.py: systemd-nspawn on an
overlay of /, shared/notes/real-logind.md §2), opens 50 and then 200 real sessions with
`systemd-run -p PAMName=login` (tests/e2e/scenario.py), and runs both exporters inside the
container as transient units on 127.0.0.1 (the container shares the host's network). Each is
loaded with `wrk -t1 -c1 --latency` (one scraper, as Prometheus scrapes). The container is torn
down afterwards, whatever happened.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

from bench import exporter, latency
from bench.table import Row
from tests.e2e.container import Container, booted
from tests.e2e.scenario import Exposition, Scene, Service, unique
from tests.support import namespace

SESSIONS = (50, 200)
TARGET = 20.0
NODE = "node_exporter --collector.logind, p50 per scrape"
OURS = "ours, real logind, p50 per scrape"


def na_rows(reason: str) -> list[Row]:
    """n/a rows for both exporters at both session counts."""
    rows = []
    for n in SESSIONS:
        rows.append(Row(NODE, str(n), None, "ms", note=reason))
        rows.append(Row(OURS, str(n), None, "ms", target=f"≥ {TARGET:g}x faster", note=reason))
    return rows


def measure(exporter_reason: str | None, seconds: float = 5.0) -> list[Row]:
    """Rows for 50 and 200 real sessions (n/a rows with the reason when it cannot run)."""
    missing = [t for t in ("systemd-nspawn", "nsenter", "prometheus-node-exporter", "wrk")
               if shutil.which(t) is None]
    if missing:
        return na_rows(f"missing: {', '.join(missing)}")
    if os.geteuid() != 0:
        return na_rows("needs root")
    # The overlay is mounted in the bench's private mount namespace, never the host's.
    namespace.enter_private_namespace()
    _log("booting container")
    try:
        with booted() as container:
            return compare(container, exporter_reason, seconds)
    # ContainerError is a RuntimeError; wait_until() times out with an AssertionError.
    except (RuntimeError, AssertionError, OSError, subprocess.SubprocessError) as exc:
        return na_rows(f"{type(exc).__name__}: {str(exc)[:120]}")


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] real: {message}", file=sys.stderr, flush=True)


def compare(c: Container, exporter_reason: str | None, seconds: float) -> list[Row]:
    """Measure both exporters at each session count in a booted container. Returns the rows.

    Raises ContainerError or AssertionError when the container does not do what is asked.
    """
    scene = Scene(c)
    user = scene.add_user("bench")
    rows: list[Row] = []
    for n in SESSIONS:
        _log(f"opening {n} sessions")
        scene.fill_sessions(user, n)
        time.sleep(2)  # let logind finish writing users' and seats' state
        seen = scene.truth.session_count()
        node, _ = _load(c, "node-exporter", [
            "prometheus-node-exporter", "--collector.disable-defaults", "--collector.logind",
        ], seconds)
        rows.append(Row(NODE, str(n), node.p50 * 1e3, "ms",
                        note=f"p99 {node.p99 * 1e3:.1f} ms, {node.rps:,.0f} scrapes/s, "
                             f"{seen} sessions"))
        if exporter_reason is not None:
            rows.append(Row(OURS, str(n), None, "ms", target=f"≥ {TARGET:g}x faster",
                            note=exporter_reason))
            continue
        ours, body = _load(c, "login-exporter", [c.python, "-m", "login_exporter"], seconds)
        counted = sum(body.series("logind_sessions").values())
        speedup = node.p50 / ours.p50
        rows.append(Row(OURS, str(n), ours.p50 * 1e3, "ms", target=f"≥ {TARGET:g}x faster",
                        met=speedup >= TARGET,
                        note=f"{speedup:.0f}x node_exporter; p99 {ours.p99 * 1e3:.2f} ms, "
                             f"{ours.rps:,.0f} scrapes/s, {counted:.0f} sessions"))
    return rows


def _load(c: Container, name: str, argv: list[str],
          seconds: float) -> tuple[latency.Latency, Exposition]:
    """Run ``argv`` as a unit inside, wrk it for ``seconds``, stop it. Returns the latency and
    the first scrape."""
    port = exporter.free_port()
    service = Service(c, unique(f"bench-{name}-"),
                      [*argv, f"--web.listen-address=127.0.0.1:{port}"])
    service.start()
    try:
        body = Exposition.parse(service.wait_answering(port, "/metrics", timeout=30))
        _log(f"{name}: wrk {seconds:g} s")
        return latency.measure("127.0.0.1", port, "/metrics", seconds, clients=1), body
    finally:
        service.stop()
