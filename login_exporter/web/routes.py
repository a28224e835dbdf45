"""What the server answers: the route table, its endpoints, basic auth before any of them.

Nothing here knows HTTP framing or sockets: an endpoint takes the request's headers and returns
a ``Response``. Adding an endpoint is one row in ``route_table`` and its function; the landing
page links every row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from login_exporter.auth import BasicAuthenticator
from login_exporter.web.negotiation import (
    OPENMETRICS_CONTENT_TYPE,
    TEXT_CONTENT_TYPE,
    Negotiator,
)

__all__ = [
    "HEALTH_PATHS",
    "Endpoint",
    "ExpositionSource",
    "Headers",
    "Links",
    "Response",
    "Site",
    "open_paths",
    "route_table",
]

log = logging.getLogger("login_exporter.web")

PLAIN: Final = "text/plain; charset=utf-8"
HTML: Final = "text/html; charset=utf-8"
Headers = tuple[tuple[str, str], ...]


class ExpositionSource(Protocol):
    """What the web server serves: pre-rendered, cheap to call from any thread."""

    def exposition(self, openmetrics: bool, gzip: bool) -> bytes:
        """The exposition in OpenMetrics or text 0.0.4 format, gzip-compressed if asked."""
        ...

    def ready(self) -> bool:
        """True once the first snapshot exists."""
        ...


@dataclass(frozen=True, slots=True)
class Response:
    """One answer: status, body, its content type and any further headers."""

    status: int
    body: bytes
    content_type: str = PLAIN
    headers: Headers = ()


Endpoint = Callable[[Mapping[str, str]], Response]
"""Takes the request's header fields (lower-case names) and returns the answer."""

HEALTHY: Final = Response(200, b"Healthy\n")
READY: Final = Response(200, b"Ready\n")
NOT_READY: Final = Response(503, b"Not ready\n")
NOT_FOUND: Final = Response(404, b"404 page not found\n")
METHOD_NOT_ALLOWED: Final = Response(405, b"Method Not Allowed\n",
                                      headers=(("Allow", "GET, HEAD"),))  # fmt: skip
UNAUTHORIZED: Final = Response(
    401,
    b"Unauthorized\n",
    headers=(("WWW-Authenticate", 'Basic realm="login-exporter", charset="UTF-8"'),),
)
AUTH_BUSY: Final = Response(503, b"Too many authentication attempts.\n",
                            headers=(("Retry-After", "1"),))  # fmt: skip
FAILED: Final = Response(500, b"internal error\n")
_VARY: Final = (("Vary", "Accept, Accept-Encoding"),)
_GZIP_VARY: Final = (("Content-Encoding", "gzip"), *_VARY)


HEALTH_PATHS: Final = ("/-/healthy", "/-/ready")


Links = Sequence[tuple[str, str]]
"""(path, title) of each route the landing page links to."""


def route_table(
    source: ExpositionSource, telemetry_path: str, landing: Callable[[Links], bytes]
) -> dict[str, Endpoint]:
    """Return path -> endpoint; "/" answers ``landing(links)``, the links being every other row
    with its title, so the landing page lists exactly the routes served. The telemetry path wins
    if it names another route's path."""
    healthy, ready = HEALTH_PATHS
    titled: dict[str, tuple[str, Endpoint]] = {
        telemetry_path: ("Metrics", Exposition(source)),
        healthy: ("Health", lambda headers: HEALTHY),
        ready: ("Readiness", lambda headers: READY if source.ready() else NOT_READY),
    }
    titled[telemetry_path] = ("Metrics", Exposition(source))  # first in place, and it wins
    page = Response(200, landing([(path, title) for path, (title, _) in titled.items()]), HTML)
    return {"/": lambda headers: page, **{path: row[1] for path, row in titled.items()}}


def open_paths(telemetry_path: str, protect_health: bool) -> frozenset[str]:
    """Return the paths answered without basic auth: the health endpoints unless protected.

    They tell nothing but liveness, and health checks and probes send no credentials. The
    telemetry path is never among them, even when it takes a health endpoint's path.
    """
    if protect_health:
        return frozenset()
    return frozenset(HEALTH_PATHS) - {telemetry_path}


class Exposition:
    """The metrics endpoint: the source's pre-rendered bytes in the format the client asks for."""

    def __init__(self, source: ExpositionSource) -> None:
        self._source = source
        self._negotiate = Negotiator()

    def __call__(self, headers: Mapping[str, str]) -> Response:
        """Return the exposition; raises whatever the source raises."""
        openmetrics, gzip = self._negotiate(headers.get("accept"), headers.get("accept-encoding"))
        return Response(
            200,
            self._source.exposition(openmetrics, gzip),
            OPENMETRICS_CONTENT_TYPE if openmetrics else TEXT_CONTENT_TYPE,
            _GZIP_VARY if gzip else _VARY,
        )


class Site:
    """Answers a parsed request: basic auth first, then the route, then the method.

    Paths in ``unauthenticated`` skip basic auth (their credentials are not even looked at).
    """

    def __init__(
        self,
        routes: Mapping[str, Endpoint],
        authenticator: BasicAuthenticator | None = None,
        unauthenticated: frozenset[str] = frozenset(),
    ) -> None:
        self.routes = dict(routes)
        self.authenticator = authenticator
        self.unauthenticated = unauthenticated

    def respond(self, method: str, path: str, headers: Mapping[str, str]) -> Response:
        """Return the answer to ``method path``; an endpoint that raises gives a 500."""
        if self.authenticator is not None and path not in self.unauthenticated:
            verdict = self.authenticator.check_header(headers.get("authorization"))
            if verdict is None:
                return AUTH_BUSY
            if not verdict:
                return UNAUTHORIZED
        endpoint = self.routes.get(path)
        if endpoint is None:
            return NOT_FOUND
        if method != "GET" and method != "HEAD":
            return METHOD_NOT_ALLOWED
        try:
            return endpoint(headers)
        except Exception:
            log.exception("answering %s failed", path)
            return FAILED
