"""A fleet on this machine, measured: ``python3 -m bench.fleet --hosts 100 --hosts 1000``.

A handful of real exporter processes, each on a real state tree of its own (a kiosk in use, one
on the login screen, an empty desk, the golden systemd 252 tree), are scraped under N target
identities (file_sd groups: one exporter's address, the identity's own instance, site, pool and
kiosk labels) by a Prometheus agent that remote-writes to a central Prometheus loading the fleet
rules: deploy/prometheus/fleet's own files, addresses and intervals replaced
(tests/support/fleet.py). For each N it waits until every identity's up has reached the central
store, lets the chain run ``--window`` seconds and prints, per host: series at the agent and at
the central store, samples/s and remote-write bytes/s (compressed, what the agent sent), the
central Prometheus's RSS and its fleet-rule evaluation time per 1,000 hosts, and CPU.

Ports: 19700-19799 (the e2e suite has 19800-19899, the other benches 19900-19999). Needs root
(a private mount namespace for the trees; the host's /run/systemd is never touched).
``--quick``: 30 hosts, a 1 s interval, a 5 s window (tests/bench/test_bench_fleet.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import requests

from bench.exporter import PortRange
from bench.statetree import private_run_systemd
from tests.support import fleet, proc
from tests.support.exposition import total
from tests.support.golden import REAL_252
from tests.support.logind_state import LogindState

PORT_FIRST, PORT_LAST = 19700, 19799
POOLS = (("entrance", "true"), ("reading-room", "true"), ("hall", "true"), ("staff", "false"))
HOSTS_PER_SITE = 250
# The hosts' own series at the central store (the per-seat recorded ones keep job too).
RAW = 'count({job="login-exporter", __name__!~".+:.+"})'


# The fleet bench's range, apart from the exporter benches' (many targets and Prometheus ports).
free_port = PortRange(PORT_FIRST, PORT_LAST).free


def trees(base: Path) -> dict[str, Path]:
    """Write the four state trees under ``base``; returns name -> directory."""
    golden = LogindState(base / "real-252")
    golden.copy_tree(REAL_252)
    made = {
        "occupied": fleet.occupied(LogindState(base / "occupied")),
        "greeter": fleet.on_greeter(LogindState(base / "greeter")),
        "empty": fleet.empty_seat(LogindState(base / "empty")),
        "real-252": golden,
    }
    return {name: state.root for name, state in made.items()}


def identities(n: int, addresses: list[str]) -> list[fleet.Host]:
    """N hosts over sites of 250 in four pools (three of kiosks), round robin on the exporters."""
    hosts = []
    for i in range(n):
        site, pool_index = i // HOSTS_PER_SITE, i % len(POOLS)
        pool, kiosk = POOLS[pool_index]
        labels = {"site": f"site-{site:03d}", "pool": pool, "kiosk": kiosk}
        hosts.append(fleet.Host(f"host-{i:06d}", addresses[i % len(addresses)], labels))
    return hosts


@dataclass
class Result:
    """Figures of one run; ``per host`` ones divided by hosts, ``per 1k`` by hosts / 1,000."""

    hosts: int
    interval_s: float
    window_s: float
    agent_series: int
    central_raw_series: int
    central_recorded_series: int
    central_head_series: int
    samples_per_s: float
    bytes_per_s: float
    central_rss_mib: float
    central_rss_idle_mib: float
    rule_eval_s: float
    agent_cpu: float
    central_cpu: float
    exporters_cpu: float
    not_scraped: int

    def per_host(self) -> dict[str, float]:
        """The per-host and per-1,000-host figures of the README's table."""
        n, k = self.hosts, self.hosts / 1000
        return {
            "series at agent / host": self.agent_series / n,
            "series at central / host": self.central_raw_series / n,
            "recorded series at central / host": self.central_recorded_series / n,
            "samples/s / host": self.samples_per_s / n,
            "remote-write bytes/s / host": self.bytes_per_s / n,
            "central RSS MiB / 1k hosts": (self.central_rss_mib - self.central_rss_idle_mib) / k,
            "rule evaluation ms / 1k hosts": self.rule_eval_s * 1000 / k,
        }


def _metrics(url: str) -> str:
    return requests.get(f"{url}/metrics", timeout=120).text


def _count(url: str, expr: str) -> int:
    """The value of a count() query; a long timeout, as a loaded central answers slowly."""
    answer = requests.get(f"{url}/api/v1/query", params={"query": expr}, timeout=120).json()
    return sum(int(float(s["value"][1])) for s in answer["data"]["result"])


def run(n: int, interval: float, window: float, work: Path, tree_dirs: dict[str, Path]) -> Result:
    """Measure one fleet of ``n`` hosts; returns its figures. Raises AssertionError when the
    chain does not carry every host to the central store in time."""
    chain = fleet.Fleet(work, free_port, interval=f"{interval:g}s")
    try:
        addresses = [chain.add_exporter(tree) for tree in tree_dirs.values()]
        chain.start(identities(n, addresses))
        agent, central = chain.agent, chain.central
        assert agent is not None and central is not None and central.proc is not None
        rss_idle = proc.rss_kib(central.proc.pid) / 1024
        central.wait(lambda: central.total('count(up{job="login-exporter"})') == n,
                     3 * interval + 60 + n / 200, f"{n} hosts at the central store")  # fmt: skip
        time.sleep(2 * interval)  # every host scraped again, the rules evaluated on all of them
        pids = [e.pid for e in chain.exporters]
        before = _metrics(agent.url)
        cpu0 = (proc.cpu_seconds(agent.proc.pid), proc.cpu_seconds(central.proc.pid),  # type: ignore[union-attr]
                sum(proc.cpu_seconds(p) for p in pids))  # fmt: skip
        started = time.monotonic()
        time.sleep(window)
        elapsed = time.monotonic() - started
        after = _metrics(agent.url)
        cpu1 = (proc.cpu_seconds(agent.proc.pid), proc.cpu_seconds(central.proc.pid),  # type: ignore[union-attr]
                sum(proc.cpu_seconds(p) for p in pids))  # fmt: skip
        own = _metrics(central.url)
        return Result(
            hosts=n, interval_s=interval, window_s=round(elapsed, 1),
            agent_series=int(total(after, "prometheus_agent_active_series")),
            central_raw_series=_count(central.url, RAW),
            central_recorded_series=_count(central.url, 'count({__name__=~".+:.+"})'),
            central_head_series=int(total(own, "prometheus_tsdb_head_series")),
            samples_per_s=(total(after, "prometheus_remote_storage_samples_total")
                           - total(before, "prometheus_remote_storage_samples_total")) / elapsed,
            bytes_per_s=(total(after, "prometheus_remote_storage_bytes_total")
                         - total(before, "prometheus_remote_storage_bytes_total")) / elapsed,
            central_rss_mib=proc.rss_kib(central.proc.pid) / 1024, central_rss_idle_mib=rss_idle,
            rule_eval_s=total(own, "prometheus_rule_group_last_duration_seconds"),
            agent_cpu=(cpu1[0] - cpu0[0]) / elapsed, central_cpu=(cpu1[1] - cpu0[1]) / elapsed,
            exporters_cpu=(cpu1[2] - cpu0[2]) / elapsed,
            not_scraped=_count(central.url, 'count(up{job="login-exporter"} == 0)'),
        )  # fmt: skip
    finally:
        chain.stop()


def table(results: list[Result]) -> str:
    """The results as one Markdown table, a column per run."""
    head = "| figure | " + " | ".join(f"N = {r.hosts:,}" for r in results) + " |"
    lines = [head, "| --- |" + " --- |" * len(results)]
    rows: dict[str, list[str]] = {}
    for r in results:
        for name, value in r.per_host().items():
            rows.setdefault(name, []).append(f"{value:,.3g}" if value < 100 else f"{value:,.0f}")
        rss = f"{r.central_rss_mib:,.0f} ({r.central_rss_idle_mib:,.0f})"
        for name, cell in (
            ("central head series", f"{r.central_head_series:,}"),
            ("central RSS MiB (idle before)", rss),
            ("CPU cores: agent / central / exporters",
             f"{r.agent_cpu:.2f} / {r.central_cpu:.2f} / {r.exporters_cpu:.2f}"),
            ("hosts not scraped", str(r.not_scraped)),
        ):  # fmt: skip
            rows.setdefault(name, []).append(cell)
    lines += [f"| {name} | " + " | ".join(cells) + " |" for name, cells in rows.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the fleets asked for; print the table (and write JSON); return the exit status."""
    parser = argparse.ArgumentParser(prog="python3 -m bench.fleet", description=__doc__)
    parser.add_argument("--hosts", type=int, action="append",
                        help="hosts in the fleet; repeat for several runs (100, 1000)")  # fmt: skip
    parser.add_argument("--interval", type=float, default=15, help="scrape interval, s (15)")
    parser.add_argument("--window", type=float, default=45, help="measured seconds (45)")
    parser.add_argument("--quick", action="store_true", help="30 hosts, 1 s interval, 5 s window")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    sizes = args.hosts or ([30] if args.quick else [100, 1000])
    interval, window = (1.0, 5.0) if args.quick else (args.interval, args.window)
    results: list[Result] = []
    failed = ""
    with private_run_systemd(), tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        tree_dirs = trees(Path(tmp) / "trees")
        for n in sizes:
            work = Path(tmp) / f"n{n}"
            work.mkdir()
            print(f"fleet of {n:,} hosts: {len(tree_dirs)} exporters, scrape every {interval:g} s,"
                  f" measuring {window:g} s", file=sys.stderr, flush=True)  # fmt: skip
            try:
                results.append(run(n, interval, window, work, tree_dirs))
            except (AssertionError, requests.RequestException) as exc:
                # The larger fleets stop here: this machine carries no more.
                failed = f"N = {n:,} did not complete: {str(exc).splitlines()[0][:200]}"
                break
            print(json.dumps(asdict(results[-1])), file=sys.stderr, flush=True)
    print(table(results), flush=True)
    if failed:
        print(failed, flush=True)
    if args.json:
        args.json.write_text(json.dumps({"results": [asdict(r) | {"per_host": r.per_host()}
                                                     for r in results]}, indent=2))  # fmt: skip
    return 1 if failed or not results else 0


if __name__ == "__main__":
    sys.exit(main())
