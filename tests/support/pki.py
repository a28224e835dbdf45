"""Certificates for TLS tests, made with the real ``openssl`` command."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pki:
    """Certificates made with the openssl CLI: a server CA and a client CA, EC P-256 keys."""

    ca: Path  # signs the server certificate
    server_cert: Path  # SAN: DNS:localhost, IP:127.0.0.1, IP:::1
    server_key: Path
    client_ca: Path  # signs the client certificates
    client_cert: Path  # SAN: DNS:scraper.example
    client_key: Path
    other_client_cert: Path  # same client CA, SAN: DNS:intruder.example
    other_client_key: Path
    ip_client_cert: Path  # same client CA, SAN: IP:2001:db8::1, IP:192.0.2.7
    ip_client_key: Path
    rogue_cert: Path  # self-signed, SAN: DNS:scraper.example
    rogue_key: Path


def _openssl(directory: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)


def _issue(directory: Path, name: str, ca: str, san: str, usage: str) -> None:
    _openssl(
        directory, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}",
    )
    (directory / f"{name}.ext").write_text(
        f"subjectAltName={san}\nextendedKeyUsage={usage}\nbasicConstraints=CA:FALSE\n"
    )
    _openssl(
        directory, "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey",
        f"{ca}.key", "-CAcreateserial", "-out", f"{name}.pem", "-days", "2",
        "-extfile", f"{name}.ext",
    )


def _self_signed(directory: Path, name: str, extra: tuple[str, ...] = ()) -> None:
    _openssl(
        directory, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
        "-subj", f"/CN={name}", *extra,
    )


def make_pki(directory: Path) -> Pki:
    """Create a throw-away PKI in directory (takes well under a second)."""
    directory.mkdir(parents=True, exist_ok=True)
    _self_signed(directory, "ca")
    _self_signed(directory, "client-ca")
    _issue(directory, "server", "ca", "DNS:localhost,IP:127.0.0.1,IP:::1", "serverAuth")
    _issue(directory, "client", "client-ca", "DNS:scraper.example", "clientAuth")
    _issue(directory, "other-client", "client-ca", "DNS:intruder.example", "clientAuth")
    _issue(directory, "ip-client", "client-ca", "IP:2001:db8::1,IP:192.0.2.7", "clientAuth")
    _self_signed(directory, "rogue", ("-addext", "subjectAltName=DNS:scraper.example"))
    d = directory
    return Pki(
        ca=d / "ca.pem",
        server_cert=d / "server.pem",
        server_key=d / "server.key",
        client_ca=d / "client-ca.pem",
        client_cert=d / "client.pem",
        client_key=d / "client.key",
        other_client_cert=d / "other-client.pem",
        other_client_key=d / "other-client.key",
        ip_client_cert=d / "ip-client.pem",
        ip_client_key=d / "ip-client.key",
        rogue_cert=d / "rogue.pem",
        rogue_key=d / "rogue.key",
    )
