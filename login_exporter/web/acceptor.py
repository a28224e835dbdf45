"""Accepting connections: one thread asleep on the listening sockets, one thread per client.

What the stdlib's socketserver lacks, and why this exists:
- The acceptor blocks in ``select()`` with no timeout over every listening socket and a wake-up
  pipe, so an idle exporter never wakes up (``serve_forever`` polls twice a second);
  ``shutdown()`` writes to the pipe.
- A cap on concurrent connections answers 503 at once instead of queueing behind slow clients,
  and one client address may hold only half of it (``Slots``), so one address holding
  connections open (a slowloris) cannot starve Prometheus scraping from another address.
- TLS handshakes run on the connection's own thread, never on the accept thread, so a client
  that stalls its handshake holds only itself up; ``client_allowed_sans`` is checked there too.
- If the acceptor fails, ``on_failure`` is told, so the process can exit and be restarted
  instead of staying up serving nothing.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import os
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from typing import Final

from login_exporter.web.clientcert import AllowedSans

__all__ = ["Acceptor", "Serve", "Slots", "address_share", "client_address"]

log = logging.getLogger("login_exporter.web")

Serve = Callable[[socket.socket, object], None]

_OVERLOADED: Final = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 22\r\nRetry-After: 1\r\nConnection: close\r\n\r\nToo many connections.\n"
)
_PLAIN_TO_TLS: Final = (
    b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Connection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
)


def address_share(max_connections: int) -> int:
    """Return how many of ``max_connections`` one client address may hold: half, at least 1.

    Half leaves the other half to every other address whatever one address does; Prometheus
    needs one slot per scrape. Raises ValueError when ``max_connections`` is below 1.
    """
    if max_connections < 1:
        raise ValueError(f"max_connections must be at least 1, not {max_connections}")
    return max(1, max_connections // 2)


def client_address(peer: object) -> str:
    """Return the address a connection's slot is counted under.

    The IP address for TCP (an IPv4-mapped IPv6 address as the IPv4 address, so that one client
    counts once on a dual-stack listener); "loopback" for any loopback address, because a local
    user can connect from every address of 127.0.0.0/8 and ::1 (one share for all of them, so
    that several cannot fill the cap together); "unix" for any unix-socket peer.
    """
    if not (isinstance(peer, tuple) and peer and isinstance(peer[0], str)):
        return "unix"
    host = peer[0]
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])  # fe80::1%eth0: drop the zone
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return "loopback" if address.is_loopback else str(address)


class Slots:
    """The connection cap and each client address's share of it (``address_share``).

    Taken on the accept thread, given back on the connection's thread: one lock guards both
    counts.
    """

    def __init__(self, max_connections: int) -> None:
        self.max_connections = max_connections
        self.per_address = address_share(max_connections)
        self._open = 0
        self._by_address: dict[str, int] = {}
        self._lock = threading.Lock()

    def take(self, address: str) -> bool:
        """Take a slot for a connection from ``address``.

        Returns False, taking nothing, when the cap or the address's share is full.
        """
        with self._lock:
            held = self._by_address.get(address, 0)
            if self._open >= self.max_connections or held >= self.per_address:
                return False
            self._open += 1
            self._by_address[address] = held + 1
            return True

    def give_back(self, address: str) -> None:
        """Return a slot taken for ``address``. Raises ValueError when it holds none."""
        with self._lock:
            held = self._by_address.get(address, 0)
            if held == 0:
                raise ValueError(f"no connection slot held for {address!r}")
            self._open -= 1
            if held == 1:
                del self._by_address[address]  # forget addresses: the dict stays small
            else:
                self._by_address[address] = held - 1

    def held(self, address: str) -> int:
        """Return how many slots ``address`` holds now."""
        with self._lock:
            return self._by_address.get(address, 0)


class Acceptor:
    """Accepts on listening sockets and runs ``serve(sock, peer)`` on a thread per connection.

    ``sock`` is the TLS-wrapped socket when ``ssl_context`` is given, with the handshake done
    and the client certificate checked against ``allowed_sans``. ``serve`` owns nothing: the
    acceptor closes the socket after it returns and frees its slot. At most
    ``max_connections`` are open, at most ``address_share(max_connections)`` from one client
    address; a connection beyond either gets 503 at once.
    """

    def __init__(
        self,
        sockets: Sequence[socket.socket],
        serve: Serve,
        *,
        ssl_context: ssl.SSLContext | None = None,
        allowed_sans: AllowedSans | None = None,
        max_connections: int = 512,
        handshake_timeout: float = 10.0,
        on_failure: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._sockets = list(sockets)
        self._serve = serve
        self._ssl_context = ssl_context
        self._allowed_sans = allowed_sans or AllowedSans(())
        self._slots = Slots(max_connections)
        self._handshake_timeout = handshake_timeout
        self._on_failure = on_failure
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self.closing = False
        self.failure: BaseException | None = None
        self._wake_r, self._wake_w = os.pipe()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the acceptor thread and return at once. Raises RuntimeError if started twice."""
        if self._thread is not None:
            raise RuntimeError("already started")
        for sock in self._sockets:
            sock.setblocking(False)
        self._thread = threading.Thread(target=self._run, name="web-acceptor", daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        """Stop accepting, close the listening sockets, wake every open connection."""
        if self.closing:
            return
        self.closing = True
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=0.2)
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

    # -- accepting --------------------------------------------------------------------------------

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        try:
            selector.register(self._wake_r, selectors.EVENT_READ, None)
            for sock in self._sockets:
                selector.register(sock, selectors.EVENT_READ, sock)
            while not self.closing:
                for key, _ in selector.select():  # no timeout: idle means asleep
                    if key.data is None or self.closing:
                        return
                    self._accept(key.data)
        except BaseException as exc:
            if self.closing:
                return  # shutdown() closed what it was using: not a failure
            self.failure = exc
            log.exception("web acceptor failed: no more connections are accepted")
            if self._on_failure is not None:
                self._on_failure(exc)
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
        address = client_address(peer)
        if not self._slots.take(address):
            self._refuse(conn, peer, address)
            return
        try:
            thread = threading.Thread(
                target=self._connection, args=(conn, peer, address), name="web-conn", daemon=True
            )
            thread.start()
        except RuntimeError:
            conn.close()
            self._slots.give_back(address)

    def _refuse(self, conn: socket.socket, peer: object, address: str) -> None:
        # Over the cap or the address's share: answer at once instead of queueing.
        log.debug("refusing %s: the cap is %d connections, %d per address, it holds %d",
                  peer, self._slots.max_connections, self._slots.per_address,
                  self._slots.held(address))  # fmt: skip
        with contextlib.suppress(OSError):
            if self._ssl_context is None:
                conn.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    conn.recv(65536)  # what already came: fewer resets hiding the answer
                conn.send(_OVERLOADED)
                conn.shutdown(socket.SHUT_WR)
        conn.close()

    # -- one connection ---------------------------------------------------------------------------

    def _connection(self, conn: socket.socket, peer: object, address: str) -> None:
        sock: socket.socket = conn
        tracked = False
        try:
            conn.settimeout(self._handshake_timeout)
            if conn.family in (socket.AF_INET, socket.AF_INET6):
                with contextlib.suppress(OSError):
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._connections_lock:
                if self.closing:
                    return
                self._connections.add(conn)
                tracked = True
            if self._ssl_context is not None:
                wrapped = self._handshake(self._ssl_context, conn, peer)
                if wrapped is None:
                    return
                with self._connections_lock:
                    self._connections.discard(conn)
                    self._connections.add(wrapped)
                sock = wrapped
                if self.closing:
                    return
            self._serve(sock, peer)
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
            self._slots.give_back(address)

    def _handshake(
        self, context: ssl.SSLContext, conn: socket.socket, peer: object
    ) -> ssl.SSLSocket | None:
        first = conn.recv(1, socket.MSG_PEEK)
        if not first:
            return None
        if first[0] != 0x16:  # not a TLS handshake record: most likely plain HTTP
            with contextlib.suppress(OSError):
                conn.sendall(_PLAIN_TO_TLS)
                drain(conn)
            return None
        try:
            wrapped = context.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        except (ssl.SSLError, OSError) as exc:
            log.debug("TLS setup with %s failed: %s", peer, exc)
            return None
        try:
            wrapped.do_handshake()
        except (ssl.SSLError, OSError) as exc:
            log.debug("TLS handshake with %s failed: %s", peer, exc)
            wrapped.close()
            return None
        if self._allowed_sans and not self._allowed_sans.permit(wrapped.getpeercert()):
            log.debug("client certificate of %s has no allowed SAN", peer)
            wrapped.close()
            return None
        return wrapped


def drain(sock: socket.socket) -> None:
    """Half-close after an error answer and read what the client still sends (briefly).

    Closing with unread bytes in the receive queue makes the kernel send a reset, which can
    destroy the answer before the client reads it. Raises OSError from the socket.
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
