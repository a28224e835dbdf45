"""One address holding connections, another scraping: `python3 -m bench.web --hold`.

The attacker, a local user, opens idle connections from 127.0.0.1, 127.0.0.2, ... 127.0.0.8 in
turn (connect, send nothing: a slowloris) and re-opens each one the exporter answers or closes,
so it holds every slot it can for the whole run. Meanwhile a scraper GETs /metrics from this
machine's address outside loopback on a new connection each time, as a Prometheus on another
host whose kept-alive connection was lost would. What is measured:
the scraper's share of 200 answers and the latency of those, and how many slots the attacker
held; and, for comparison, the same scrapes on the same exporter before the attacker starts.
"""

from __future__ import annotations

import http.client
import select
import socket
import threading
import time
from dataclasses import dataclass

from bench import latency
from bench.exporter import Exporter
from tests.support.addresses import outside_address

ATTACKER = "127.0.0.1-8"  # the loopback addresses the attacker connects from, in turn
SCRAPER = outside_address()
CAP = 512  # the exporter's connection cap (WebServer's default)


@dataclass(frozen=True)
class Held:
    """What a scraper from another address saw while one address held connections."""

    scrapes: int
    ok: int  # answered 200
    p50: float | None  # seconds, of the 200 answers; None without any
    p99: float | None
    held: int  # the most connections the attacker held open at once
    reopened: float  # connections per second the attacker re-opened (each one answered or closed)


class Attacker:
    """Holds up to ``count`` idle connections from ATTACKER, re-opening each one that ends."""

    def __init__(self, port: int, count: int) -> None:
        self._port = port
        self._count = count
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="attacker", daemon=True)
        self.held = 0
        self.reopened = 0
        self._opened = 0

    def __enter__(self) -> Attacker:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _connect(self) -> socket.socket:
        sock = socket.socket()
        self._opened += 1
        sock.bind((f"127.0.0.{self._opened % 8 + 1}", 0))
        sock.connect(("127.0.0.1", self._port))
        return sock

    def _run(self) -> None:
        opened = {self._connect(): time.monotonic() for _ in range(self._count)}
        try:
            while not self._stop.is_set():
                # Readable means answered (503, or 408 at the request deadline) or closed.
                ended, _, _ = select.select(list(opened), [], [], 0.2)
                for sock in ended:
                    del opened[sock]
                    sock.close()
                # Held: still open after a while (a refusal comes within milliseconds).
                settled = time.monotonic() - 0.5
                self.held = max(self.held, sum(1 for t in opened.values() if t < settled))
                for _ in ended:
                    opened[self._connect()] = time.monotonic()
                self.reopened += len(ended)
        finally:
            for sock in opened:
                sock.close()


def scrape_from(source: str, port: int) -> int:
    """GET /metrics on a new connection from ``source``; return the status (0 on an error)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5, source_address=(source, 0))
    try:
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        return 0
    finally:
        conn.close()


def scrapes(port: int, seconds: float) -> tuple[int, list[float]]:
    """Scrape from SCRAPER, one at a time 10 ms apart, for ``seconds``.

    Returns how many scrapes were made and the latencies of the 200 answers, ascending.
    """
    count, timings = 0, []
    stop_at = time.perf_counter() + seconds
    while time.perf_counter() < stop_at:
        started = time.perf_counter()
        if scrape_from(SCRAPER, port) == 200:
            timings.append(time.perf_counter() - started)
        count += 1
        time.sleep(0.01)
    return count, sorted(timings)


def _held(count: int, timings: list[float], held: int = 0, reopened: float = 0.0) -> Held:
    return Held(
        scrapes=count,
        ok=len(timings),
        p50=latency.percentile(timings, 50) if timings else None,
        p99=latency.percentile(timings, 99) if timings else None,
        held=held,
        reopened=reopened,
    )


def measure(seconds: float) -> tuple[Held, Held]:
    """Scrape from SCRAPER for ``seconds`` alone, then as long while ATTACKER holds all it can
    (CAP + 16 tries). Returns (alone, held)."""
    with Exporter() as exp:
        scrape_from(SCRAPER, exp.port)  # warm up on a connection that does not stay open
        alone = _held(*scrapes(exp.port, seconds))
        with Attacker(exp.port, CAP + 16) as attacker:
            time.sleep(1.0)  # let it fill the slots
            reopened_before, started = attacker.reopened, time.perf_counter()
            count, timings = scrapes(exp.port, seconds)
            rate = (attacker.reopened - reopened_before) / (time.perf_counter() - started)
            held = attacker.held
    return alone, _held(count, timings, held, rate)


def report(alone: Held, held: Held) -> list[str]:
    """Return the lines bench.web prints for the two runs of ``measure``."""

    def line(result: Held) -> str:
        rate = 100 * result.ok / result.scrapes if result.scrapes else 0.0
        p50 = "n/a" if result.p50 is None else f"{result.p50 * 1e3:.3f}"
        p99 = "n/a" if result.p99 is None else f"{result.p99 * 1e3:.3f}"
        return (f"{result.ok}/{result.scrapes} answered 200 ({rate:.1f} %); "
                f"p50 ms {p50}, p99 ms {p99} (of the 200s)")  # fmt: skip

    return [
        f"scrapes from {SCRAPER} alone: {line(alone)}",
        f"held from {ATTACKER}: {held.held} of {CAP} connection slots; "
        f"re-opened {held.reopened:,.0f}/s",
        f"scrapes from {SCRAPER} meanwhile: {line(held)}",
    ]
