"""HTTP abuse and the locked-down service, against the real exporter process.

What needs the whole program: traversal attempts, 200 concurrent scrapes, one address holding
connections, bcrypt floods, TLS with client certificates, a failed acceptor, the unprivileged
service. Malformed requests,
405s and slow clients are pinned once, in tests/integration/test_web.py (same server code).
"""

from __future__ import annotations

import base64
import gc
import http.client
import secrets
import select
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import bcrypt
import pytest
import requests
import yaml

from tests.support import proc
from tests.support.addresses import outside_address
from tests.support.exporter import ROOT, Exporter, free_port, running_exporter, start_exporter
from tests.support.logind_state import LogindState
from tests.support.pki import Pki, make_pki
from tests.support.unprivileged import as_nobody


@pytest.fixture
def exporter(real_252: LogindState) -> Iterator[Exporter]:
    with running_exporter() as running:
        yield running


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def exchange(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes, half-close, and return everything the server answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1."), answer[:200]
    return int(answer.split(b" ", 2)[1])


def _healthy(exporter: Exporter) -> None:
    assert exporter.get("/-/healthy").status_code == 200
    assert exporter.process.poll() is None


TRAVERSALS = [
    "/../../etc/passwd", "/metrics/../", "/metrics/..", "/metrics/../../../etc/passwd",
    "/%2e%2e/%2e%2e/etc/passwd", "/..%2f..%2fetc%2fpasswd", "/metrics%2f..%2f..%2fetc%2fpasswd",
    "/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd", "//etc/passwd", "/./metrics/../../etc/passwd",
    "/-/../../etc/passwd", "/-/healthy/../../../etc/passwd", "/metrics/", "/METRICS",
    "/metrics%00", "/..\\..\\etc\\passwd", "/%252e%252e/etc/passwd", "/proc/self/environ",
    "/run/systemd/sessions/c1", "/etc/passwd",
]  # fmt: skip


def test_path_traversal_is_404_and_never_file_content(exporter: Exporter) -> None:
    for path in TRAVERSALS:
        answer = exchange(exporter.port, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert status_of(answer) == 404, path
        assert b"root:" not in answer and b"logind_" not in answer and b"UID=" not in answer
    answer = exchange(exporter.port, b"GET http://x/../../etc/passwd HTTP/1.1\r\n\r\n")
    assert status_of(answer) in (400, 404) and b"root:" not in answer
    _healthy(exporter)


def _logind_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if "logind_" in line]


def test_200_concurrent_scrapes_all_answer_200_with_identical_bodies(exporter: Exporter) -> None:
    barrier = threading.Barrier(200)

    def scrape(_: int) -> tuple[int, list[str]]:
        barrier.wait(timeout=30)
        response = requests.get(exporter.url + "/metrics", timeout=30)
        return response.status_code, _logind_lines(response.text)

    with ThreadPoolExecutor(max_workers=200) as pool:
        results = list(pool.map(scrape, range(200)))
    assert [code for code, _ in results] == [200] * 200
    first = results[0][1]
    assert any(line.startswith("logind_sessions{") for line in first)
    assert all(lines == first for _, lines in results)


# -- one address holding connections ----------------------------------------------------------

CAP = 512  # the exporter's connection cap (WebServer's default; no flag changes it)
SHARE = CAP // 2  # what one client address may hold of it


def _open_idle(port: int, count: int) -> list[socket.socket]:
    """Open ``count`` connections that send nothing (a slowloris's start), from 127.0.0.1,
    127.0.0.2, ... in turn: a local user may use every loopback address."""
    held = []
    for n in range(count):
        sock = socket.socket()
        sock.settimeout(5)
        sock.bind((f"127.0.0.{n % 8 + 1}", 0))
        sock.connect(("127.0.0.1", port))
        held.append(sock)
    return held


def _answered(socks: list[socket.socket], wait: float = 0.5) -> list[socket.socket]:
    """Return the sockets the exporter has already answered (and closed): the refused ones."""
    answered: list[socket.socket] = []
    pending = list(socks)
    deadline = time.monotonic() + wait
    while pending and (remaining := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select(pending, [], [], remaining)
        answered += readable
        pending = [sock for sock in pending if sock not in readable]
    return answered


def _scrape_from(source: str, port: int) -> tuple[int, str]:
    """GET /metrics on a new connection whose source address is ``source``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5, source_address=(source, 0))
    try:
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def _no_client_connected(exporter: Exporter) -> None:
    """Wait until the exporter holds no connection (only its listening socket)."""
    gc.collect()  # requests leaves a probe's connection to the garbage collector (a cycle)
    deadline = time.monotonic() + 5
    while len(proc.sockets_of(exporter.process.pid)) > 1:
        assert time.monotonic() < deadline, proc.sockets_of(exporter.process.pid)
        time.sleep(0.02)


def test_local_users_holding_connections_do_not_stop_a_scrape_from_outside(
    exporter: Exporter,
) -> None:
    _no_client_connected(exporter)  # else an earlier connection from 127.0.0.1 counts too
    attacker = _open_idle(exporter.port, CAP + 16)
    try:
        # Accepted in order: once this is answered, every attacker connection has been too.
        status, body = _scrape_from(outside_address(), exporter.port)
        refused = _answered(attacker)
        assert status == 200, f"scrape from a second address got {status}"
        assert "logind_up 1.0" in body
        assert len(refused) == CAP + 16 - SHARE, "one address held more than its share"
        for sock in refused:
            assert sock.recv(65536).startswith(b"HTTP/1.1 503 "), "refused without a 503"
    finally:
        for sock in attacker:
            sock.close()
    # The attacker's slots come back once it closes: it can hold its whole share again.
    deadline = time.monotonic() + 5
    while True:
        again = _open_idle(exporter.port, SHARE)
        try:
            if not _answered(again, wait=0.2):
                break
            assert time.monotonic() < deadline, "the closed connections' slots stayed taken"
        finally:
            for sock in again:
                sock.close()
        time.sleep(0.1)
    _healthy(exporter)


# -- basic auth --------------------------------------------------------------------------------

PASSWORD = b"correct horse"
COST = 10


def _auth(user: str, password: bytes) -> dict[str, str]:
    token = base64.b64encode(user.encode() + b":" + password).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture
def auth_exporter(real_252: LogindState, tmp_path: Path) -> Iterator[Exporter]:
    config = tmp_path / "web.yml"
    hashed = bcrypt.hashpw(PASSWORD, bcrypt.gensalt(COST)).decode()
    config.write_text(yaml.safe_dump({"basic_auth_users": {"prometheus": hashed}}))
    with running_exporter(f"--web.config.file={config}") as running:
        yield running


def _bcrypt_seconds() -> float:
    hashed = bcrypt.hashpw(b"x", bcrypt.gensalt(COST))
    started = time.process_time()
    for _ in range(3):
        bcrypt.checkpw(b"y", hashed)
    return (time.process_time() - started) / 3


def test_wrong_credentials_get_401_with_a_challenge(auth_exporter: Exporter) -> None:
    for headers in ({}, _auth("prometheus", b"wrong"), _auth("nobody", PASSWORD),
                    {"Authorization": "Bearer abc"}, {"Authorization": "Basic !!!"}):  # fmt: skip
        response = auth_exporter.get("/metrics", headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["WWW-Authenticate"].startswith("Basic realm=")
        assert "logind_" not in response.text
    response = auth_exporter.get("/metrics", headers=_auth("prometheus", PASSWORD))
    assert response.status_code == 200 and "logind_up 1.0" in response.text


def test_flood_of_one_wrong_password_costs_far_less_than_300_bcrypts(
    auth_exporter: Exporter,
) -> None:
    one = _bcrypt_seconds()
    pid = auth_exporter.process.pid
    before = proc.cpu_seconds(pid)

    def attempt(_: int) -> int:
        return requests.get(auth_exporter.url + "/metrics", timeout=30,
                            headers=_auth("prometheus", b"hunter2")).status_code  # fmt: skip

    with ThreadPoolExecutor(max_workers=10) as pool:
        codes = list(pool.map(attempt, range(300)))
    spent = proc.cpu_seconds(pid) - before
    print(f"300 wrong passwords: {spent:.2f} s CPU; one bcrypt check costs {one * 1000:.0f} ms")
    assert set(codes) <= {401, 503} and codes.count(401) > 0
    assert spent < 300 * one / 10


def test_flood_of_distinct_wrong_passwords_uses_at_most_one_core(
    auth_exporter: Exporter,
) -> None:
    good = _auth("prometheus", PASSWORD)
    assert auth_exporter.get("/metrics", headers=good).status_code == 200  # now cached
    pid = auth_exporter.process.pid
    stop = threading.Event()

    def attempt(worker: int) -> None:
        with requests.Session() as session:
            while not stop.is_set():
                password = secrets.token_bytes(12)
                session.get(auth_exporter.url + "/metrics", timeout=30,
                            headers=_auth("prometheus", password))  # fmt: skip

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.3)
        cpu_before, wall_before = proc.cpu_seconds(pid), time.monotonic()
        time.sleep(2.0)
        started = time.monotonic()
        response = auth_exporter.get("/metrics", headers=good)
        answered_in = time.monotonic() - started
        cores = (proc.cpu_seconds(pid) - cpu_before) / (time.monotonic() - wall_before)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    print(f"distinct wrong passwords: {cores:.2f} cores busy; good scrape {answered_in:.3f} s")
    assert response.status_code == 200
    assert cores < 1.5, "bcrypt checks were not bounded to one at a time"
    assert answered_in < 1.0


# -- TLS ---------------------------------------------------------------------------------------


def test_tls_requires_the_client_certificate(
    real_252: LogindState, pki: Pki, tmp_path: Path
) -> None:
    config = tmp_path / "web.yml"
    config.write_text(yaml.safe_dump({"tls_server_config": {
        "cert_file": str(pki.server_cert), "key_file": str(pki.server_key),
        "client_ca_file": str(pki.client_ca), "client_auth_type": "RequireAndVerifyClientCert",
    }}))  # fmt: skip
    port = free_port()
    exporter = start_exporter(f"--web.config.file={config}", port=port, scheme="https",
                              ready_path=None)  # fmt: skip
    try:
        url = f"https://127.0.0.1:{port}/metrics"
        deadline = time.monotonic() + 10
        while True:  # wait until it listens
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and exporter.process.poll() is None
                time.sleep(0.05)
        client = (str(pki.client_cert), str(pki.client_key))
        response = requests.get(url, cert=client, verify=str(pki.ca), timeout=5)
        assert response.status_code == 200 and "logind_up 1.0" in response.text
        for cert in (None, (str(pki.rogue_cert), str(pki.rogue_key))):
            with pytest.raises((requests.exceptions.SSLError, requests.ConnectionError)):
                requests.get(url, cert=cert, verify=str(pki.ca), timeout=5)
        # Without a certificate the handshake fails: no byte of the exposition is sent.
        context = ssl.create_default_context(cafile=str(pki.ca))
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            pytest.raises((ssl.SSLError, OSError)),
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            tls.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            assert b"logind_" not in tls.recv(65536)
            raise ssl.SSLError("answered without a client certificate")
        plain = exchange(port, b"GET /metrics HTTP/1.1\r\n\r\n")
        assert status_of(plain) == 400 and b"logind_" not in plain
        assert requests.get(url, cert=client, verify=str(pki.ca), timeout=5).status_code == 200
    finally:
        status, stderr = exporter.stop()
    assert status == 0 and "Traceback" not in stderr, stderr


# -- the locked-down service -------------------------------------------------------------------


def test_runs_as_an_unprivileged_user_and_serves(real_252: LogindState) -> None:
    if shutil.which("setpriv") is None:
        pytest.fail("setpriv (util-linux) is needed")
    port = free_port()
    command = as_nobody(sys.executable, "-m", "login_exporter",
                        f"--web.listen-address=127.0.0.1:{port}")  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    exporter = Exporter(process, port)
    try:
        samples = exporter.wait_for(lambda s: s.get(("logind_up", frozenset())) == 1,
                                    timeout=15, what="logind_up 1 as nobody")  # fmt: skip
        assert sum(v for (n, _), v in samples.items() if n == "logind_sessions") > 0
        pid = _exporter_pid(process.pid)
        status = Path(f"/proc/{pid}/status").read_text()
        assert "\nUid:\t65534\t65534\t65534\t65534\n" in status
        groups = [line for line in status.splitlines() if line.startswith("Groups:")]
        assert [line.strip() for line in groups] == ["Groups:"], groups
        assert "\nCapEff:\t0000000000000000\n" in status
        assert proc.writable_files(pid) == []
    finally:
        code, stderr = exporter.stop()
    assert code == 0, stderr
    assert "Traceback" not in stderr


def _exporter_pid(pid: int) -> int:
    """The pid running Python: ``pid`` itself or the child unshare exec'ed into."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if "login_exporter" in Path(f"/proc/{pid}/cmdline").read_text():
            return pid
        time.sleep(0.05)
    raise AssertionError("the exporter process never appeared")


def test_listens_only_where_told_and_opens_no_file_for_writing(real_252: LogindState) -> None:
    port, port6 = free_port(), free_port()
    with running_exporter(f"--web.listen-address=[::1]:{port6}") as exporter:
        exporter.samples()
        time.sleep(0.2)  # let the scrape's connection close
        pid = exporter.process.pid
        sockets = proc.sockets_of(pid)
        listening = sorted((p, host, lport) for p, host, lport, state in sockets if state == "0A")
        assert listening == sorted([("tcp", "127.0.0.1", exporter.port), ("tcp6", "::1", port6)])
        assert all(p.startswith("tcp") for p, *_ in sockets), sockets
        assert proc.writable_files(pid) == []
    del port


def test_no_identity_labels_unless_asked(real_252: LogindState) -> None:
    real_252.session("900", uid=4711, user="mallory", seat=None, remote=True,
                     remote_host="203.0.113.77", remote_user="evelyn-x9", tty="pts/9")  # fmt: skip
    identity = {"user", "uid", "session", "remote_host", "remote_user", "tty", "leader",
                "machine_id", "username"}  # fmt: skip
    with running_exporter() as exporter:
        text = exporter.get().text
        labels = {name for (_, pairs) in exporter.samples() for name, _ in pairs}
    assert not labels & identity, labels & identity
    for secret in ("mallory", "203.0.113.77", "evelyn-x9", "4711", "pts/9", 'session="900"'):
        assert secret not in text, secret
    with running_exporter("--collector.session-info") as exporter:
        text = exporter.get().text
    # The same checks do see identities once asked for (user names come from passwd on 252).
    assert "203.0.113.77" in text and 'session="900"' in text and 'uid="4711"' in text


# -- a failed acceptor -------------------------------------------------------------------------

# The real program, with accept() failing the way nothing in the acceptor expects (MemoryError:
# the kernel or the allocator giving out); everything else is untouched.
_FAILING_ACCEPT = """
import socket, sys
from login_exporter import cli

def accept(self):
    raise MemoryError("injected: accept() failed")

socket.socket.accept = accept
sys.exit(cli.main(sys.argv[1:]))
"""


def test_a_failed_acceptor_ends_the_process_non_zero_so_systemd_restarts_it(
    real_252: LogindState,
) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", _FAILING_ACCEPT, f"--web.listen-address=127.0.0.1:{port}"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    exporter = Exporter(process, port)
    try:
        deadline = time.monotonic() + 10
        while process.poll() is None:  # the first connection reaches the acceptor, which fails
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the exporter never listened"
                time.sleep(0.05)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pytest.fail("the process stayed up with no acceptor, serving nothing")
    finally:
        status, stderr = exporter.stop()
    assert status == 1, stderr
    assert "web acceptor failed" in stderr and "injected" in stderr, stderr
