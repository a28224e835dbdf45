"""The HTTP side: serve pre-rendered expositions, health endpoints and a landing page.

Design (see shared/notes/performance.md):
- One acceptor thread blocks in ``select()`` with no timeout over every listening socket and a
  wake-up pipe, so an idle exporter never wakes up; ``shutdown()`` writes to the pipe.
- One daemon thread per connection, with a socket timeout and a deadline for each request head
  (slow clients only ever hold their own thread), and a cap on concurrent connections that
  answers 503 instead of queueing.
- A scrape reads bytes the collector already rendered (``ExpositionSource.exposition``); the hot
  path takes no lock: per-request state lives on the connection thread's stack and the shared
  caches are dicts read and written under the GIL.
- Basic auth: bcrypt only on a cache miss; verified (user, password) pairs are remembered by an
  HMAC with a per-process key, and concurrent bcrypt checks are bounded.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import html
import ipaddress
import logging
import os
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Mapping, Sequence
from email.utils import formatdate
from typing import Final, Protocol

from login_exporter.auth import BasicAuthenticator
from login_exporter.webconfig import WebConfig

__all__ = [
    "OPENMETRICS_CONTENT_TYPE",
    "TEXT_CONTENT_TYPE",
    "ExpositionSource",
    "WebServer",
    "bind_listen_addresses",
    "landing_page",
    "parse_listen_address",
]

log = logging.getLogger("login_exporter.web")

TEXT_CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE: Final = "application/openmetrics-text; version=1.0.0; charset=utf-8"

MAX_REQUEST_LINE: Final = 8192
MAX_HEAD: Final = 16384
MAX_HEADERS: Final = 100


class ExpositionSource(Protocol):
    """What the web server serves: pre-rendered, cheap to call from any thread."""

    def exposition(self, openmetrics: bool, gzip: bool) -> bytes:
        """The exposition in OpenMetrics or text 0.0.4 format, gzip-compressed if asked."""
        ...

    def ready(self) -> bool:
        """True once the first snapshot exists."""
        ...


# --------------------------------------------------------------------------- listen addresses


def parse_listen_address(text: str) -> tuple[str, int]:
    """Split a Prometheus-style listen address into (host, port).

    ``":9844"`` gives ``("", 9844)`` (all addresses), ``"[::]:9844"`` gives ``("::", 9844)``,
    ``"127.0.0.1:9844"`` and ``"localhost:9844"`` keep their host. Raises ValueError naming
    the text when the port is missing or invalid or the host is malformed.
    """
    host, sep, port_text = text.rpartition(":")
    if not sep or text.endswith("]"):
        raise ValueError(f"listen address {text!r}: missing port (use host:port or :port)")
    if not port_text.isascii() or not port_text.isdigit():
        raise ValueError(f"listen address {text!r}: port {port_text!r} is not a number")
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"listen address {text!r}: port {port} is out of range 0-65535")
    if host.startswith("["):
        if not host.endswith("]"):
            raise ValueError(f"listen address {text!r}: unbalanced '[' in host")
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"listen address {text!r}: {host!r} is not an IPv6 address") from None
    elif ":" in host:
        raise ValueError(
            f"listen address {text!r}: write IPv6 addresses in brackets: [{host}]:port"
        )
    elif any(c.isspace() or c in "[]/" for c in host):
        raise ValueError(f"listen address {text!r}: invalid host {host!r}")
    return host, port


def _bind(host: str, port: int) -> socket.socket:
    if host in ("", "::"):
        # All addresses: one dual-stack IPv6 socket, or IPv4 only where IPv6 is off.
        if socket.has_ipv6:
            sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(("::", port))
                return sock
            except OSError as exc:
                sock.close()
                if host == "::" or exc.errno not in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL):
                    raise
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("0.0.0.0", port))
        except OSError:
            sock.close()
            raise
        return sock
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def bind_listen_addresses(addresses: Sequence[str]) -> list[socket.socket]:
    """Bind and listen on every address; returns the listening sockets in the same order.

    Raises ValueError for a malformed address and OSError (naming the address) when a bind
    fails; sockets bound before the failure are closed.
    """
    parsed = [(text, *parse_listen_address(text)) for text in addresses]
    sockets: list[socket.socket] = []
    try:
        for text, host, port in parsed:
            try:
                sock = _bind(host, port)
            except OSError as exc:
                reason = exc.strerror or str(exc)
                raise OSError(exc.errno, f"cannot listen on {text}: {reason}") from exc
            sockets.append(sock)
            sock.listen(socket.SOMAXCONN)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


# --------------------------------------------------------------------------- landing page


def landing_page(version: str, telemetry_path: str, flags: Mapping[str, str]) -> bytes:
    """A small HTML page linking to the telemetry path, with the version and flags in force."""
    esc = html.escape
    rows = "".join(
        f"<tr><td><code>--{esc(name.removeprefix('--'))}</code></td>"
        f"<td><code>{esc(value)}</code></td></tr>\n"
        for name, value in sorted(flags.items())
    )
    page = (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\">"
        "<title>login-exporter</title></head>\n<body>\n<h1>login-exporter</h1>\n"
        "<p>Prometheus exporter for systemd-logind: sessions, seats, users and machines.</p>\n"
        f"<p>Version: <code>{esc(version)}</code></p>\n<ul>\n"
        f"<li><a href=\"{esc(telemetry_path)}\">Metrics</a></li>\n"
        "<li><a href=\"/-/healthy\">Health</a></li>\n<li><a href=\"/-/ready\">Readiness</a></li>\n"
        "</ul>\n"
        + (f"<h2>Flags</h2>\n<table>\n{rows}</table>\n" if rows else "")
        + "</body>\n</html>\n"
    )
    return page.encode("utf-8")


# --------------------------------------------------------------------------- negotiation


def _parse_list(header: str) -> list[tuple[str, dict[str, str], float]]:
    """Split an Accept / Accept-Encoding value into (token, params, q) items."""
    items = []
    for part in header.split(","):
        token, *params = part.split(";")
        token = token.strip().lower()
        if not token:
            continue
        q = 1.0
        extra: dict[str, str] = {}
        for param in params:
            name, _, value = param.partition("=")
            name = name.strip().lower()
            value = value.strip().strip('"')
            if name == "q":
                try:
                    q = max(0.0, min(1.0, float(value)))
                except ValueError:
                    q = 0.0
            else:
                extra[name] = value
        items.append((token, extra, q))
    return items


def _wants_openmetrics(accept: str) -> bool:
    """True when OpenMetrics 1.0.0 ranks at least as high as text/plain in the Accept header."""
    q_openmetrics = 0.0
    q_text = 0.0
    for token, params, q in _parse_list(accept):
        if token == "application/openmetrics-text":
            version = params.get("version", "1.0.0")
            if version.startswith(("1.", "0.0.1")):
                q_openmetrics = max(q_openmetrics, q)
        elif token in ("text/plain", "text/*", "*/*"):
            q_text = max(q_text, q)
    return q_openmetrics > 0 and q_openmetrics >= q_text


def _accepts_gzip(accept_encoding: str) -> bool:
    gzip_q: float | None = None
    star_q: float | None = None
    for token, _, q in _parse_list(accept_encoding):
        if token in ("gzip", "x-gzip"):
            gzip_q = q if gzip_q is None else max(gzip_q, q)
        elif token == "*":
            star_q = q
    if gzip_q is not None:
        return gzip_q > 0
    return star_q is not None and star_q > 0


class _Memo:
    """A bounded header-value -> answer cache; clients send the same few headers every time.

    Plain dict operations are atomic under the GIL, so readers need no lock; a racing clear()
    only costs a recomputation.
    """

    def __init__(self, compute: _Decider, limit: int = 256) -> None:
        self._compute = compute
        self._limit = limit
        self._answers: dict[str, bool] = {}

    def __call__(self, value: str) -> bool:
        answer = self._answers.get(value)
        if answer is None:
            answer = self._compute(value)
            if len(self._answers) >= self._limit:
                self._answers.clear()
            self._answers[value] = answer
        return answer


class _Decider(Protocol):
    def __call__(self, value: str, /) -> bool: ...


# --------------------------------------------------------------------------- HTTP


# bytes.translate(None, chars) deletes chars at C speed: an empty result means "only chars".
_TOKEN_CHARS: Final = (
    b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)
_VISIBLE_CHARS: Final = bytes(range(0x21, 0x7F)) + bytes(range(0x80, 0x100))
_REASONS: Final[Mapping[int, str]] = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    414: "URI Too Long",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}
_TEXT: Final = b"text/plain; charset=utf-8"
_CHALLENGE: Final = b'WWW-Authenticate: Basic realm="login-exporter", charset="UTF-8"\r\n'
_HTML: Final = b"text/html; charset=utf-8"
_OVERLOADED: Final = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 22\r\nRetry-After: 1\r\nConnection: close\r\n\r\nToo many connections.\n"
)
_PLAIN_TO_TLS: Final = (
    b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Connection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
)

# Route kinds.
_LANDING, _METRICS, _HEALTHY, _READY = range(4)


class _HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Request:
    __slots__ = ("close", "headers", "method", "path")

    def __init__(self, method: bytes, path: bytes, headers: dict[bytes, bytes], close: bool):
        self.method = method
        self.path = path
        self.headers = headers
        self.close = close


_date_cache: tuple[int, bytes] = (0, b"")


def _http_date() -> bytes:
    global _date_cache  # a tuple swap: atomic, no lock
    now = int(time.time())
    cached = _date_cache
    if cached[0] != now:
        cached = (now, formatdate(now, usegmt=True).encode("ascii"))
        _date_cache = cached
    return cached[1]


def _drain(sock: socket.socket) -> None:
    """Half-close after an error answer and read what the client still sends (briefly).

    Closing with unread bytes in the receive queue makes the kernel send a reset, which can
    destroy the answer before the client reads it.
    """
    if isinstance(sock, ssl.SSLSocket):
        return
    sock.shutdown(socket.SHUT_WR)
    deadline = time.monotonic() + 0.5
    received = 0
    while received < 1 << 20:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        sock.settimeout(remaining)
        chunk = sock.recv(65536)
        if not chunk:
            return
        received += len(chunk)


def _find_head_end(buf: bytes | bytearray) -> tuple[int, int]:
    """(end of head, start of what follows) or (-1, -1): accepts CRLF and bare LF lines."""
    crlf = buf.find(b"\n\r\n")
    lf = buf.find(b"\n\n")
    if crlf < 0 and lf < 0:
        return -1, -1
    if lf < 0 or (0 <= crlf < lf):
        return crlf, crlf + 3
    return lf, lf + 2


def _parse_head(head: bytes) -> _Request:
    lines = head.split(b"\n")
    request_line = lines[0].removesuffix(b"\r")
    parts = request_line.split(b" ")
    if len(parts) != 3:
        raise _HTTPError(400, "malformed request line")
    method, target, version = parts
    if not method or method.translate(None, _TOKEN_CHARS):
        raise _HTTPError(400, "malformed method")
    if version == b"HTTP/1.1":
        close = False
    elif version == b"HTTP/1.0":
        close = True
    elif version.startswith(b"HTTP/") and version[5:6].isdigit():
        raise _HTTPError(505, "only HTTP/1.0 and HTTP/1.1 are supported")
    else:
        raise _HTTPError(400, "malformed HTTP version")
    if target.startswith((b"http://", b"https://")):
        # absolute-form: keep only the path
        slash = target.find(b"/", target.find(b"//") + 2)
        target = target[slash:] if slash >= 0 else b"/"
    if not target.startswith(b"/") or target.translate(None, _VISIBLE_CHARS):
        raise _HTTPError(400, "malformed request target")
    path = target.split(b"?", 1)[0]
    if len(lines) - 1 > MAX_HEADERS:
        raise _HTTPError(431, "too many header fields")
    headers: dict[bytes, bytes] = {}
    for raw in lines[1:]:
        line = raw.removesuffix(b"\r")
        name, sep, value = line.partition(b":")
        if not sep or not name or name.translate(None, _TOKEN_CHARS):
            raise _HTTPError(400, "malformed header field")
        name = name.lower()
        value = value.strip(b" \t")
        if name in headers:
            if name == b"content-length" and headers[name] != value:
                raise _HTTPError(400, "conflicting Content-Length")
            headers[name] = headers[name] + b", " + value
        else:
            headers[name] = value
    connection = headers.get(b"connection", b"").lower()
    if b"close" in connection:
        close = True
    elif b"keep-alive" in connection:
        close = False
    length = headers.get(b"content-length")
    if length is not None and not length.isdigit():
        raise _HTTPError(400, "malformed Content-Length")
    if b"transfer-encoding" in headers or (length is not None and int(length) > 0):
        close = True  # a body is never read: answer, then close instead of parsing it
    return _Request(method, path, headers, close)


class WebServer:
    """Serves an ExpositionSource on listening sockets (plain or TLS, optional basic auth).

    ``sockets`` must already listen (see bind_listen_addresses, or systemd socket activation);
    the server owns them from now on and closes them in shutdown().
    """

    def __init__(
        self,
        sockets: Sequence[socket.socket],
        source: ExpositionSource,
        *,
        telemetry_path: str = "/metrics",
        config: WebConfig | None = None,
        landing_page: bytes | None = None,
        max_connections: int = 512,
        request_timeout: float = 10.0,
        idle_timeout: float = 120.0,
        max_concurrent_bcrypt: int = 1,
    ) -> None:
        if not telemetry_path.startswith("/"):
            raise ValueError(f"telemetry path {telemetry_path!r} must start with '/'")
        if not sockets:
            raise ValueError("no listening sockets")
        self._sockets = list(sockets)
        self._source = source
        self._config = config or WebConfig()
        self._tls = self._config.tls
        self._ssl_context = self._tls.ssl_context if self._tls else None
        self._allowed_sans = frozenset(self._tls.client_allowed_sans) if self._tls else frozenset()
        self._auth = (
            BasicAuthenticator(
                self._config.basic_auth_users, max_concurrent_checks=max_concurrent_bcrypt
            )
            if self._config.basic_auth_users
            else None
        )
        self._landing = (
            landing_page
            if landing_page is not None
            else _default_landing(telemetry_path)
        )
        self._routes: dict[bytes, int] = {
            b"/": _LANDING,
            b"/-/healthy": _HEALTHY,
            b"/-/ready": _READY,
        }
        self._routes[telemetry_path.encode("utf-8")] = _METRICS
        extra = "".join(f"{k}: {v}\r\n" for k, v in self._config.headers.items())
        self._extra_headers = extra.encode("latin-1")
        self._max_connections = max_connections
        self._slots = threading.BoundedSemaphore(max_connections)
        self._request_timeout = request_timeout
        self._idle_timeout = idle_timeout
        self._wants_openmetrics = _Memo(_wants_openmetrics)
        self._accepts_gzip = _Memo(_accepts_gzip)
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._closing = False
        self._wake_r, self._wake_w = os.pipe()
        self._acceptor: threading.Thread | None = None
        self._started = False

    @property
    def authenticator(self) -> BasicAuthenticator | None:
        """The basic-auth checker (None without basic_auth_users)."""
        return self._auth

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
        if self._started:
            raise RuntimeError("WebServer already started")
        self._started = True
        for sock in self._sockets:
            sock.setblocking(False)
        self._acceptor = threading.Thread(
            target=self._accept_loop, name="web-acceptor", daemon=True
        )
        self._acceptor.start()

    def shutdown(self) -> None:
        """Stop accepting, close the listening sockets and open connections; returns promptly."""
        if self._closing:
            return
        self._closing = True
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        if self._acceptor is not None:
            self._acceptor.join(timeout=0.2)
        else:
            self._close_listeners()
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            # The base-class method: SSLSocket.shutdown() would tear down its SSL object under
            # the connection thread's feet; this only wakes its blocking recv().
            with contextlib.suppress(OSError):
                socket.socket.shutdown(conn, socket.SHUT_RDWR)

    def _close_listeners(self) -> None:
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    # ----------------------------------------------------------------------- accepting

    def _accept_loop(self) -> None:
        selector = selectors.DefaultSelector()
        try:
            selector.register(self._wake_r, selectors.EVENT_READ, None)
            for sock in self._sockets:
                selector.register(sock, selectors.EVENT_READ, sock)
            while not self._closing:
                for key, _ in selector.select():  # no timeout: idle means asleep
                    if key.data is None or self._closing:
                        return
                    self._accept(key.data)
        except Exception:
            log.exception("web acceptor failed")
        finally:
            selector.close()
            self._close_listeners()

    def _accept(self, listener: socket.socket) -> None:
        try:
            conn, peer = listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                log.warning("cannot accept a connection: %s", exc.strerror)
                time.sleep(0.1)  # out of descriptors: back off instead of spinning
            else:
                # accept(2): pending network errors (EPROTO, ENETDOWN, ...) are per connection
                log.debug("accept failed: %s", exc)
            return
        if not self._slots.acquire(blocking=False):
            # Over the cap: answer at once instead of queueing behind slow clients.
            log.debug("refusing %s: %d connections open", peer, self._max_connections)
            with contextlib.suppress(OSError):
                if self._ssl_context is None:
                    conn.setblocking(False)
                    with contextlib.suppress(BlockingIOError):
                        conn.recv(65536)  # what already came: fewer resets hiding the answer
                    conn.send(_OVERLOADED)
                    conn.shutdown(socket.SHUT_WR)
            conn.close()
            return
        try:
            thread = threading.Thread(
                target=self._serve_connection, args=(conn, peer), name="web-conn", daemon=True
            )
            thread.start()
        except RuntimeError:
            conn.close()
            self._slots.release()

    # ----------------------------------------------------------------------- one connection

    def _serve_connection(self, conn: socket.socket, peer: object) -> None:
        sock: socket.socket = conn
        tracked = False
        try:
            conn.settimeout(self._request_timeout)
            if conn.family in (socket.AF_INET, socket.AF_INET6):
                with contextlib.suppress(OSError):
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._connections_lock:
                if self._closing:
                    return
                self._connections.add(conn)
                tracked = True
            if self._ssl_context is not None:
                wrapped = self._handshake(conn, peer)
                if wrapped is None:
                    return
                with self._connections_lock:
                    self._connections.discard(conn)
                    self._connections.add(wrapped)
                sock = wrapped
                if self._closing:
                    return
            self._serve_requests(sock, peer)
        except (OSError, ValueError) as exc:
            if log.isEnabledFor(logging.DEBUG):
                log.debug("connection from %s: %s", peer, exc)
        except Exception:
            log.exception("unexpected error serving %s", peer)
        finally:
            if tracked:
                with self._connections_lock:
                    self._connections.discard(conn)
                    self._connections.discard(sock)
            with contextlib.suppress(OSError):
                sock.close()
            self._slots.release()

    def _handshake(self, conn: socket.socket, peer: object) -> ssl.SSLSocket | None:
        assert self._ssl_context is not None
        first = conn.recv(1, socket.MSG_PEEK)
        if not first:
            return None
        if first[0] != 0x16:  # not a TLS handshake record: most likely plain HTTP
            with contextlib.suppress(OSError):
                conn.sendall(_PLAIN_TO_TLS)
                _drain(conn)
            return None
        try:
            wrapped = self._ssl_context.wrap_socket(
                conn, server_side=True, do_handshake_on_connect=False
            )
        except (ssl.SSLError, OSError) as exc:
            log.debug("TLS setup with %s failed: %s", peer, exc)
            return None
        try:
            wrapped.do_handshake()
        except (ssl.SSLError, OSError) as exc:
            log.debug("TLS handshake with %s failed: %s", peer, exc)
            wrapped.close()
            return None
        if self._allowed_sans and not self._san_allowed(wrapped):
            log.debug("client certificate of %s has no allowed SAN", peer)
            wrapped.close()
            return None
        return wrapped

    def _san_allowed(self, sock: ssl.SSLSocket) -> bool:
        cert = sock.getpeercert()
        if not cert:
            return False
        return any(
            entry[1] in self._allowed_sans
            for entry in cert.get("subjectAltName", ())
            if isinstance(entry, tuple) and len(entry) == 2
        )

    def _serve_requests(self, sock: socket.socket, peer: object) -> None:
        buf = b""
        first = True
        while not self._closing:
            # Wait for the start of a request: request_timeout on a new connection,
            # idle_timeout between keep-alive requests.
            buf = buf.lstrip(b"\r\n")
            if not buf:
                sock.settimeout(self._request_timeout if first else self._idle_timeout)
                try:
                    chunk = sock.recv(65536)
                except TimeoutError:
                    return
                if not chunk:
                    return
                buf = chunk.lstrip(b"\r\n")
                if not buf:
                    continue
            first = False
            deadline = time.monotonic() + self._request_timeout
            end, rest = _find_head_end(buf)
            while end < 0:
                if len(buf) > MAX_HEAD or (
                    len(buf) > MAX_REQUEST_LINE and b"\n" not in buf[:MAX_REQUEST_LINE]
                ):
                    status = 431 if b"\n" in buf[:MAX_REQUEST_LINE] else 414
                    self._send_error(sock, status, "request head too large")
                    return
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._send_error(sock, 408, "request head not received in time")
                    return
                sock.settimeout(remaining)
                try:
                    chunk = sock.recv(65536)
                except TimeoutError:
                    self._send_error(sock, 408, "request head not received in time")
                    return
                if not chunk:
                    return
                buf += chunk
                end, rest = _find_head_end(buf)
            if end > MAX_HEAD or buf.find(b"\n", 0, MAX_REQUEST_LINE) < 0:
                line_too_long = buf.find(b"\n", 0, MAX_REQUEST_LINE) < 0
                status = 414 if line_too_long else 431
                self._send_error(sock, status, "request head too large")
                return
            head = buf[:end]
            buf = buf[rest:]
            sock.settimeout(self._request_timeout)  # bounds sending the answer
            try:
                request = _parse_head(head)
            except _HTTPError as exc:
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("bad request from %s: %s", peer, exc)
                self._send_error(sock, exc.status, str(exc))
                return
            if not self._answer(sock, request, peer):
                return
            if request.close:
                return

    def _send_error(self, sock: socket.socket, status: int, message: str) -> None:
        with contextlib.suppress(OSError):
            self._send(sock, status, _TEXT, (message + "\n").encode(), b"", False, True)
            _drain(sock)

    def _send(
        self,
        sock: socket.socket,
        status: int,
        content_type: bytes,
        body: bytes,
        extra: bytes,
        head_only: bool,
        close: bool,
    ) -> None:
        head = b"".join(
            (
                b"HTTP/1.1 %d %s\r\nDate: " % (status, _REASONS[status].encode()),
                _http_date(),
                b"\r\nContent-Type: ",
                content_type,
                b"\r\nContent-Length: %d\r\n" % len(body),
                extra,
                self._extra_headers,
                b"Connection: close\r\n\r\n" if close else b"\r\n",
            )
        )
        sock.sendall(head if head_only else head + body)

    def _answer(self, sock: socket.socket, request: _Request, peer: object) -> bool:
        """Send the response; returns False when the connection must close."""
        headers = request.headers
        close = request.close
        head_only = request.method == b"HEAD"
        if self._auth is not None:
            verdict = self._authorized(headers.get(b"authorization"))
            if verdict is not True:
                if verdict is None:
                    self._send(sock, 503, _TEXT, b"Too many authentication attempts.\n",
                               b"Retry-After: 1\r\n", head_only, close)
                else:
                    self._send(sock, 401, _TEXT, b"Unauthorized\n", _CHALLENGE, head_only, close)
                return not close
        route = self._routes.get(request.path)
        if route is None:
            self._send(sock, 404, _TEXT, b"404 page not found\n", b"", head_only, close)
            return not close
        if request.method != b"GET" and not head_only:
            self._send(sock, 405, _TEXT, b"Method Not Allowed\n", b"Allow: GET, HEAD\r\n",
                       head_only, close)
            return not close
        if route == _METRICS:
            accept = headers.get(b"accept")
            openmetrics = accept is not None and self._wants_openmetrics(accept.decode("latin-1"))
            encoding = headers.get(b"accept-encoding")
            gzip = encoding is not None and self._accepts_gzip(encoding.decode("latin-1"))
            try:
                body = self._source.exposition(openmetrics, gzip)
            except Exception:
                log.exception("rendering the exposition failed")
                self._send(sock, 500, _TEXT, b"exposition failed\n", b"", head_only, close)
                return not close
            self._send(
                sock,
                200,
                (OPENMETRICS_CONTENT_TYPE if openmetrics else TEXT_CONTENT_TYPE).encode(),
                body,
                b"Content-Encoding: gzip\r\nVary: Accept, Accept-Encoding\r\n"
                if gzip
                else b"Vary: Accept, Accept-Encoding\r\n",
                head_only,
                close,
            )
        elif route == _HEALTHY:
            self._send(sock, 200, _TEXT, b"Healthy\n", b"", head_only, close)
        elif route == _READY:
            if self._source.ready():
                self._send(sock, 200, _TEXT, b"Ready\n", b"", head_only, close)
            else:
                self._send(sock, 503, _TEXT, b"Not ready\n", b"", head_only, close)
        else:
            self._send(sock, 200, _HTML, self._landing, b"", head_only, close)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s %s", peer, request.method.decode(), request.path.decode("latin-1"))
        return not close

    def _authorized(self, header: bytes | None) -> bool | None:
        assert self._auth is not None
        if header is None:
            return False
        scheme, _, encoded = header.partition(b" ")
        if scheme.lower() != b"basic":
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        user, sep, password = decoded.partition(b":")
        if not sep:
            return False
        try:
            user_name = user.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return self._auth.check(user_name, password)


def _default_landing(telemetry_path: str) -> bytes:
    return landing_page("unknown", telemetry_path, {})
