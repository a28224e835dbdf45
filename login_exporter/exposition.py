"""Exposition bytes: the families of one snapshot rendered once per format, and the publisher
that hands the newest of them (plus the live process metrics) to the web server.

A scrape only reads bytes prepared here; nothing in this module calls libsystemd.
"""

from __future__ import annotations

import gzip as gz
import threading
import time
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics


class _Families:
    """A fixed list of families, shaped like a registry for prometheus_client's renderers."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self._families


def _openmetrics(registry: CollectorRegistry | _Families) -> bytes:
    result: bytes = generate_openmetrics(registry)  # type: ignore[no-untyped-call]
    return result


_EOF = b"# EOF\n"


class Exposition:
    """The logind families of one snapshot, rendered on demand once per format and cached.

    The text format is rendered at construction (in the agent thread); OpenMetrics and the
    gzipped forms on first request, so a refresh does not pay for formats nobody scrapes.
    OpenMetrics bytes exclude the final ``# EOF`` (the live part follows them).
    """

    def __init__(self, families: Iterable[Metric], tail: bytes = b"") -> None:
        self._families = _Families(families)
        self._tail = tail  # lines rendered elsewhere, valid in both formats
        self._lock = threading.Lock()
        self._rendered: dict[tuple[bool, bool], bytes] = {
            (False, False): generate_latest(self._families) + tail
        }

    def get(self, openmetrics: bool, gzip: bool) -> bytes:
        """Return the rendering in one format (thread-safe; each format is rendered once)."""
        key = (openmetrics, gzip)
        data = self._rendered.get(key)
        if data is None:
            with self._lock:
                data = self._rendered.get(key)
                if data is None:
                    if gzip:
                        plain = self._rendered.get((openmetrics, False))
                        if plain is None:
                            plain = _openmetrics(self._families).removesuffix(_EOF) + self._tail
                            self._rendered[(openmetrics, False)] = plain
                        data = gz.compress(plain, 1, mtime=0)
                    else:
                        data = _openmetrics(self._families).removesuffix(_EOF) + self._tail
                    self._rendered[key] = data
        return data


class Publisher:
    """The web server's source: the newest exposition followed by the process/python
    collectors, whose values change between refreshes. Those are rendered at most once per
    ``live_ttl`` seconds and the whole body is cached per format, so a scrape is a lookup."""

    def __init__(
        self,
        live: CollectorRegistry | None,
        live_ttl: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._current: Exposition | None = None
        self._live = live
        self._live_ttl = live_ttl
        self._clock = clock
        self._bodies: dict[tuple[bool, bool], tuple[Exposition, float, bytes]] = {}
        self._lock = threading.Lock()

    def publish(self, exposition: Exposition) -> None:
        """Make ``exposition`` what scrapes see (one reference swap: no lock needed)."""
        self._current = exposition

    def ready(self) -> bool:
        """Whether the first snapshot has been published."""
        return self._current is not None

    def exposition(self, openmetrics: bool, gzip: bool = False) -> bytes:
        """Return the bytes of one scrape. Raises LookupError before the first publish."""
        current = self._current
        if current is None:
            raise LookupError("no snapshot yet")
        if self._live is None and not openmetrics:
            return current.get(openmetrics, gzip)
        key = (openmetrics, gzip)
        cached = self._bodies.get(key)
        if cached is not None and cached[0] is current and self._clock() < cached[1]:
            return cached[2]
        with self._lock:  # one renderer at a time; the others reuse its result
            cached = self._bodies.get(key)
            if cached is not None and cached[0] is current and self._clock() < cached[1]:
                return cached[2]
            body = current.get(openmetrics, gzip) + self._live_part(openmetrics, gzip)
            self._bodies[key] = (current, self._clock() + self._live_ttl, body)
            return body

    def _live_part(self, openmetrics: bool, gzip: bool) -> bytes:
        if self._live is None:
            live = _EOF
        else:
            live = _openmetrics(self._live) if openmetrics else generate_latest(self._live)
        # Concatenated gzip members are one valid gzip stream (RFC 1952).
        return gz.compress(live, 1, mtime=0) if gzip else live
