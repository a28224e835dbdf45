"""load_web_config: the exporter-toolkit YAML format, with real certificates and bcrypt hashes."""

from __future__ import annotations

import ssl
from pathlib import Path

import bcrypt
import pytest

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


# ------------------------------------------------------------------------------ bad files


def test_missing_config_file(tmp_path: Path) -> None:
    assert "no such file" in load_error(tmp_path / "absent.yml")


def test_invalid_yaml(tmp_path: Path) -> None:
    assert "not valid YAML" in load_error(write(tmp_path, "tls_server_config: [\n"))


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    assert "must be a YAML mapping, not a list" in load_error(write(tmp_path, "- a\n- b\n"))


def test_unknown_top_level_key(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, "tls_config: {}\n"))
    assert "tls_config: unknown field" in message


def test_unknown_tls_key(tmp_path: Path, pki: Pki) -> None:
    message = load_error(write(tmp_path, f"tls_server_config:\n  certfile: {pki.server_cert}\n"))
    assert "tls_server_config.certfile: unknown field" in message


def test_unsupported_tls_key_is_refused_not_ignored(tmp_path: Path, pki: Pki) -> None:
    message = load_error(
        write(
            tmp_path,
            f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.server_key}\n"
            "  cipher_suites: [TLS_AES_128_GCM_SHA256]\n",
        )
    )
    assert "tls_server_config.cipher_suites: not supported" in message


def test_tls_section_of_wrong_type(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, "tls_server_config: [a]\n"))
    assert "tls_server_config: must be a mapping, not a list" in message


def test_cert_file_of_wrong_type(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, "tls_server_config:\n  cert_file: 42\n"))
    assert "tls_server_config.cert_file: must be a string, not a number" in message


def test_cert_file_missing(tmp_path: Path, pki: Pki) -> None:
    message = load_error(
        write(tmp_path, f"tls_server_config:\n  cert_file: /nonexistent/c.pem\n"
                        f"  key_file: {pki.server_key}\n")
    )
    assert "tls_server_config.cert_file: no such file: /nonexistent/c.pem" in message


def test_cert_file_not_set_but_key_file_is(tmp_path: Path, pki: Pki) -> None:
    message = load_error(write(tmp_path, f"tls_server_config:\n  key_file: {pki.server_key}\n"))
    assert "tls_server_config.cert_file: missing" in message


def test_key_file_not_set(tmp_path: Path, pki: Pki) -> None:
    message = load_error(write(tmp_path, f"tls_server_config:\n  cert_file: {pki.server_cert}\n"))
    assert "tls_server_config.key_file: missing" in message


def test_cert_file_unreadable(tmp_path: Path, pki: Pki) -> None:
    message = load_error(
        write(tmp_path, f"tls_server_config:\n  cert_file: {tmp_path}\n"
                        f"  key_file: {pki.server_key}\n")
    )
    assert "tls_server_config.cert_file: is a directory" in message


def test_cert_file_without_a_certificate(tmp_path: Path, pki: Pki) -> None:
    message = load_error(
        write(
            tmp_path,
            f"tls_server_config:\n  cert_file: {pki.server_key}\n  key_file: {pki.server_key}\n",
        )
    )
    assert "tls_server_config.cert_file: no PEM certificate" in message


def test_key_file_missing(tmp_path: Path, pki: Pki) -> None:
    message = load_error(
        write(tmp_path, f"tls_server_config:\n  cert_file: {pki.server_cert}\n"
                        "  key_file: /nonexistent/k.pem\n")
    )
    assert "tls_server_config.key_file: no such file" in message


def test_key_that_does_not_match_the_certificate(tmp_path: Path, pki: Pki) -> None:
    message = load_error(
        write(tmp_path, f"tls_server_config:\n  cert_file: {pki.server_cert}\n"
                        f"  key_file: {pki.client_key}\n")
    )
    assert "tls_server_config.key_file:" in message
    assert "no private key matching cert_file" in message


def test_unknown_client_auth_type(tmp_path: Path, pki: Pki) -> None:
    message = load_error(
        write(tmp_path, f"tls_server_config:\n  cert_file: {pki.server_cert}\n"
                        f"  key_file: {pki.server_key}\n  client_auth_type: VerifyPlease\n")
    )
    assert "tls_server_config.client_auth_type: unknown value 'VerifyPlease'" in message
    assert "RequireAndVerifyClientCert" in message


def test_verifying_client_auth_type_needs_a_client_ca(tmp_path: Path, pki: Pki) -> None:
    message = load_error(
        write(tmp_path, f"tls_server_config:\n  cert_file: {pki.server_cert}\n"
                        f"  key_file: {pki.server_key}\n"
                        "  client_auth_type: RequireAndVerifyClientCert\n")
    )
    assert "tls_server_config.client_ca_file: required by client_auth_type" in message


def test_client_ca_with_no_client_cert_is_refused(tmp_path: Path, pki: Pki) -> None:
    message = load_error(
        write(tmp_path, f"tls_server_config:\n  cert_file: {pki.server_cert}\n"
                        f"  key_file: {pki.server_key}\n  client_ca_file: {pki.client_ca}\n"
                        "  client_auth_type: NoClientCert\n")
    )
    assert "tls_server_config.client_ca_file: set, but client_auth_type is NoClientCert" in message


def test_client_ca_file_without_a_certificate(tmp_path: Path, pki: Pki) -> None:
    message = load_error(
        write(tmp_path, f"tls_server_config:\n  cert_file: {pki.server_cert}\n"
                        f"  key_file: {pki.server_key}\n  client_ca_file: {pki.client_key}\n")
    )
    assert "tls_server_config.client_ca_file: no PEM certificate" in message


def test_unknown_min_version(tmp_path: Path, pki: Pki) -> None:
    message = load_error(
        write(tmp_path, f"tls_server_config:\n  cert_file: {pki.server_cert}\n"
                        f"  key_file: {pki.server_key}\n  min_version: SSL3\n")
    )
    assert "tls_server_config.min_version: unknown value 'SSL3'" in message


def test_max_version_below_min_version(tmp_path: Path, pki: Pki) -> None:
    message = load_error(
        write(tmp_path, f"tls_server_config:\n  cert_file: {pki.server_cert}\n"
                        f"  key_file: {pki.server_key}\n  min_version: TLS13\n"
                        "  max_version: TLS12\n")
    )
    assert "tls_server_config.max_version: TLS12 is lower than min_version TLS13" in message


def test_basic_auth_users_of_wrong_type(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, "basic_auth_users: [alice]\n"))
    assert "basic_auth_users: must be a mapping, not a list" in message


def test_bad_bcrypt_hash(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, "basic_auth_users:\n  alice: plaintext-password\n"))
    assert "basic_auth_users.alice: not a bcrypt hash" in message
    assert "plaintext-password" not in message


def test_truncated_bcrypt_hash(tmp_path: Path, a_hash: str) -> None:
    message = load_error(write(tmp_path, f"basic_auth_users:\n  alice: '{a_hash[:-1]}'\n"))
    assert "basic_auth_users.alice: not a bcrypt hash" in message


def test_bcrypt_hash_of_wrong_type(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, "basic_auth_users:\n  alice: 12345\n"))
    assert "basic_auth_users.alice: must be a bcrypt hash string, not a number" in message


def test_user_name_with_a_colon(tmp_path: Path, a_hash: str) -> None:
    message = load_error(write(tmp_path, f"basic_auth_users:\n  'a:b': '{a_hash}'\n"))
    assert "basic_auth_users.a:b: a user name cannot contain ':'" in message


def test_header_that_cannot_be_set(tmp_path: Path) -> None:
    message = load_error(
        write(tmp_path, "http_server_config:\n  headers:\n    Set-Cookie: a=b\n")
    )
    assert "http_server_config.headers.Set-Cookie: cannot be set" in message


def test_header_value_with_a_newline(tmp_path: Path) -> None:
    message = load_error(
        write(tmp_path, 'http_server_config:\n  headers:\n    X-Frame-Options: "deny\\r\\nX: y"\n')
    )
    assert "http_server_config.headers.X-Frame-Options: must be a string without control" in message
