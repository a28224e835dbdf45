"""The ``--web.config.file``: TLS and basic auth in the Prometheus exporter-toolkit YAML format.

Everything is checked when the file is loaded (field names and types, readable certificate and
key that match, CA file, bcrypt hashes, client_auth_type), and the ``ssl.SSLContext`` is built
then, so a bad file stops the exporter at start-up with a message naming the file and the field
instead of failing the first scrape.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

__all__ = [
    "CLIENT_AUTH_TYPES",
    "TLSConfig",
    "WebConfig",
    "WebConfigError",
    "load_web_config",
]


class WebConfigError(ValueError):
    """The web config file is unreadable or invalid; the message names the file and the field."""


# exporter-toolkit's names (Go's tls.ClientAuthType) -> what the ssl module does.
# Python's ssl module has no verify callback, so it cannot accept a client certificate it does
# not verify: RequestClientCert / RequireAnyClientCert verify against client_ca_file like their
# Verify* counterparts (a stricter reading, never a weaker one).
CLIENT_AUTH_TYPES: Final[Mapping[str, ssl.VerifyMode]] = MappingProxyType(
    {
        "NoClientCert": ssl.CERT_NONE,
        "RequestClientCert": ssl.CERT_OPTIONAL,
        "RequireAnyClientCert": ssl.CERT_REQUIRED,
        "RequireClientCert": ssl.CERT_REQUIRED,  # older exporter-toolkit spelling
        "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
        "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
    }
)

_TLS_VERSIONS: Final[Mapping[str, ssl.TLSVersion]] = MappingProxyType(
    {
        "TLS10": ssl.TLSVersion.TLSv1,
        "TLS11": ssl.TLSVersion.TLSv1_1,
        "TLS12": ssl.TLSVersion.TLSv1_2,
        "TLS13": ssl.TLSVersion.TLSv1_3,
    }
)

# The response headers exporter-toolkit lets a config file set (http_server_config.headers).
_SETTABLE_HEADERS: Final = frozenset(
    {
        "Strict-Transport-Security",
        "X-Content-Type-Options",
        "X-Frame-Options",
        "X-XSS-Protection",
        "Content-Security-Policy",
    }
)

_TLS_KEYS: Final = frozenset(
    {
        "cert_file",
        "key_file",
        "client_ca_file",
        "client_auth_type",
        "client_allowed_sans",
        "min_version",
        "max_version",
        "prefer_server_cipher_suites",
    }
)
# Keys exporter-toolkit knows that this exporter does not implement: refused with a reason
# rather than ignored, because silently ignoring a security setting is worse than stopping.
_TLS_UNSUPPORTED: Final[Mapping[str, str]] = MappingProxyType(
    {
        "cert": "inline certificates are not supported, use cert_file",
        "key": "inline keys are not supported, use key_file",
        "client_ca": "inline CAs are not supported, use client_ca_file",
        "cipher_suites": "not supported (OpenSSL's defaults apply; raise min_version instead)",
        "curve_preferences": "not supported (OpenSSL's defaults apply)",
    }
)

_BCRYPT_HASH: Final = re.compile(rb"\$2[abxy]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")


@dataclass(frozen=True)
class TLSConfig:
    """``tls_server_config``: paths are absolute (relative ones resolve against the config file)."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None
    client_auth_type: str
    min_version: str
    max_version: str | None = None
    client_allowed_sans: tuple[str, ...] = ()
    prefer_server_cipher_suites: bool = True
    # Built and validated at load time; shared by every connection (SSLContext is thread-safe).
    ssl_context: ssl.SSLContext = field(
        default_factory=lambda: ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER),
        compare=False,
        repr=False,
    )


@dataclass(frozen=True)
class WebConfig:
    """The parsed web config: TLS (None for plain HTTP), users -> bcrypt hash, extra headers.

    ``basic_auth_health`` (this exporter's own key, not exporter-toolkit's): with basic auth on,
    whether /-/healthy and /-/ready ask for credentials too. Off by default: they tell nothing
    but liveness, and health checks and probes (Docker, Kubernetes) send no credentials.
    """

    tls: TLSConfig | None = None
    basic_auth_users: Mapping[str, bytes] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    basic_auth_health: bool = False


class _Fields:
    """Type-checked access to one YAML mapping, with error messages that name the field."""

    def __init__(self, source: str, prefix: str, data: Mapping[Any, Any]) -> None:
        self._source = source
        self._prefix = prefix
        self._data = data

    def error(self, key: str | None, message: str) -> WebConfigError:
        name = f"{self._prefix}.{key}" if self._prefix and key else (key or self._prefix)
        where = f"{name}: " if name else ""
        return WebConfigError(f"web config {self._source}: {where}{message}")

    def check_keys(self, known: frozenset[str], unsupported: Mapping[str, str]) -> None:
        for key in self._data:
            if not isinstance(key, str):
                raise self.error(None, f"field name {key!r} is not a string")
            if key in unsupported:
                raise self.error(key, unsupported[key])
            if key not in known:
                raise self.error(key, f"unknown field (known: {', '.join(sorted(known))})")

    def string(self, key: str) -> str | None:
        value = self._data.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.error(key, f"must be a string, not {_yaml_type(value)}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self._data.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.error(key, f"must be true or false, not {_yaml_type(value)}")
        return value

    def mapping(self, key: str) -> Mapping[Any, Any]:
        value = self._data.get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.error(key, f"must be a mapping, not {_yaml_type(value)}")
        return value

    def string_list(self, key: str) -> tuple[str, ...]:
        value = self._data.get(key)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(key, "must be a list of strings")
        return tuple(value)


def _yaml_type(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return type(value).__name__


def _read_file(fields: _Fields, key: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise fields.error(key, f"no such file: {path}") from None
    except IsADirectoryError:
        raise fields.error(key, f"is a directory, not a file: {path}") from None
    except OSError as exc:
        raise fields.error(key, f"cannot read {path}: {exc.strerror or exc}") from None


def _has_certificate(path: Path) -> bool:
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        probe.load_verify_locations(cafile=str(path))
    except (ssl.SSLError, ValueError):
        return False
    return probe.cert_store_stats()["x509"] > 0


def _load_tls(source: str, base: Path, data: Mapping[Any, Any]) -> TLSConfig | None:
    fields = _Fields(source, "tls_server_config", data)
    fields.check_keys(_TLS_KEYS, _TLS_UNSUPPORTED)
    cert_name = fields.string("cert_file") or ""
    key_name = fields.string("key_file") or ""
    ca_name = fields.string("client_ca_file") or ""
    auth_name = fields.string("client_auth_type") or ""
    if all(value is None for value in data.values()):
        return None  # an empty tls_server_config means plain HTTP, as in exporter-toolkit
    # Any other key asks for TLS (exporter-toolkit serves plain HTTP when the four above are
    # empty, whatever else is set): without a certificate that is an error, never plain HTTP.
    if not cert_name:
        raise fields.error("cert_file", "missing (key_file is set)" if key_name else "missing")
    if not key_name:
        raise fields.error("key_file", "missing")

    if not auth_name:
        auth_name = "RequireAndVerifyClientCert" if ca_name else "NoClientCert"
    if auth_name not in CLIENT_AUTH_TYPES:
        raise fields.error(
            "client_auth_type",
            f"unknown value {auth_name!r} (one of: {', '.join(CLIENT_AUTH_TYPES)})",
        )
    verify_mode = CLIENT_AUTH_TYPES[auth_name]
    if verify_mode is ssl.CERT_NONE and ca_name:
        raise fields.error(
            "client_ca_file", "set, but client_auth_type is NoClientCert (it would be unused)"
        )
    if verify_mode is not ssl.CERT_NONE and not ca_name:
        raise fields.error("client_ca_file", f"required by client_auth_type {auth_name}")

    min_name = fields.string("min_version") or "TLS12"
    if min_name not in _TLS_VERSIONS:
        raise fields.error(
            "min_version", f"unknown value {min_name!r} (one of: {', '.join(_TLS_VERSIONS)})"
        )
    max_name = fields.string("max_version")
    if max_name is not None:
        if max_name not in _TLS_VERSIONS:
            raise fields.error(
                "max_version", f"unknown value {max_name!r} (one of: {', '.join(_TLS_VERSIONS)})"
            )
        if _TLS_VERSIONS[max_name] < _TLS_VERSIONS[min_name]:
            raise fields.error("max_version", f"{max_name} is lower than min_version {min_name}")
    allowed_sans = fields.string_list("client_allowed_sans")
    if allowed_sans and verify_mode is ssl.CERT_NONE:
        raise fields.error("client_allowed_sans", "needs a client_auth_type that checks certs")
    prefer_server = fields.boolean("prefer_server_cipher_suites", True)

    cert_file = base / cert_name
    key_file = base / key_name
    ca_file = base / ca_name if ca_name else None
    _read_file(fields, "cert_file", cert_file)
    _read_file(fields, "key_file", key_file)
    if not _has_certificate(cert_file):
        raise fields.error("cert_file", f"no PEM certificate in {cert_file}")

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.minimum_version = _TLS_VERSIONS[min_name]
        if max_name is not None:
            context.maximum_version = _TLS_VERSIONS[max_name]
    except (ValueError, ssl.SSLError) as exc:
        raise fields.error("min_version", f"refused by OpenSSL: {exc}") from None
    try:
        context.load_cert_chain(certfile=str(cert_file), keyfile=str(key_file))
    except (ssl.SSLError, ValueError) as exc:
        raise fields.error(
            "key_file",
            f"{key_file} holds no private key matching cert_file {cert_file} ({exc})",
        ) from None
    if ca_file is not None:
        _read_file(fields, "client_ca_file", ca_file)
        if not _has_certificate(ca_file):
            raise fields.error("client_ca_file", f"no PEM certificate in {ca_file}")
        context.load_verify_locations(cafile=str(ca_file))
    context.verify_mode = verify_mode
    # Python's server contexts start with the option set: false must clear it.
    if prefer_server:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    context.set_alpn_protocols(["http/1.1"])

    return TLSConfig(
        cert_file=cert_file,
        key_file=key_file,
        client_ca_file=ca_file,
        client_auth_type=auth_name,
        min_version=min_name,
        max_version=max_name,
        client_allowed_sans=allowed_sans,
        prefer_server_cipher_suites=prefer_server,
        ssl_context=context,
    )


def _load_users(source: str, data: Mapping[Any, Any]) -> Mapping[str, bytes]:
    fields = _Fields(source, "basic_auth_users", data)
    users: dict[str, bytes] = {}
    for user, hashed in data.items():
        if not isinstance(user, str) or not user:
            raise fields.error(None, f"user name {user!r} must be a non-empty string")
        if ":" in user:
            raise fields.error(user, "a user name cannot contain ':' (HTTP basic auth)")
        if not isinstance(hashed, str):
            raise fields.error(user, f"must be a bcrypt hash string, not {_yaml_type(hashed)}")
        encoded = hashed.encode("ascii", "replace")
        if not _BCRYPT_HASH.fullmatch(encoded):
            raise fields.error(user, "not a bcrypt hash ($2a$, $2b$ or $2y$, cost 04-31)")
        users[user] = encoded
    return MappingProxyType(users)


def _load_headers(source: str, data: Mapping[Any, Any]) -> Mapping[str, str]:
    fields = _Fields(source, "http_server_config", data)
    fields.check_keys(frozenset({"headers", "http2"}), {})
    fields.boolean("http2", True)  # accepted for compatibility; this server speaks HTTP/1.1
    headers: dict[str, str] = {}
    by_lower = {name.lower(): name for name in _SETTABLE_HEADERS}
    for name, value in fields.mapping("headers").items():
        key = f"headers.{name}"
        if not isinstance(name, str) or name.lower() not in by_lower:
            settable = ", ".join(sorted(by_lower.values()))
            raise fields.error(key, f"cannot be set (settable: {settable})")
        if not isinstance(value, str) or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
            raise fields.error(key, "must be a string without control characters")
        headers[by_lower[name.lower()]] = value
    return MappingProxyType(headers)


def load_web_config(path: str | Path) -> WebConfig:
    """Read and validate a web config file.

    Returns the WebConfig with its ssl.SSLContext built. Raises WebConfigError (a ValueError)
    naming the file and the offending field for anything unreadable, unknown or invalid.
    """
    source = str(path)
    config_path = Path(path)
    top = _Fields(source, "", {})
    try:
        text = config_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise top.error(None, "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise top.error(None, f"cannot read: {exc}") from None
    import yaml  # only --web.config.file needs it (0.4 MB resident, 12 ms: bench/README.md)

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise top.error(None, f"not valid YAML: {exc}") from None
    if data is None:
        return WebConfig()
    if not isinstance(data, Mapping):
        raise top.error(None, f"must be a YAML mapping, not {_yaml_type(data)}")
    fields = _Fields(source, "", data)
    fields.check_keys(
        frozenset(
            {"tls_server_config", "basic_auth_users", "basic_auth_health", "http_server_config"}
        ),
        {"rate_limit": "not supported"},
    )
    base = config_path.resolve().parent
    users = _load_users(source, fields.mapping("basic_auth_users"))
    protect_health = fields.boolean("basic_auth_health", False)
    if protect_health and not users:
        raise fields.error(
            "basic_auth_health", "true, but basic_auth_users is empty (it would be unused)"
        )
    return WebConfig(
        tls=_load_tls(source, base, fields.mapping("tls_server_config")),
        basic_auth_users=users,
        headers=_load_headers(source, fields.mapping("http_server_config")),
        basic_auth_health=protect_health,
    )
