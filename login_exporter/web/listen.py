"""Listen addresses: Prometheus-style ``host:port`` text to bound, listening sockets."""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Sequence

__all__ = ["bind_listen_addresses", "parse_listen_address"]


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
