"""The web server: listening sockets, TLS and basic auth from the web config, the route table.

It serves what the collector already rendered (``ExpositionSource.exposition``); the hot path
takes no lock: per-request state lives on the connection thread's stack and the shared caches
are dicts read and written under the GIL. Its parts: ``acceptor`` (threads, cap, TLS),
``exchange`` (HTTP on one connection), ``routes`` (what is answered).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from functools import partial

from login_exporter.auth import BasicAuthenticator
from login_exporter.web.acceptor import Acceptor
from login_exporter.web.clientcert import AllowedSans
from login_exporter.web.exchange import Exchange, Limits
from login_exporter.web.landing import landing_page as make_landing_page
from login_exporter.web.routes import ExpositionSource, Links, Site, open_paths, route_table
from login_exporter.webconfig import WebConfig

__all__ = ["WebServer"]


class WebServer:
    """Serves an ExpositionSource on listening sockets (plain or TLS, optional basic auth).

    Basic auth gates every path but the health endpoints, unless the config's
    ``basic_auth_health`` gates those too.

    ``sockets`` must already listen (see bind_listen_addresses, or systemd socket activation);
    the server owns them from now on and closes them in shutdown(). ``on_failure`` is called
    (from the acceptor thread) if accepting fails for good, so the program can exit non-zero.
    """

    def __init__(
        self,
        sockets: Sequence[socket.socket],
        source: ExpositionSource,
        *,
        telemetry_path: str = "/metrics",
        config: WebConfig | None = None,
        landing_page: Callable[[Links], bytes] | None = None,
        max_connections: int = 512,
        request_timeout: float = 10.0,
        idle_timeout: float = 120.0,
        max_concurrent_bcrypt: int = 1,
        on_failure: Callable[[BaseException], None] | None = None,
    ) -> None:
        if not telemetry_path.startswith("/"):
            raise ValueError(f"telemetry path {telemetry_path!r} must start with '/'")
        if not sockets:
            raise ValueError("no listening sockets")
        self._sockets = list(sockets)
        config = config or WebConfig()
        tls = config.tls
        if landing_page is None:
            landing_page = partial(make_landing_page, "unknown", flags={})
        self._site = Site(
            route_table(source, telemetry_path, landing_page),
            BasicAuthenticator(config.basic_auth_users, max_concurrent_checks=max_concurrent_bcrypt)
            if config.basic_auth_users
            else None,
            open_paths(telemetry_path, config.basic_auth_health),
        )
        site = self._site
        limits = Limits(request_timeout, idle_timeout)
        extra_headers = tuple(config.headers.items())

        def serve(sock: socket.socket, peer: object) -> None:
            Exchange(sock, peer, site, limits, extra_headers, self._closing)

        self._acceptor = Acceptor(
            self._sockets,
            serve,
            ssl_context=tls.ssl_context if tls else None,
            allowed_sans=AllowedSans(tls.client_allowed_sans if tls else ()),
            max_connections=max_connections,
            handshake_timeout=request_timeout,
            on_failure=on_failure,
        )

    @property
    def authenticator(self) -> BasicAuthenticator | None:
        """The basic-auth checker (None without basic_auth_users)."""
        return self._site.authenticator

    @property
    def failure(self) -> BaseException | None:
        """Why the acceptor stopped accepting, or None while it works (or after shutdown)."""
        return self._acceptor.failure

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """(host, port) of each listening socket, e.g. to learn ports bound as port 0."""
        addresses = []
        for sock in self._sockets:
            name = sock.getsockname()
            # AF_UNIX (systemd socket activation may pass one) has a path, not (host, port).
            addresses.append((name[0], name[1]) if isinstance(name, tuple) else (str(name), 0))
        return addresses

    def start(self) -> None:
        """Start the acceptor thread and return at once. Raises RuntimeError if started twice."""
        try:
            self._acceptor.start()
        except RuntimeError:
            raise RuntimeError("WebServer already started") from None

    def shutdown(self) -> None:
        """Stop accepting, close the listening sockets and open connections; returns promptly."""
        self._acceptor.shutdown()

    def _closing(self) -> bool:
        return self._acceptor.closing
