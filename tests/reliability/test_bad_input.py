"""Hostile input: fuzzed names into the binding, wrong flags and wrong web-config fields."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import bcrypt
import pytest

from login_exporter import cli
from tests.support.exporter import ROOT, free_port
from tests.support.logind_state import LogindState
from tests.support.pki import Pki, make_pki

IN_ACCESS = 0x1
IN_OPEN = 0x20
IN_NONBLOCK = os.O_NONBLOCK

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class OpenWatch:
    """inotify on one file: did anybody open or read it?"""

    def __init__(self, path: Path) -> None:
        self.fd = _libc.inotify_init1(IN_NONBLOCK)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        if _libc.inotify_add_watch(self.fd, str(path).encode(), IN_OPEN | IN_ACCESS) < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {path}")

    def touched(self) -> bool:
        """Whether an open or read happened since the watch began."""
        try:
            return bool(os.read(self.fd, 4096))
        except BlockingIOError:
            return False

    def close(self) -> None:
        """Release the inotify fd."""
        os.close(self.fd)


@pytest.fixture
def canary(logind: LogindState) -> Iterator[Path]:
    """/tmp/canary-<random>: a valid-looking session, seat, user and machine file in one."""
    path = Path(f"/tmp/canary-{secrets.token_hex(8)}")
    path.write_text(
        "# This is private data. Do not parse.\nUID=4242\nUSER=canary\nACTIVE=1\nSTATE=active\n"
        "REMOTE=0\nTYPE=canary\nCLASS=canary\nSEAT=canary\nSERVICE=canary\nIS_SEAT0=1\n"
        "CAN_TTY=1\nCAN_GRAPHICAL=1\nCAN_MULTI_SESSION=1\nACTIVE=canary\nACTIVE_UID=4242\n"
        "SESSIONS=canary\nUIDS=4242\nNAME=canary\nCLASS=canary\nDISPLAY=canary\n"
    )
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def test_canary_watch_sees_a_read(canary: Path) -> None:
    watch = OpenWatch(canary)
    try:
        assert not watch.touched()
        canary.read_bytes()
        assert watch.touched()
    finally:
        watch.close()


def test_fuzzed_names_only_raise_value_os_or_type_errors_and_never_read_outside(
    logind: LogindState, canary: Path
) -> None:
    logind.seat0(sessions=[("1", 1000)])
    logind.session("1", uid=1000, seat="seat0")
    logind.user(1000, sessions=["1"], seats=["seat0"])
    logind.machine("vm1", klass="vm")
    watch = OpenWatch(canary)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "tests.reliability.fuzz_sdlogin", str(canary), "700"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        touched = watch.touched()
    finally:
        watch.close()
    assert result.returncode >= 0, f"the binding crashed (signal {-result.returncode})"
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "fuzzed" in result.stdout
    assert not touched, "a binding opened the canary file outside /run/systemd"


def test_traversal_to_the_canary_does_not_return_its_uid(
    logind: LogindState, canary: Path
) -> None:
    from login_exporter import sdlogin

    relative = os.path.relpath(canary, "/run/systemd/sessions")
    assert (Path("/run/systemd/sessions") / relative).resolve() == canary
    with pytest.raises(ValueError):  # EINVAL: libsystemd refuses the id before any open()
        sdlogin.session_get_uid(relative)
    with pytest.raises(OSError) as caught:
        sdlogin.seat_get_active(os.path.relpath(canary, "/run/systemd/seats"))
    assert caught.value.errno == errno.EINVAL
    with pytest.raises(ValueError):
        sdlogin.machine_get_class(os.path.relpath(canary, "/run/systemd/machines"))


# -- command-line flags: exit 2, stderr names the flag ----------------------------------------

BAD_FLAGS = [
    (["--web.listen-address=nohost"], "--web.listen-address"),
    (["--web.listen-address=:99999"], "--web.listen-address"),
    (["--web.listen-address=[::1:9"], "--web.listen-address"),
    (["--web.listen-address=::1:9"], "--web.listen-address"),
    (["--web.listen-address=:port"], "--web.listen-address"),
    (["--web.telemetry-path=metrics"], "--web.telemetry-path"),
    (["--web.telemetry-path=/a b"], "--web.telemetry-path"),
    (["--web.config.file=/nonexistent/web.yml"], "/nonexistent/web.yml"),
    (["--web.systemd-socket"], "--web.systemd-socket"),
    (["--web.disable-exporter-metrics=yes"], "--web.disable-exporter-metrics"),
    (["--collector.machines=1"], "--collector.machines"),
    (["--no-collector.machine-info=0"], "--no-collector.machine-info"),
    (["--collector.session-info=true"], "--collector.session-info"),
    (["--refresh.debounce=fast"], "--refresh.debounce"),
    (["--refresh.debounce=-5ms"], "--refresh.debounce"),
    (["--refresh.debounce=5"], "--refresh.debounce"),
    (["--refresh.resync-interval=forever"], "--refresh.resync-interval"),
    (["--refresh.resync-interval=1y"], "--refresh.resync-interval"),
    (["--log.level=loud"], "--log.level"),
    (["--log.format=xml"], "--log.format"),
    (["--once=yes"], "--once"),
    (["--version=2"], "--version"),
    (["--no-such-flag"], "--no-such-flag"),
    (["--web.listen"], "--web.listen"),
    (["positional"], "positional"),
]


def test_every_bad_flag_exits_2_naming_the_flag(logind: LogindState) -> None:
    # All at once, each a real process, to keep the run short.
    env = {k: v for k, v in os.environ.items() if not k.startswith("LISTEN_")}
    running = []
    for args, named in BAD_FLAGS:
        command = [sys.executable, "-m", "login_exporter",
                   f"--web.listen-address=127.0.0.1:{free_port()}", *args]  # fmt: skip
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)  # fmt: skip
        running.append((args, named, process))
    failures = []
    for args, named, process in running:
        try:
            _, stderr = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
            failures.append(f"{args}: still running (accepted?)")
            continue
        if process.returncode != 2 or named not in stderr or "Traceback" in stderr:
            failures.append(f"{args}: exit {process.returncode}, stderr {stderr.strip()!r}")
    assert not failures, "\n".join(failures)


def test_port_in_use_exits_1_naming_the_address(logind: LogindState) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        address = f"127.0.0.1:{busy.getsockname()[1]}"
        result = subprocess.run(
            [sys.executable, "-m", "login_exporter", f"--web.listen-address={address}"],
            cwd=ROOT, capture_output=True, text=True, timeout=20, check=False,
        )  # fmt: skip
    assert result.returncode == 1
    assert address in result.stderr


# -- web config: every field with a wrong value -----------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _good_hash() -> str:
    return bcrypt.hashpw(b"secret", bcrypt.gensalt(4)).decode()


def _tls(p: Pki, **fields: object) -> dict[str, object]:
    base: dict[str, object] = {"cert_file": str(p.server_cert), "key_file": str(p.server_key)}
    base.update(fields)
    return {"tls_server_config": {k: v for k, v in base.items() if v is not None}}


MD5_CRYPT = "$1$salt$qJH7.N4xYta3aEG/dfqo/0"
ConfigCase = tuple[str, Callable[[Pki, Path], object], str]
BAD_CONFIGS: list[ConfigCase] = [
    ("unknown top-level key", lambda p, d: {"tls_config": {}}, "tls_config"),
    ("rate_limit", lambda p, d: {"rate_limit": {"interval": "1s"}}, "rate_limit"),
    ("top level is a list", lambda p, d: ["a"], "mapping"),
    ("top level is a string", lambda p, d: "hello", "mapping"),
    ("not YAML", lambda p, d: "tls_server_config: [unclosed", "YAML"),
    ("tls section is a string", lambda p, d: {"tls_server_config": "on"},
     "tls_server_config"),
    ("cert_file is a number", lambda p, d: _tls(p, cert_file=5), "tls_server_config.cert_file"),
    ("cert_file is a list", lambda p, d: _tls(p, cert_file=["a"]),
     "tls_server_config.cert_file"),
    ("cert_file missing", lambda p, d: _tls(p, cert_file=str(d / "none.crt")),
     "tls_server_config.cert_file"),
    ("cert_file is a directory", lambda p, d: _tls(p, cert_file=str(d)),
     "tls_server_config.cert_file"),
    ("cert_file holds a key", lambda p, d: _tls(p, cert_file=str(p.server_key)),
     "tls_server_config.cert_file"),
    ("cert_file unset", lambda p, d: _tls(p, cert_file=None), "tls_server_config.cert_file"),
    ("key_file unset", lambda p, d: _tls(p, key_file=None), "tls_server_config.key_file"),
    ("key_file missing", lambda p, d: _tls(p, key_file=str(d / "none.key")),
     "tls_server_config.key_file"),
    ("key_file of another cert", lambda p, d: _tls(p, key_file=str(p.client_key)),
     "tls_server_config.key_file"),
    ("key_file holds a cert", lambda p, d: _tls(p, key_file=str(p.server_cert)),
     "tls_server_config.key_file"),
    ("key_file is a boolean", lambda p, d: _tls(p, key_file=True), "tls_server_config.key_file"),
    ("client_ca_file missing",
     lambda p, d: _tls(p, client_ca_file=str(d / "none.pem"),
                       client_auth_type="RequireAndVerifyClientCert"),
     "tls_server_config.client_ca_file"),
    ("client_ca_file holds a key",
     lambda p, d: _tls(p, client_ca_file=str(p.server_key),
                       client_auth_type="RequireAndVerifyClientCert"),
     "tls_server_config.client_ca_file"),
    ("client_ca_file with NoClientCert",
     lambda p, d: _tls(p, client_ca_file=str(p.ca), client_auth_type="NoClientCert"),
     "tls_server_config.client_ca_file"),
    ("client_ca_file is a mapping", lambda p, d: _tls(p, client_ca_file={"a": 1}),
     "tls_server_config.client_ca_file"),
    ("client_auth_type unknown", lambda p, d: _tls(p, client_auth_type="Sometimes"),
     "tls_server_config.client_auth_type"),
    ("client_auth_type lowercase",
     lambda p, d: _tls(p, client_auth_type="requireandverifyclientcert",
                       client_ca_file=str(p.ca)),
     "tls_server_config.client_auth_type"),
    ("client_auth_type is a number", lambda p, d: _tls(p, client_auth_type=3),
     "tls_server_config.client_auth_type"),
    ("verifying client_auth_type without a CA",
     lambda p, d: _tls(p, client_auth_type="RequireAndVerifyClientCert"),
     "tls_server_config.client_ca_file"),
    ("min_version unknown", lambda p, d: _tls(p, min_version="TLS14"),
     "tls_server_config.min_version"),
    ("min_version is a number", lambda p, d: _tls(p, min_version=1.2),
     "tls_server_config.min_version"),
    ("max_version unknown", lambda p, d: _tls(p, max_version="SSL3"),
     "tls_server_config.max_version"),
    ("max_version below min_version",
     lambda p, d: _tls(p, min_version="TLS13", max_version="TLS12"),
     "tls_server_config.max_version"),
    ("client_allowed_sans not a list",
     lambda p, d: _tls(p, client_allowed_sans="a", client_ca_file=str(p.ca)),
     "tls_server_config.client_allowed_sans"),
    ("client_allowed_sans without client certs",
     lambda p, d: _tls(p, client_allowed_sans=["a"]), "tls_server_config.client_allowed_sans"),
    ("prefer_server_cipher_suites is a string",
     lambda p, d: _tls(p, prefer_server_cipher_suites="yes"),
     "tls_server_config.prefer_server_cipher_suites"),
    ("cipher_suites", lambda p, d: _tls(p, cipher_suites=["TLS_AES_128_GCM_SHA256"]),
     "tls_server_config.cipher_suites"),
    ("curve_preferences", lambda p, d: _tls(p, curve_preferences=["X25519"]),
     "tls_server_config.curve_preferences"),
    ("inline cert", lambda p, d: _tls(p, cert="-----BEGIN CERTIFICATE-----"),
     "tls_server_config.cert"),
    ("unknown tls key", lambda p, d: _tls(p, certfile="x"), "tls_server_config.certfile"),
    ("basic_auth_users is a list", lambda p, d: {"basic_auth_users": ["alice"]},
     "basic_auth_users"),
    ("plain-text password", lambda p, d: {"basic_auth_users": {"alice": "secret"}},
     "basic_auth_users.alice"),
    ("md5-crypt hash", lambda p, d: {"basic_auth_users": {"alice": MD5_CRYPT}},
     "basic_auth_users.alice"),
    ("sha512-crypt hash",
     lambda p, d: {"basic_auth_users": {"alice": "$6$salt$" + "a" * 86}}, "basic_auth_users.alice"),
    ("truncated bcrypt", lambda p, d: {"basic_auth_users": {"alice": _good_hash()[:-5]}},
     "basic_auth_users.alice"),
    ("bcrypt cost 3", lambda p, d: {"basic_auth_users": {"alice": "$2b$03$" + "a" * 53}},
     "basic_auth_users.alice"),
    ("hash is a number", lambda p, d: {"basic_auth_users": {"alice": 1234}},
     "basic_auth_users.alice"),
    ("user name with a colon", lambda p, d: {"basic_auth_users": {"a:b": _good_hash()}},
     "basic_auth_users.a:b"),
    ("empty user name", lambda p, d: {"basic_auth_users": {"": _good_hash()}},
     "basic_auth_users"),
    ("header that cannot be set",
     lambda p, d: {"http_server_config": {"headers": {"Server": "x"}}},
     "http_server_config.headers.Server"),
    ("header with a newline",
     lambda p, d: {"http_server_config": {"headers": {"X-Frame-Options": "a\nb"}}},
     "http_server_config.headers.X-Frame-Options"),
    ("http2 is a string", lambda p, d: {"http_server_config": {"http2": "no"}},
     "http_server_config.http2"),
    ("unknown http_server_config key", lambda p, d: {"http_server_config": {"gzip": True}},
     "http_server_config.gzip"),
]  # fmt: skip


def _write_config(path: Path, content: object) -> None:
    import yaml

    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))


@pytest.mark.parametrize("case", BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_every_bad_web_config_field_exits_2_naming_the_field(
    logind: LogindState,
    pki: Pki,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    case: ConfigCase,
) -> None:
    _, build, named = case
    config = tmp_path / "web.yml"
    _write_config(config, build(pki, tmp_path))
    # --once: a config wrongly accepted prints one exposition and returns instead of serving.
    with pytest.raises(SystemExit) as exited:
        cli.main([f"--web.config.file={config}", "--once", "--log.level=error"])
    stderr = capsys.readouterr().err
    assert exited.value.code == 2, stderr
    assert named in stderr, stderr
    assert str(config) in stderr


def test_bad_web_config_stops_the_real_process_before_it_listens(
    logind: LogindState, pki: Pki, tmp_path: Path
) -> None:
    config = tmp_path / "web.yml"
    _write_config(config, {"basic_auth_users": {"alice": "$1$salt$qJH7.N4xYta3aEG/dfqo/0"}})
    port = free_port()
    result = subprocess.run(
        [sys.executable, "-m", "login_exporter", f"--web.listen-address=127.0.0.1:{port}",
         f"--web.config.file={config}"],
        cwd=ROOT, capture_output=True, text=True, timeout=20,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "basic_auth_users.alice" in result.stderr
    assert "bcrypt" in result.stderr
    assert "Traceback" not in result.stderr
