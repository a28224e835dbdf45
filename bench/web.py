"""The web layer alone: `python3 -m bench.web [--n N] [--repeats R] [--seconds S] [--idle S]`.

With ``--hold`` it measures instead what a scrape from one address gets while another address
holds every connection it can (bench/hold.py), for ``--seconds``.

Prints the two figures a change to login_exporter/web* must keep: scrape p50/p99 at 4 clients
(the same `wrk -t2 -c4 --latency` load as bench.run's "scrape p50/p99, default flags" rows) and
idle wake-ups (context switches over all threads while nothing happens, as bench.run's "idle"
row). Each scrape figure is measured ``--repeats`` times on a fresh exporter, interleaved with
nothing else, so one noisy moment on a shared machine shows as one outlier instead of the result:
compare medians of repeats taken the same way before and after a change.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from bench import exporter, hold, latency, statetree
from bench.exporter import Exporter


def log(message: str) -> None:
    """Progress line on stderr."""
    print(f"[bench.web {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def scrape_repeats(repeats: int, seconds: float) -> list[latency.Latency]:
    """Scrape latency at 4 clients, ``repeats`` times, each on a freshly started exporter."""
    results = []
    for r in range(repeats):
        with Exporter() as exp:
            exp.scrape()
            result = latency.measure("127.0.0.1", exp.port, "/metrics", seconds)
        log(f"repeat {r + 1}/{repeats}: p50 {result.p50 * 1e3:.3f} ms, "
            f"p99 {result.p99 * 1e3:.3f} ms, {result.rps:,.0f}/s ({result.tool})")
        results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    """Parse flags, measure, print the figures. Returns 0, or 1 when the exporter cannot run."""
    parser = argparse.ArgumentParser(prog="python3 -m bench.web", description=__doc__)
    parser.add_argument("--n", type=int, default=1000, help="sessions in the state (1000)")
    parser.add_argument("--repeats", type=int, default=5, help="scrape runs (5)")
    parser.add_argument("--seconds", type=float, default=5, help="seconds per scrape run (5)")
    parser.add_argument("--idle", type=float, default=10, help="idle seconds watched (10)")
    parser.add_argument("--hold", action="store_true",
                        help="scrape from 127.0.0.2 while 127.0.0.1 holds connections")  # fmt: skip
    args = parser.parse_args(argv)
    reason = exporter.availability()
    if reason is not None:
        print(f"exporter unavailable: {reason}", file=sys.stderr)
        return 1
    with statetree.private_run_systemd() as writer:
        statetree.populate(writer, args.n)
        if args.hold:
            log(f"N={args.n}: scraping from {hold.SCRAPER} for {args.seconds:g} s while "
                f"{hold.ATTACKER} holds connections")  # fmt: skip
            alone, held = hold.measure(args.seconds)
            print(f"N={args.n}, {args.seconds:g} s each, one scrape at a time on a new connection")
            print("\n".join(hold.report(alone, held)))
            return 0
        log(f"N={args.n}: {args.repeats} scrape runs of {args.seconds:g} s")
        results = scrape_repeats(args.repeats, args.seconds)
        log(f"idle {args.idle:g} s")
        wakeups, cpu_ms = exporter.idle_wakeups(args.idle)
    p50s = [r.p50 * 1e3 for r in results]
    p99s = [r.p99 * 1e3 for r in results]
    errors = sum(r.errors for r in results)
    print(f"N={args.n}, 4 clients, {results[0].tool}, {args.repeats} x {args.seconds:g} s")
    print(f"scrape p50 ms: median {statistics.median(p50s):.3f}  runs "
          + " ".join(f"{v:.3f}" for v in p50s))
    print(f"scrape p99 ms: median {statistics.median(p99s):.3f}  runs "
          + " ".join(f"{v:.3f}" for v in p99s))
    print(f"scrapes/s: median {statistics.median(r.rps for r in results):,.0f}; "
          f"non-2xx: {errors}")
    print(f"idle {args.idle:g} s: {wakeups} context switches, {cpu_ms:.0f} ms CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
