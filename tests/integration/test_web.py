"""WebServer over real sockets: endpoints, negotiation, TLS, basic auth, robustness, shutdown."""

from __future__ import annotations

import base64
import contextlib
import gzip
import http.client
import logging
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import bcrypt
import pytest

from login_exporter.web import (
    OPENMETRICS_CONTENT_TYPE,
    TEXT_CONTENT_TYPE,
    WebServer,
    bind_listen_addresses,
    landing_page,
    parse_listen_address,
)
from login_exporter.webconfig import WebConfig, load_web_config
from tests.support.addresses import outside_address
from tests.support.pki import Pki, make_pki

TEXT = b'# HELP logind_up Whether logind is readable.\n# TYPE logind_up gauge\nlogind_up 1\n'
OPENMETRICS = TEXT + b"# EOF\n"
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


class StaticSource:
    """An ExpositionSource serving fixed, pre-rendered bytes (the collector's stand-in)."""

    def __init__(self) -> None:
        self.is_ready = False
        self.fail = False
        self.calls = 0
        self._bodies = {
            (False, False): TEXT,
            (True, False): OPENMETRICS,
            (False, True): gzip.compress(TEXT),
            (True, True): gzip.compress(OPENMETRICS),
        }

    def exposition(self, openmetrics: bool, gzip: bool) -> bytes:
        self.calls += 1
        if self.fail:
            raise RuntimeError("collector broke")
        return self._bodies[(openmetrics, gzip)]

    def ready(self) -> bool:
        return self.is_ready


Serve = Callable[..., tuple[WebServer, int]]


@pytest.fixture
def source() -> StaticSource:
    return StaticSource()


@pytest.fixture
def serve(source: StaticSource) -> Iterator[Serve]:
    """Start a WebServer on 127.0.0.1:0 (or the given addresses); returns it and its port."""
    servers: list[WebServer] = []

    def start(
        addresses: tuple[str, ...] = ("127.0.0.1:0",), **kwargs: Any
    ) -> tuple[WebServer, int]:
        server = WebServer(bind_listen_addresses(addresses), source, **kwargs)
        server.start()
        servers.append(server)
        return server, server.addresses[0][1]

    yield start
    for server in servers:
        server.shutdown()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def get(
    port: int, path: str = "/", method: str = "GET", headers: dict[str, str] | None = None,
    host: str = "127.0.0.1",
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def raw(port: int, data: bytes, *, timeout: float = 5) -> bytes:
    """Send bytes, half-close, and read the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        return read_all(sock)


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sent until it closed (a reset after its answer ends it too)."""
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        if not chunks:
            raise
    return b"".join(chunks)


# ------------------------------------------------------------------------------ listen addresses


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (":9844", ("", 9844)),
        ("[::]:9844", ("::", 9844)),
        ("[::1]:0", ("::1", 0)),
        ("127.0.0.1:9844", ("127.0.0.1", 9844)),
        ("localhost:9844", ("localhost", 9844)),
        ("0.0.0.0:65535", ("0.0.0.0", 65535)),
    ],
)
def test_parse_listen_address_accepts_prometheus_forms(
    text: str, expected: tuple[str, int]
) -> None:
    assert parse_listen_address(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("9844", "missing port"),
        ("localhost", "missing port"),
        ("localhost:", "not a number"),
        (":http", "not a number"),
        (":-1", "not a number"),
        (":65536", "out of range"),
        ("::1:9844", "brackets"),
        ("[::1:9844", "unbalanced"),
        ("[::1]", "missing port"),
        ("[::1]x:9844", "unbalanced"),
        ("[nope]:9844", "not an IPv6 address"),
        ("a b:9844", "invalid host"),
    ],
)
def test_parse_listen_address_names_the_text_on_error(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason) as info:
        parse_listen_address(text)
    assert repr(text) in str(info.value)


def test_bind_failure_is_an_oserror_naming_the_address() -> None:
    (first,) = bind_listen_addresses(["127.0.0.1:0"])
    try:
        port = first.getsockname()[1]
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}"):
            bind_listen_addresses(["127.0.0.1:0", f"127.0.0.1:{port}"])
    finally:
        first.close()


def test_serves_on_several_addresses_including_ipv6(serve: Serve) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this kernel")
    server, _ = serve(("127.0.0.1:0", "[::1]:0", "localhost:0"))
    (v4, v4_port), (v6, v6_port), (_, local_port) = server.addresses
    assert (v4, v6) == ("127.0.0.1", "::1")
    assert get(v4_port, "/-/healthy")[0] == 200
    assert get(v6_port, "/-/healthy", host="::1")[0] == 200
    assert get(local_port, "/-/healthy", host="localhost")[0] == 200


def test_wildcard_address_is_dual_stack(serve: Serve) -> None:
    server, port = serve((":0",))
    assert get(port, "/-/healthy", host="127.0.0.1")[0] == 200
    if socket.has_ipv6:
        assert server.addresses[0][0] == "::"
        assert get(port, "/-/healthy", host="::1")[0] == 200


# ------------------------------------------------------------------------------ endpoints


def test_landing_page_links_telemetry_path_and_shows_version_and_flags(serve: Serve) -> None:
    page = partial(landing_page, "1.2.3", flags={"web.listen-address": ":9844", "x": "<b>"})
    _, port = serve(telemetry_path="/custom", landing_page=page)
    status, headers, body = get(port, "/")
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert b'href="/custom"' in body
    assert b"1.2.3" in body
    assert b"--web.listen-address" in body and b":9844" in body
    assert b"&lt;b&gt;" in body and b"<b>" not in body


def test_metrics_default_to_text_format(serve: Serve) -> None:
    _, port = serve()
    status, headers, body = get(port, "/metrics")
    assert status == 200
    assert headers["Content-Type"] == TEXT_CONTENT_TYPE
    assert "Content-Encoding" not in headers
    assert body == TEXT


def test_metrics_are_openmetrics_when_prometheus_asks(serve: Serve) -> None:
    _, port = serve()
    status, headers, body = get(port, "/metrics", headers={"Accept": PROMETHEUS_ACCEPT})
    assert status == 200
    assert headers["Content-Type"] == OPENMETRICS_CONTENT_TYPE
    assert body == OPENMETRICS


@pytest.mark.parametrize(
    ("accept", "openmetrics"),
    [
        ("application/openmetrics-text", True),
        ("text/plain;version=0.0.4;q=0.9,application/openmetrics-text;q=0.5", False),
        ("application/openmetrics-text;q=0", False),
        ("text/plain", False),
        ("*/*", False),
        ("application/json", False),
    ],
)
def test_content_negotiation_honours_q_values(
    serve: Serve, accept: str, openmetrics: bool
) -> None:
    _, port = serve()
    _, headers, body = get(port, "/metrics", headers={"Accept": accept})
    expected = OPENMETRICS_CONTENT_TYPE if openmetrics else TEXT_CONTENT_TYPE
    assert headers["Content-Type"] == expected
    assert body == (OPENMETRICS if openmetrics else TEXT)


@pytest.mark.parametrize(
    ("accept_encoding", "gzipped"),
    [
        ("gzip", True),
        ("deflate, gzip;q=0.8", True),
        ("*", True),
        ("gzip;q=0", False),
        ("identity", False),
        ("br", False),
    ],
)
def test_gzip_when_accept_encoding_allows(
    serve: Serve, accept_encoding: str, gzipped: bool
) -> None:
    _, port = serve()
    _, headers, body = get(
        port, "/metrics", headers={"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": accept_encoding}
    )
    if gzipped:
        assert headers["Content-Encoding"] == "gzip"
        assert gzip.decompress(body) == OPENMETRICS
    else:
        assert "Content-Encoding" not in headers
        assert body == OPENMETRICS
    assert headers["Vary"] == "Accept, Accept-Encoding"


def test_head_sends_headers_without_body(serve: Serve) -> None:
    _, port = serve()
    answer = raw(port, b"HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert f"Content-Length: {len(TEXT)}".encode() in head
    assert body == b""


def test_healthy_is_always_200(serve: Serve) -> None:
    _, port = serve()
    assert get(port, "/-/healthy")[0] == 200


def test_ready_is_503_until_the_source_is_ready(serve: Serve, source: StaticSource) -> None:
    _, port = serve()
    assert get(port, "/-/ready")[0] == 503
    source.is_ready = True
    assert get(port, "/-/ready")[0] == 200


@pytest.mark.parametrize("path", ["/nope", "/metrics/", "/metricsx", "/-/", "/index.html"])
def test_unknown_paths_are_404(serve: Serve, path: str) -> None:
    _, port = serve()
    assert get(port, path)[0] == 404


def test_custom_telemetry_path_replaces_metrics(serve: Serve) -> None:
    _, port = serve(telemetry_path="/probe/logind")
    assert get(port, "/probe/logind")[2] == TEXT
    assert get(port, "/metrics")[0] == 404


def test_query_string_is_ignored(serve: Serve) -> None:
    _, port = serve()
    assert get(port, "/metrics?foo=bar")[2] == TEXT


@pytest.mark.parametrize("method", ["FOO", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"])
def test_methods_other_than_get_and_head_are_405(serve: Serve, method: str) -> None:
    _, port = serve()
    status, headers, _ = get(port, "/metrics", method=method)
    assert status == 405
    assert headers["Allow"] == "GET, HEAD"


def test_failing_source_gives_500_and_the_server_keeps_serving(
    serve: Serve, source: StaticSource
) -> None:
    _, port = serve()
    source.fail = True
    assert get(port, "/metrics")[0] == 500
    source.fail = False
    assert get(port, "/metrics")[0] == 200


def test_keep_alive_and_pipelined_requests_share_one_connection(serve: Serve) -> None:
    _, port = serve()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    for _ in range(3):
        conn.request("GET", "/metrics")
        assert conn.getresponse().read() == TEXT
    conn.close()
    pipelined = b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n" * 2 + (
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    answer = raw(port, pipelined)
    assert answer.count(b"HTTP/1.1 200 OK") == 3
    assert answer.endswith(TEXT)


def test_connection_header_is_read_as_a_list_of_tokens(serve: Serve) -> None:
    _, port = serve()
    requests = (
        b"GET /-/healthy HTTP/1.1\r\nConnection: x-closed-caption\r\n\r\n"  # not "close"
        b"GET /-/healthy HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"  # 1.0 kept open
        b"GET /-/healthy HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n"  # close, last
    )
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(requests)
        answer = read_all(sock)  # returns only because the server closes after the third
    assert answer.count(b"HTTP/1.1 200 OK") == 3
    assert answer.count(b"Connection: close") == 1


def test_http_10_closes_after_the_answer(serve: Serve) -> None:
    _, port = serve()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        answer = read_all(sock)  # returns only because the server closes
    assert answer.endswith(TEXT)
    assert b"Connection: close" in answer


def test_bare_lf_line_endings_are_accepted(serve: Serve) -> None:
    _, port = serve()
    assert raw(port, b"GET /-/healthy HTTP/1.0\n\n").startswith(b"HTTP/1.1 200 OK")


def test_no_request_logged_at_info(serve: Serve, caplog: pytest.LogCaptureFixture) -> None:
    _, port = serve()
    with caplog.at_level(logging.INFO, logger="login_exporter.web"):
        for path in ("/", "/metrics", "/nope", "/-/ready"):
            get(port, path)
    assert [r for r in caplog.records if r.name.startswith("login_exporter.web")] == []


# ------------------------------------------------------------------------------ malformed input


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"\xff\xfe\xfd\r\n\r\n", 400),
        (b"GET /\r\n\r\n", 400),  # HTTP/0.9
        (b"GET  / HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1 extra\r\n\r\n", 400),
        (b"GET / FTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\n\r\n", 505),
        (b"GET / HTTP/9.9\r\n\r\n", 505),
        (b"GET / HTTP/0.9\r\n\r\n", 505),
        (b"G(T / HTTP/1.1\r\n\r\n", 400),
        (b"G\x00T / HTTP/1.1\r\n\r\n", 400),
        (b"GET metrics HTTP/1.1\r\n\r\n", 400),
        (b"GET /\x01 HTTP/1.1\r\n\r\n", 400),
        (b"GET /metr\x7fics HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),
        (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 40 + b"\r\n\r\n", 400),
        (b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\n" + b"X-Big: " + b"a" * 20000 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n", 431),
        (b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(200)) + b"\r\n", 431),
        (b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 5000, 431),  # never ends
        (b"GET / HTTP/1.1\r\n" + b"X: " + b"b" * 70_000, 431),  # one field that never ends
    ],
    ids=lambda value: repr(value[:40]) if isinstance(value, bytes) else str(value),
)
def test_malformed_requests_get_4xx_and_the_server_survives(
    serve: Serve, request_bytes: bytes, status: int
) -> None:
    _, port = serve()
    answer = raw(port, request_bytes)
    assert answer.startswith(b"HTTP/1.1 %d " % status), answer[:80]
    assert b"Connection: close" in answer
    assert get(port, "/metrics")[2] == TEXT


def test_random_binary_junk_never_kills_the_server(serve: Serve) -> None:
    _, port = serve()
    junk = os.urandom(4096)
    for size in (1, 7, 100, 4096):
        with contextlib.suppress(ConnectionResetError, TimeoutError):
            raw(port, junk[:size], timeout=2)
    assert get(port, "/metrics")[2] == TEXT


def test_request_with_body_is_answered_and_closed(serve: Serve) -> None:
    _, port = serve()
    answer = raw(port, b"POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")
    assert answer.startswith(b"HTTP/1.1 405 ")
    assert b"Connection: close" in answer


# ------------------------------------------------------------------------------ slow clients


def test_slow_clients_do_not_stall_scrapes(serve: Serve) -> None:
    _, port = serve()
    slow = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(100)]
    stop = threading.Event()

    def trickle() -> None:
        while not stop.wait(0.05):
            for sock in slow:
                with contextlib.suppress(OSError):
                    sock.send(b"X")

    for sock in slow:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nX-Slow: ")
    trickler = threading.Thread(target=trickle, daemon=True)
    trickler.start()
    timings = []
    try:
        for _ in range(50):
            started = time.monotonic()
            assert get(port, "/metrics")[2] == TEXT
            timings.append(time.monotonic() - started)
    finally:
        stop.set()
        trickler.join()
        for sock in slow:
            sock.close()
    print(f"scrapes beside 100 slow clients: max {max(timings) * 1000:.1f} ms")
    assert max(timings) < 1.0


def test_a_request_head_trickled_past_the_deadline_gets_408(serve: Serve) -> None:
    _, port = serve(request_timeout=0.5)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\n")
        answer = b""
        for _ in range(40):  # one byte every 0.05 s keeps each recv() busy, never the head
            try:
                sock.sendall(b"X")
            except OSError:
                break
            time.sleep(0.05)
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 408 ")


def connect_from(source: str, port: int) -> socket.socket:
    """A connection to 127.0.0.1:port whose source address is ``source`` (any of 127/8, or
    an address of this machine's)."""
    return socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))


def hold(sock: socket.socket) -> socket.socket:
    """Return ``sock`` once the server serves it (a thread waiting for its next request)."""
    sock.sendall(b"GET /-/healthy HTTP/1.1\r\n\r\n")
    assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    return sock


def get_from(source: str, port: int) -> int:
    """GET /metrics on a new connection from ``source``; return the status."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5, source_address=(source, 0))
    try:
        conn.request("GET", "/metrics")
        return conn.getresponse().status
    finally:
        conn.close()


def wait_until_served(source: str, port: int) -> None:
    """Wait until a GET from ``source`` gets 200: the server notices closes asynchronously."""
    for _ in range(100):
        if get_from(source, port) == 200:
            return
        time.sleep(0.02)
    pytest.fail(f"server did not free the connection slots of {source}")


def test_connections_over_the_cap_are_refused_not_queued(serve: Serve) -> None:
    _, port = serve(max_connections=4)
    # Two peers, each within its share (half the cap), fill the cap.
    held = [hold(connect_from(source, port)) for source in ("127.0.0.1", outside_address()) * 2]
    try:
        # Nothing sent: the answer comes without waiting for a request (and without the reset
        # a close with unread request bytes would cause).
        with connect_from(outside_address(), port) as extra:
            assert read_all(extra).startswith(b"HTTP/1.1 503 ")
    finally:
        for sock in held:
            sock.close()
    wait_until_served(outside_address(), port)


def test_one_address_gets_half_the_cap_and_the_rest_stays_for_others(serve: Serve) -> None:
    _, port = serve(max_connections=4)
    # Every loopback address is one peer: a local user cannot take more by using several.
    held = [hold(connect_from(source, port)) for source in ("127.0.0.1", "127.0.0.2")]
    try:
        with connect_from("127.0.0.3", port) as extra:
            assert read_all(extra).startswith(b"HTTP/1.1 503 ")
        assert get_from(outside_address(), port) == 200
    finally:
        for sock in held:
            sock.close()
    wait_until_served("127.0.0.1", port)  # its slots are free again


def test_a_request_deadline_gives_the_slot_back(serve: Serve) -> None:
    _, port = serve(max_connections=2, request_timeout=0.3)  # one slot per address
    with connect_from("127.0.0.1", port) as idle:
        assert read_all(idle) == b""  # closed at the deadline: nothing asked, nothing answered
    wait_until_served("127.0.0.1", port)


# ------------------------------------------------------------------------------ idle and shutdown


def _voluntary_switches(tid: int) -> int:
    status = Path(f"/proc/self/task/{tid}/status").read_text()
    for line in status.splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            return int(line.split()[1])
    raise AssertionError("no voluntary_ctxt_switches")


def test_idle_server_threads_never_wake_up(serve: Serve) -> None:
    earlier = set(threading.enumerate())  # threads of other tests may still be winding down
    _, port = serve()
    idle = socket.create_connection(("127.0.0.1", port), timeout=5)  # a keep-alive connection
    idle.sendall(b"GET /-/healthy HTTP/1.1\r\n\r\n")
    assert idle.recv(65536).startswith(b"HTTP/1.1 200")
    time.sleep(0.1)
    threads = [t for t in set(threading.enumerate()) - earlier if t.name.startswith("web-")]
    assert {t.name for t in threads} == {"web-acceptor", "web-conn"}
    before = {t.native_id: _voluntary_switches(t.native_id or 0) for t in threads}
    time.sleep(1.5)
    after = {tid: _voluntary_switches(tid or 0) for tid in before}
    idle.close()
    assert after == before


def test_shutdown_stops_listening_and_closes_open_connections(serve: Serve) -> None:
    server, port = serve()
    idle = socket.create_connection(("127.0.0.1", port), timeout=5)
    idle.sendall(b"GET /-/healthy HTTP/1.1\r\n\r\n")
    assert idle.recv(65536).startswith(b"HTTP/1.1 200")
    server.shutdown()
    assert idle.recv(65536) == b""  # closed by the server, not left to time out
    idle.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)
    assert not [t for t in threading.enumerate() if t.name == "web-acceptor"]
    server.shutdown()  # idempotent


def test_shutdown_closes_open_tls_connections(serve: Serve, tmp_path: Path, pki: Pki) -> None:
    server, port = serve(config=_tls_config(tmp_path, pki))
    plain = socket.create_connection(("127.0.0.1", port), timeout=5)
    with _client_context(pki).wrap_socket(plain, server_hostname="localhost") as tls:
        tls.sendall(b"GET /-/healthy HTTP/1.1\r\n\r\n")
        assert tls.recv(65536).startswith(b"HTTP/1.1 200")
        server.shutdown()
        with contextlib.suppress(ssl.SSLError, ConnectionResetError):
            assert tls.recv(65536) == b""


def test_serves_a_socket_it_did_not_bind_itself(source: StaticSource) -> None:
    # As with systemd socket activation: a blocking, already listening socket.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    server = WebServer([sock], source)
    server.start()
    try:
        assert get(sock.getsockname()[1], "/metrics")[2] == TEXT
    finally:
        server.shutdown()


# ------------------------------------------------------------------------------ basic auth


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture(scope="module")
def users() -> dict[str, bytes]:
    return {"prometheus": bcrypt.hashpw(b"right horse", bcrypt.gensalt(rounds=4))}


def test_basic_auth_right_credentials(serve: Serve, users: dict[str, bytes]) -> None:
    _, port = serve(config=WebConfig(basic_auth_users=users))
    status, _, body = get(port, "/metrics", headers=_basic("prometheus", "right horse"))
    assert (status, body) == (200, TEXT)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        _basic("prometheus", "wrong"),
        _basic("nobody", "right horse"),
        {"Authorization": "Basic !!!notbase64"},
        {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
        {"Authorization": "Bearer abc"},
    ],
)
def test_basic_auth_rejects_with_a_challenge(
    serve: Serve, users: dict[str, bytes], headers: dict[str, str]
) -> None:
    _, port = serve(config=WebConfig(basic_auth_users=users))
    for path in ("/metrics", "/", "/nope"):
        status, answer_headers, _ = get(port, path, headers=headers)
        assert status == 401
        assert answer_headers["WWW-Authenticate"].startswith("Basic ")


def _auth_config(tmp_path: Path, users: dict[str, bytes], extra: str = "") -> WebConfig:
    path = tmp_path / "web.yml"
    hashes = "".join(f"  {user}: '{hashed.decode()}'\n" for user, hashed in users.items())
    path.write_text(f"basic_auth_users:\n{hashes}{extra}")
    return load_web_config(path)


def test_health_endpoints_answer_without_credentials_under_basic_auth(
    serve: Serve, source: StaticSource, tmp_path: Path, users: dict[str, bytes]
) -> None:
    # The image's HEALTHCHECK and the Kubernetes probes send no credentials.
    source.is_ready = True
    server, port = serve(config=_auth_config(tmp_path, users))
    for headers in ({}, _basic("prometheus", "wrong")):
        for method in ("GET", "HEAD"):
            assert get(port, "/-/healthy", method, headers)[0] == 200
            assert get(port, "/-/ready", method, headers)[0] == 200
        assert get(port, "/metrics", headers=headers)[0] == 401
        assert get(port, "/", headers=headers)[0] == 401
    assert get(port, "/-/healthy")[2] == b"Healthy\n"
    source.is_ready = False
    assert get(port, "/-/ready")[0] == 503
    assert server.authenticator is not None
    assert server.authenticator.bcrypt_checks == 1  # health never looks at the credentials
    assert get(port, "/metrics", headers=_basic("prometheus", "right horse"))[0] == 200


def test_basic_auth_health_puts_the_health_endpoints_behind_basic_auth(
    serve: Serve, source: StaticSource, tmp_path: Path, users: dict[str, bytes]
) -> None:
    source.is_ready = True
    _, port = serve(config=_auth_config(tmp_path, users, "basic_auth_health: true\n"))
    for path in ("/-/healthy", "/-/ready"):
        status, headers, _ = get(port, path)
        assert status == 401 and headers["WWW-Authenticate"].startswith("Basic ")
        assert get(port, path, headers=_basic("prometheus", "wrong"))[0] == 401
        assert get(port, path, headers=_basic("prometheus", "right horse"))[0] == 200


def test_a_telemetry_path_on_a_health_path_stays_behind_basic_auth(
    serve: Serve, tmp_path: Path, users: dict[str, bytes]
) -> None:
    _, port = serve(telemetry_path="/-/healthy", config=_auth_config(tmp_path, users))
    assert get(port, "/-/healthy")[0] == 401
    status, _, body = get(port, "/-/healthy", headers=_basic("prometheus", "right horse"))
    assert (status, body) == (200, TEXT)
    assert get(port, "/-/ready")[0] == 503


def test_basic_auth_pays_for_bcrypt_once_per_credential_pair(
    serve: Serve, users: dict[str, bytes]
) -> None:
    server, port = serve(config=WebConfig(basic_auth_users=users))
    auth = server.authenticator
    assert auth is not None
    for _ in range(10):
        assert get(port, "/metrics", headers=_basic("prometheus", "right horse"))[0] == 200
        assert get(port, "/metrics", headers=_basic("prometheus", "wrong"))[0] == 401
    assert auth.bcrypt_checks == 2


def test_wrong_password_flood_runs_one_bcrypt_at_a_time(
    serve: Serve, users: dict[str, bytes]
) -> None:
    server, port = serve(config=WebConfig(basic_auth_users=users))
    auth = server.authenticator
    assert auth is not None
    statuses: list[int] = []

    def flood(n: int) -> None:
        for i in range(20):
            statuses.append(get(port, "/metrics", headers=_basic("prometheus", f"guess{n}-{i}"))[0])

    threads = [threading.Thread(target=flood, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(statuses) <= {401, 503}
    assert auth.max_concurrent_seen == 1
    # The right password still works afterwards.
    assert get(port, "/metrics", headers=_basic("prometheus", "right horse"))[0] == 200


# ------------------------------------------------------------------------------ TLS


def _tls_config(tmp_path: Path, pki: Pki, extra: str = "") -> WebConfig:
    path = tmp_path / "web.yml"
    path.write_text(
        f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.server_key}\n"
        + extra
    )
    return load_web_config(path)


def _client_context(pki: Pki, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca))
    if cert is not None:
        context.load_cert_chain(str(cert), str(key))
    return context


def tls_get(
    port: int, context: ssl.SSLContext, path: str = "/metrics", host: str = "127.0.0.1"
) -> tuple[int, bytes]:
    conn = http.client.HTTPSConnection(host, port, timeout=5, context=context)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_tls_serves_metrics_with_a_verified_server_certificate(
    serve: Serve, tmp_path: Path, pki: Pki
) -> None:
    _, port = serve(config=_tls_config(tmp_path, pki))
    assert tls_get(port, _client_context(pki)) == (200, TEXT)
    assert tls_get(port, _client_context(pki), "/-/healthy", host="localhost")[0] == 200


@pytest.mark.parametrize(("prefer", "chosen"), [("true", "AES256"), ("false", "AES128")])
def test_prefer_server_cipher_suites_picks_whose_order_wins(
    serve: Serve, tmp_path: Path, pki: Pki, prefer: str, chosen: str
) -> None:
    # OpenSSL's own order puts AES-256-GCM first; this client asks for AES-128-GCM first.
    config = _tls_config(
        tmp_path, pki, f"  max_version: TLS12\n  prefer_server_cipher_suites: {prefer}\n"
    )
    _, port = serve(config=config)
    context = _client_context(pki)
    context.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as plain, \
            context.wrap_socket(plain, server_hostname="localhost") as tls:  # fmt: skip
        cipher = tls.cipher()
    assert cipher is not None and cipher[1] == "TLSv1.2" and chosen in cipher[0], cipher


@pytest.mark.parametrize("http2", ["true", "false"])
def test_http2_is_accepted_and_the_server_speaks_http_1_1(
    serve: Serve, tmp_path: Path, pki: Pki, http2: str
) -> None:
    config = _tls_config(tmp_path, pki, f"http_server_config:\n  http2: {http2}\n")
    _, port = serve(config=config)
    context = _client_context(pki)
    context.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as plain, \
            context.wrap_socket(plain, server_hostname="localhost") as tls:  # fmt: skip
        assert tls.selected_alpn_protocol() == "http/1.1"


def test_plain_http_to_the_tls_port_gets_400(serve: Serve, tmp_path: Path, pki: Pki) -> None:
    _, port = serve(config=_tls_config(tmp_path, pki))
    answer = raw(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.0 400 ")
    assert b"HTTPS server" in answer


def test_a_failed_tls_handshake_gives_the_slot_back(
    serve: Serve, tmp_path: Path, pki: Pki
) -> None:
    _, port = serve(max_connections=2, config=_tls_config(tmp_path, pki))  # one per address
    for hello in (b"GET / HTTP/1.1\r\n\r\n", b"\x16\x03\x01\x00\x05hello", b""):
        with connect_from("127.0.0.1", port) as sock, contextlib.suppress(OSError):
            sock.sendall(hello)
            sock.shutdown(socket.SHUT_WR)  # the server may have closed already: ENOTCONN
            read_all(sock)
        for _ in range(100):  # the slot comes back asynchronously
            with contextlib.suppress(ssl.SSLError, ConnectionError, http.client.HTTPException):
                if tls_get(port, _client_context(pki))[0] == 200:
                    break
            time.sleep(0.02)
        else:
            pytest.fail(f"the slot of a failed handshake ({hello[:8]!r}) stayed taken")


def test_tls_over_ipv6(serve: Serve, tmp_path: Path, pki: Pki) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this kernel")
    _, port = serve(("[::1]:0",), config=_tls_config(tmp_path, pki))
    assert tls_get(port, _client_context(pki), host="::1") == (200, TEXT)


def _required_client_cert(tmp_path: Path, pki: Pki, extra: str = "") -> WebConfig:
    return _tls_config(
        tmp_path,
        pki,
        f"  client_ca_file: {pki.client_ca}\n  client_auth_type: RequireAndVerifyClientCert\n"
        + extra,
    )


def _refused(port: int, context: ssl.SSLContext) -> bool:
    """True when the server rejects the client during or right after the handshake."""
    try:
        tls_get(port, context)
    except (ssl.SSLError, ConnectionError, http.client.RemoteDisconnected):
        return True
    return False


def test_required_client_certificate_is_enforced(serve: Serve, tmp_path: Path, pki: Pki) -> None:
    _, port = serve(config=_required_client_cert(tmp_path, pki))
    assert tls_get(port, _client_context(pki, pki.client_cert, pki.client_key)) == (200, TEXT)
    assert _refused(port, _client_context(pki))
    assert _refused(port, _client_context(pki, pki.rogue_cert, pki.rogue_key))
    # The server survives the refusals.
    assert tls_get(port, _client_context(pki, pki.client_cert, pki.client_key))[0] == 200


def test_optional_client_certificate_is_verified_when_given(
    serve: Serve, tmp_path: Path, pki: Pki
) -> None:
    config = _tls_config(
        tmp_path,
        pki,
        f"  client_ca_file: {pki.client_ca}\n  client_auth_type: VerifyClientCertIfGiven\n",
    )
    _, port = serve(config=config)
    assert tls_get(port, _client_context(pki))[0] == 200
    assert tls_get(port, _client_context(pki, pki.client_cert, pki.client_key))[0] == 200
    assert _refused(port, _client_context(pki, pki.rogue_cert, pki.rogue_key))


def test_client_allowed_sans_filters_verified_certificates(
    serve: Serve, tmp_path: Path, pki: Pki
) -> None:
    config = _required_client_cert(tmp_path, pki, "  client_allowed_sans: [scraper.example]\n")
    _, port = serve(config=config)
    assert tls_get(port, _client_context(pki, pki.client_cert, pki.client_key))[0] == 200
    assert _refused(port, _client_context(pki, pki.other_client_cert, pki.other_client_key))


@pytest.mark.parametrize(
    "allowed",
    ["2001:db8::1", "2001:DB8::1", "2001:db8:0:0:0:0:0:1", "192.0.2.7"],
)
def test_client_allowed_sans_match_ip_addresses_however_they_are_written(
    serve: Serve, tmp_path: Path, pki: Pki, allowed: str
) -> None:
    # getpeercert() spells the certificate's IPv6 SAN 2001:DB8:0:0:0:0:0:1.
    config = _required_client_cert(tmp_path, pki, f"  client_allowed_sans: ['{allowed}']\n")
    _, port = serve(config=config)
    assert tls_get(port, _client_context(pki, pki.ip_client_cert, pki.ip_client_key))[0] == 200
    assert _refused(port, _client_context(pki, pki.client_cert, pki.client_key))


def test_client_allowed_sans_do_not_match_other_ip_addresses(
    serve: Serve, tmp_path: Path, pki: Pki
) -> None:
    config = _required_client_cert(tmp_path, pki, "  client_allowed_sans: ['2001:db8::2']\n")
    _, port = serve(config=config)
    assert _refused(port, _client_context(pki, pki.ip_client_cert, pki.ip_client_key))


def test_tls_and_basic_auth_together(
    serve: Serve, tmp_path: Path, pki: Pki, users: dict[str, bytes]
) -> None:
    tls = _tls_config(tmp_path, pki).tls
    _, port = serve(config=WebConfig(tls=tls, basic_auth_users=users))
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=5, context=_client_context(pki))
    try:
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        assert (response.status, response.read()) == (401, b"Unauthorized\n")
        conn.request("GET", "/metrics", headers=_basic("prometheus", "right horse"))
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, TEXT)
    finally:
        conn.close()


def test_config_headers_are_added_to_every_answer(serve: Serve, tmp_path: Path) -> None:
    path = tmp_path / "web.yml"
    path.write_text("http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n")
    _, port = serve(config=load_web_config(path))
    for route in ("/", "/metrics", "/nope"):
        assert get(port, route)[1]["X-Content-Type-Options"] == "nosniff"
