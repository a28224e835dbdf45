"""load_web_config: the exporter-toolkit YAML format, with real certificates and bcrypt hashes."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path

import bcrypt
import pytest
import yaml

from login_exporter.webconfig import WebConfig, WebConfigError, load_web_config
from tests.support.pki import Pki, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def a_hash() -> str:
    return bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "web.yml"
    path.write_text(text)
    return path


def load_error(path: Path) -> str:
    with pytest.raises(WebConfigError) as info:
        load_web_config(path)
    message = str(info.value)
    assert message.startswith(f"web config {path}: "), message
    return message


# ------------------------------------------------------------------------------ valid files


def test_empty_file_means_plain_http_without_auth(tmp_path: Path) -> None:
    config = load_web_config(write(tmp_path, ""))
    assert config == WebConfig()
    assert config.tls is None
    assert dict(config.basic_auth_users) == {}


def test_empty_tls_section_means_plain_http(tmp_path: Path) -> None:
    assert load_web_config(write(tmp_path, "tls_server_config: {}\n")).tls is None


@pytest.mark.parametrize("fields", [
    "min_version: TLS13", "max_version: TLS13", "prefer_server_cipher_suites: false",
    "client_allowed_sans: [a.example]",
])  # fmt: skip
def test_a_tls_section_without_a_certificate_is_refused_not_served_as_plain_http(
    tmp_path: Path, fields: str
) -> None:
    """Whoever wrote a TLS setting asked for TLS: plain HTTP in its place would be silent."""
    message = load_error(write(tmp_path, f"tls_server_config: {{{fields}}}\n"))
    assert "tls_server_config.cert_file: missing" in message


def test_full_config_builds_a_verifying_ssl_context(
    tmp_path: Path, pki: Pki, a_hash: str
) -> None:
    path = write(
        tmp_path,
        f"""
tls_server_config:
  cert_file: {pki.server_cert}
  key_file: {pki.server_key}
  client_ca_file: {pki.client_ca}
  client_auth_type: RequireAndVerifyClientCert
  client_allowed_sans: [scraper.example]
  min_version: TLS13
basic_auth_users:
  prometheus: {a_hash}
http_server_config:
  headers:
    x-frame-options: deny
""",
    )
    config = load_web_config(path)
    assert config.tls is not None
    assert config.tls.client_auth_type == "RequireAndVerifyClientCert"
    assert config.tls.client_allowed_sans == ("scraper.example",)
    context = config.tls.ssl_context
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.minimum_version == ssl.TLSVersion.TLSv1_3
    assert context.cert_store_stats()["x509_ca"] == 1
    assert bcrypt.checkpw(b"s3cret", config.basic_auth_users["prometheus"])
    assert dict(config.headers) == {"X-Frame-Options": "deny"}


def test_relative_paths_resolve_against_the_config_directory(tmp_path: Path, pki: Pki) -> None:
    conf_dir = tmp_path / "etc"
    conf_dir.mkdir()
    for src in (pki.server_cert, pki.server_key):
        (conf_dir / src.name).write_bytes(src.read_bytes())
    path = conf_dir / "web.yml"
    path.write_text("tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n")
    config = load_web_config(path)
    assert config.tls is not None
    assert config.tls.cert_file == conf_dir.resolve() / "server.pem"
    assert config.tls.client_auth_type == "NoClientCert"
    assert config.tls.min_version == "TLS12"
    assert config.tls.ssl_context.verify_mode == ssl.CERT_NONE


def test_client_ca_without_auth_type_defaults_to_require_and_verify(
    tmp_path: Path, pki: Pki
) -> None:
    path = write(
        tmp_path,
        f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.server_key}\n"
        f"  client_ca_file: {pki.client_ca}\n",
    )
    config = load_web_config(path)
    assert config.tls is not None
    assert config.tls.client_auth_type == "RequireAndVerifyClientCert"


@pytest.mark.parametrize(
    ("auth_type", "mode"),
    [
        ("RequestClientCert", ssl.CERT_OPTIONAL),
        ("RequireAnyClientCert", ssl.CERT_REQUIRED),
        ("VerifyClientCertIfGiven", ssl.CERT_OPTIONAL),
        ("RequireAndVerifyClientCert", ssl.CERT_REQUIRED),
    ],
)
def test_each_client_auth_type_sets_its_verify_mode(
    tmp_path: Path, pki: Pki, auth_type: str, mode: ssl.VerifyMode
) -> None:
    path = write(
        tmp_path,
        f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.server_key}\n"
        f"  client_ca_file: {pki.client_ca}\n  client_auth_type: {auth_type}\n",
    )
    config = load_web_config(path)
    assert config.tls is not None
    assert config.tls.ssl_context.verify_mode == mode


def test_health_endpoints_are_open_under_basic_auth_by_default(
    tmp_path: Path, a_hash: str
) -> None:
    assert WebConfig().basic_auth_health is False
    config = load_web_config(write(tmp_path, f"basic_auth_users:\n  prometheus: {a_hash}\n"))
    assert config.basic_auth_health is False


@pytest.mark.parametrize(("text", "expected"), [("true", True), ("false", False), ("~", False)])
def test_basic_auth_health_takes_a_boolean(
    tmp_path: Path, a_hash: str, text: str, expected: bool
) -> None:
    path = write(
        tmp_path, f"basic_auth_users:\n  prometheus: {a_hash}\nbasic_auth_health: {text}\n"
    )
    assert load_web_config(path).basic_auth_health is expected


def test_basic_auth_health_false_needs_no_users(tmp_path: Path) -> None:
    assert load_web_config(write(tmp_path, "basic_auth_health: false\n")) == WebConfig()


@pytest.mark.parametrize(("text", "preferred"), [("", True), ("true", True), ("false", False)])
def test_prefer_server_cipher_suites_sets_openssl_server_preference(
    tmp_path: Path, pki: Pki, text: str, preferred: bool
) -> None:
    line = f"  prefer_server_cipher_suites: {text}\n" if text else ""
    path = write(
        tmp_path,
        f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.server_key}\n"
        + line,
    )
    config = load_web_config(path)
    assert config.tls is not None and config.tls.prefer_server_cipher_suites is preferred
    options = config.tls.ssl_context.options
    assert bool(options & ssl.OP_CIPHER_SERVER_PREFERENCE) is preferred


@pytest.mark.parametrize("text", ["true", "false"])
def test_http2_is_accepted_and_changes_nothing(tmp_path: Path, text: str) -> None:
    assert load_web_config(write(tmp_path, f"http_server_config:\n  http2: {text}\n")) == (
        WebConfig()
    )


# ------------------------------------------------------------------------------ bad files


def test_missing_config_file(tmp_path: Path) -> None:
    assert "no such file" in load_error(tmp_path / "absent.yml")


def _tls(p: Pki, **fields: object) -> dict[str, object]:
    base: dict[str, object] = {"cert_file": str(p.server_cert), "key_file": str(p.server_key)}
    base.update(fields)
    return {"tls_server_config": {k: v for k, v in base.items() if v is not None}}


def _bcrypt(p: Pki) -> str:
    return bcrypt.hashpw(b"secret", bcrypt.gensalt(4)).decode()


TLS = "tls_server_config"
USERS = "basic_auth_users"
HEADERS = "http_server_config.headers"
PLAINTEXT = "plaintext-password"  # must never be echoed back
MD5_CRYPT = "$1$salt$qJH7.N4xYta3aEG/dfqo/0"
RequireAndVerify = "RequireAndVerifyClientCert"
BadCase = tuple[str, Callable[[Pki, Path], object], str]
# Every wrong field, once: (name, file content (a string is written as it is), what the error
# must say after "web config FILE: "). The real program's exit 2 is in test_bad_input.py.
BAD: list[BadCase] = [
    ("unknown top-level key", lambda p, d: {"tls_config": {}}, "tls_config: unknown field"),
    ("rate_limit", lambda p, d: {"rate_limit": {"interval": "1s"}}, "rate_limit: not supported"),
    ("top level is a list", lambda p, d: ["a"], "must be a YAML mapping, not a list"),
    ("top level is a string", lambda p, d: "hello", "must be a YAML mapping"),
    ("not YAML", lambda p, d: "tls_server_config: [unclosed", "not valid YAML"),
    ("tls section is a string", lambda p, d: {TLS: "on"}, f"{TLS}: must be a mapping"),
    ("tls section is a list", lambda p, d: {TLS: ["a"]}, f"{TLS}: must be a mapping, not a list"),
    ("cert_file is a number", lambda p, d: _tls(p, cert_file=5),
     f"{TLS}.cert_file: must be a string, not a number"),
    ("cert_file is a list", lambda p, d: _tls(p, cert_file=["a"]),
     f"{TLS}.cert_file: must be a string, not a list"),
    ("cert_file missing", lambda p, d: _tls(p, cert_file="/nonexistent/c.pem"),
     f"{TLS}.cert_file: no such file: /nonexistent/c.pem"),
    ("cert_file is a directory", lambda p, d: _tls(p, cert_file=str(d)),
     f"{TLS}.cert_file: is a directory"),
    ("cert_file holds a key", lambda p, d: _tls(p, cert_file=str(p.server_key)),
     f"{TLS}.cert_file: no PEM certificate"),
    ("cert_file unset", lambda p, d: _tls(p, cert_file=None), f"{TLS}.cert_file: missing"),
    ("key_file unset", lambda p, d: _tls(p, key_file=None), f"{TLS}.key_file: missing"),
    ("key_file missing", lambda p, d: _tls(p, key_file=str(d / "none.key")),
     f"{TLS}.key_file: no such file"),
    ("key_file of another cert", lambda p, d: _tls(p, key_file=str(p.client_key)),
     "no private key matching cert_file"),
    ("key_file holds a cert", lambda p, d: _tls(p, key_file=str(p.server_cert)),
     "holds no private key matching cert_file"),
    ("key_file is a boolean", lambda p, d: _tls(p, key_file=True),
     f"{TLS}.key_file: must be a string, not a boolean"),
    ("client_ca_file missing",
     lambda p, d: _tls(p, client_ca_file=str(d / "none.pem"), client_auth_type=RequireAndVerify),
     f"{TLS}.client_ca_file: no such file"),
    ("client_ca_file holds a key",
     lambda p, d: _tls(p, client_ca_file=str(p.server_key), client_auth_type=RequireAndVerify),
     f"{TLS}.client_ca_file: no PEM certificate"),
    ("client_ca_file with NoClientCert",
     lambda p, d: _tls(p, client_ca_file=str(p.ca), client_auth_type="NoClientCert"),
     f"{TLS}.client_ca_file: set, but client_auth_type is NoClientCert"),
    ("client_ca_file is a mapping", lambda p, d: _tls(p, client_ca_file={"a": 1}),
     f"{TLS}.client_ca_file: must be a string, not a mapping"),
    ("client_auth_type unknown", lambda p, d: _tls(p, client_auth_type="Sometimes"),
     f"{TLS}.client_auth_type: unknown value 'Sometimes' (one of: NoClientCert"),
    ("client_auth_type lowercase",
     lambda p, d: _tls(p, client_auth_type=RequireAndVerify.lower(), client_ca_file=str(p.ca)),
     f"{TLS}.client_auth_type: unknown value"),
    ("client_auth_type is a number", lambda p, d: _tls(p, client_auth_type=3),
     f"{TLS}.client_auth_type: must be a string, not a number"),
    ("verifying client_auth_type without a CA",
     lambda p, d: _tls(p, client_auth_type=RequireAndVerify),
     f"{TLS}.client_ca_file: required by client_auth_type {RequireAndVerify}"),
    ("min_version unknown", lambda p, d: _tls(p, min_version="TLS14"),
     f"{TLS}.min_version: unknown value 'TLS14'"),
    ("min_version is a number", lambda p, d: _tls(p, min_version=1.2),
     f"{TLS}.min_version: must be a string, not a number"),
    ("max_version unknown", lambda p, d: _tls(p, max_version="SSL3"),
     f"{TLS}.max_version: unknown value 'SSL3'"),
    ("max_version below min_version",
     lambda p, d: _tls(p, min_version="TLS13", max_version="TLS12"),
     f"{TLS}.max_version: TLS12 is lower than min_version TLS13"),
    ("client_allowed_sans not a list",
     lambda p, d: _tls(p, client_allowed_sans="a", client_ca_file=str(p.ca)),
     f"{TLS}.client_allowed_sans: must be a list of strings"),
    ("client_allowed_sans without client certs",
     lambda p, d: _tls(p, client_allowed_sans=["a"]),
     f"{TLS}.client_allowed_sans: needs a client_auth_type that checks certs"),
    ("prefer_server_cipher_suites is a string",
     lambda p, d: _tls(p, prefer_server_cipher_suites="yes"),
     f"{TLS}.prefer_server_cipher_suites: must be true or false"),
    ("cipher_suites", lambda p, d: _tls(p, cipher_suites=["TLS_AES_128_GCM_SHA256"]),
     f"{TLS}.cipher_suites: not supported"),
    ("curve_preferences", lambda p, d: _tls(p, curve_preferences=["X25519"]),
     f"{TLS}.curve_preferences: not supported"),
    ("inline cert", lambda p, d: _tls(p, cert="-----BEGIN CERTIFICATE-----"),
     f"{TLS}.cert: inline certificates are not supported"),
    ("unknown tls key", lambda p, d: _tls(p, certfile="x"), f"{TLS}.certfile: unknown field"),
    ("basic_auth_users is a list", lambda p, d: {USERS: ["alice"]},
     f"{USERS}: must be a mapping, not a list"),
    ("plain-text password", lambda p, d: {USERS: {"alice": PLAINTEXT}},
     f"{USERS}.alice: not a bcrypt hash"),
    ("md5-crypt hash", lambda p, d: {USERS: {"alice": MD5_CRYPT}},
     f"{USERS}.alice: not a bcrypt hash"),
    ("sha512-crypt hash", lambda p, d: {USERS: {"alice": "$6$salt$" + "a" * 86}},
     f"{USERS}.alice: not a bcrypt hash"),
    ("truncated bcrypt", lambda p, d: {USERS: {"alice": _bcrypt(p)[:-5]}},
     f"{USERS}.alice: not a bcrypt hash"),
    ("bcrypt cost 3", lambda p, d: {USERS: {"alice": "$2b$03$" + "a" * 53}},
     f"{USERS}.alice: not a bcrypt hash"),
    ("hash is a number", lambda p, d: {USERS: {"alice": 1234}},
     f"{USERS}.alice: must be a bcrypt hash string, not a number"),
    ("user name with a colon", lambda p, d: {USERS: {"a:b": _bcrypt(p)}},
     f"{USERS}.a:b: a user name cannot contain ':'"),
    ("empty user name", lambda p, d: {USERS: {"": _bcrypt(p)}},
     f"{USERS}: user name '' must be a non-empty string"),
    ("basic_auth_health is a string", lambda p, d: {USERS: {"a": _bcrypt(p)},
                                                     "basic_auth_health": "yes"},
     "basic_auth_health: must be true or false, not str"),
    ("basic_auth_health is a number", lambda p, d: {USERS: {"a": _bcrypt(p)},
                                                     "basic_auth_health": 1},
     "basic_auth_health: must be true or false, not a number"),
    ("basic_auth_health is a mapping", lambda p, d: {"basic_auth_health": {"enabled": True}},
     "basic_auth_health: must be true or false, not a mapping"),
    ("basic_auth_health without users", lambda p, d: {"basic_auth_health": True},
     "basic_auth_health: true, but basic_auth_users is empty"),
    ("header that cannot be set", lambda p, d: {"http_server_config": {"headers": {"Server": "x"}}},
     f"{HEADERS}.Server: cannot be set"),
    ("header with a newline",
     lambda p, d: {"http_server_config": {"headers": {"X-Frame-Options": "deny\r\nX: y"}}},
     f"{HEADERS}.X-Frame-Options: must be a string without control characters"),
    ("http2 is a string", lambda p, d: {"http_server_config": {"http2": "no"}},
     "http_server_config.http2: must be true or false"),
    ("unknown http_server_config key", lambda p, d: {"http_server_config": {"gzip": True}},
     "http_server_config.gzip: unknown field"),
]  # fmt: skip


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_every_bad_field_is_refused_naming_the_file_the_field_and_why(
    tmp_path: Path, pki: Pki, case: BadCase
) -> None:
    _, build, expected = case
    content = build(pki, tmp_path)
    path = write(tmp_path, content if isinstance(content, str) else yaml.safe_dump(content))
    message = load_error(path)
    assert expected in message
    assert PLAINTEXT not in message


def test_a_supported_tls_key_is_not_also_refused() -> None:
    """check_keys looks at _TLS_UNSUPPORTED first: a key implemented later must leave it."""
    from login_exporter import webconfig

    assert not webconfig._TLS_KEYS & set(webconfig._TLS_UNSUPPORTED)
