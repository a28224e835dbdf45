"""Reference: prometheus_client's stock start_http_server with a collector of 100 series.

`python3 -m bench.reference_server PORT` serves until killed. The bench loads it with the same
wrk settings as the exporter, so the exporter's scrape latency can be read against what the
stock server does on the same (noisy) machine in the same run.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator

from prometheus_client import start_http_server
from prometheus_client.core import REGISTRY, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

SERIES = 100


class HundredSeries(Collector):
    """One gauge family with SERIES labelled series, rebuilt on every scrape."""

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("bench_reference", "reference series", labels=["index"])
        for i in range(SERIES):
            family.add_metric([str(i)], float(i))
        yield family


def main() -> None:
    """Serve on 127.0.0.1:PORT (argv[1]) until SIGTERM."""
    REGISTRY.register(HundredSeries())
    start_http_server(int(sys.argv[1]), addr="127.0.0.1")
    signal.sigwait({signal.SIGTERM, signal.SIGINT})


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    main()
