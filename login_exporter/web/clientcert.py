"""``client_allowed_sans``: does a verified client certificate name an allowed subject?"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

__all__ = ["AllowedSans"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class AllowedSans:
    """The web config's ``client_allowed_sans``, matched against a certificate's SANs.

    IP addresses are compared as addresses, not as text: ``getpeercert()`` spells an IPv6 SAN
    out in full and in capitals (``2001:DB8:0:0:0:0:0:1``) while a config says ``2001:db8::1``.
    Names (DNS, email, URI) are compared as written, as exporter-toolkit does.
    """

    def __init__(self, allowed: Iterable[str]) -> None:
        self._names = frozenset(allowed)
        self._addresses = frozenset(filter(None, map(_address, self._names)))

    def __bool__(self) -> bool:
        return bool(self._names)

    def permit(self, cert: dict[str, Any] | None) -> bool:
        """Return whether ``cert`` (as ``SSLSocket.getpeercert()`` gives it) has an allowed SAN."""
        if not cert:
            return False
        for entry in cert.get("subjectAltName", ()):
            if not (isinstance(entry, tuple) and len(entry) == 2):
                continue
            kind, value = entry
            if kind == "IP Address":
                if _address(value) in self._addresses:
                    return True
            elif value in self._names:
                return True
        return False


def _address(text: object) -> IPAddress | None:
    if not isinstance(text, str):
        return None
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None
