"""One connection's requests and answers, parsed and written by ``http.server``.

``BaseHTTPRequestHandler`` parses the request line and header fields, keeps connections alive
and writes status lines and headers. Around it, this module adds what a server facing the
network needs and the stdlib lacks:
- framing with limits: a request head must arrive whole within ``request_timeout`` (a client
  trickling a byte at a time gets 408) and within 8 KiB of request line (414) and 16 KiB of
  head (431); between keep-alive requests the connection may idle ``idle_timeout``;
- strictness where the stdlib is lenient: HTTP/0.9, a method that is not a token, a target
  with control bytes, folded or nameless header lines, conflicting Content-Length: all 400;
- ``Connection`` read as a list of tokens; a request with a body is answered, then closed
  (a body is never read);
- each answer leaves in one ``send()``; nothing is logged above debug.
"""

from __future__ import annotations

import contextlib
import io
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler
from typing import Any, Final

from login_exporter.web.acceptor import drain
from login_exporter.web.routes import Headers, Response, Site

__all__ = ["MAX_HEAD", "MAX_REQUEST_LINE", "Exchange", "Limits"]

log = logging.getLogger("login_exporter.web")

MAX_REQUEST_LINE: Final = 8192
MAX_HEAD: Final = 16384

# bytes.translate(None, chars) deletes chars at C speed: an empty result means "only chars".
_TOKEN_CHARS: Final = (
    b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)
_VISIBLE_CHARS: Final = bytes(range(0x21, 0x7F)) + bytes(range(0x80, 0x100))


@dataclass(frozen=True, slots=True)
class Limits:
    """Seconds a connection may take: for a request head, and idle between requests."""

    request_timeout: float = 10.0
    idle_timeout: float = 120.0


class Exchange(BaseHTTPRequestHandler):
    """Serves every request on one connection, then returns (the caller closes the socket)."""

    protocol_version = "HTTP/1.1"
    default_request_version = "HTTP/1.1"  # error answers always get a status line
    error_message_format = "%(code)d %(message)s\n"
    error_content_type = "text/plain; charset=utf-8"

    def __init__(
        self,
        sock: socket.socket,
        peer: Any,
        site: Site,
        limits: Limits,
        extra_headers: Headers = (),
        closing: Callable[[], bool] = lambda: False,
    ) -> None:
        # BaseRequestHandler.__init__ wants a socketserver; the acceptor plays that part, so
        # this does what it does (setup, handle, finish) without one.
        self.request = self.connection = sock
        self.client_address = peer
        self.site = site
        self.limits = limits
        self.extra_headers = extra_headers
        self.closing = closing
        self.command = None  # type: ignore[assignment]  # as parse_request() starts
        self.request_version = self.default_request_version
        self._unread = b""
        self._fields: dict[str, str] = {}
        self._first = True
        self._refused = False
        self.wfile = _Coalescing(sock)
        self.rfile = io.BytesIO()
        try:
            self.handle()
        finally:
            self.finish()

    def finish(self) -> None:
        """After an error answer, let the client read it before the socket closes."""
        if self._refused:
            with contextlib.suppress(OSError):
                drain(self.connection)

    # -- one request ------------------------------------------------------------------------------

    def handle_one_request(self) -> None:
        """Read, check and answer one request; sets ``close_connection``."""
        self.close_connection = True
        head = self._next_head()
        if head is None:
            return
        self.connection.settimeout(self.limits.request_timeout)  # bounds sending the answer
        try:
            request = _parsed.get(head)
            if request is None:
                request = self._parse(head)
                if request is None:
                    return
                _remember(head, request)
            self.command, self.path = request.method, request.path
            self.request_version, self.headers = request.version, request.message
            self.close_connection = request.close
            self._fields = request.fields
            self._answer()
        finally:
            self.wfile.flush()

    def _parse(self, head: bytes) -> _Request | None:
        """The request in ``head``, parsed by the stdlib and checked; None after an error answer."""
        self.command = None  # type: ignore[assignment]
        self.request_version = self.default_request_version
        self.rfile = io.BytesIO(head)
        self.raw_requestline = self.rfile.readline()
        if not self._request_line_ok() or not self.parse_request():
            return None
        if self.request_version not in ("HTTP/1.0", "HTTP/1.1"):
            self.request_version = self.default_request_version
            self.send_error(505, "only HTTP/1.0 and HTTP/1.1 are supported")
            return None
        if not self._header_fields_ok():
            return None
        path = self.path
        if not path.startswith("/"):  # absolute-form: keep only the path
            after_scheme = path.partition("//")[2]
            slash = after_scheme.find("/")
            path = after_scheme[slash:] if slash >= 0 else "/"
        path = path.partition("?")[0]
        fields: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            # A field sent twice means the same as one field with both values (RFC 9110 5.3).
            fields[key] = f"{fields[key]}, {value}" if key in fields else value
        return _Request(self.command, path, self.request_version, self.headers, fields,
                        self.close_connection)  # fmt: skip

    def _request_line_ok(self) -> bool:
        # The stdlib takes any whitespace between words, two words as HTTP/0.9 and any method.
        line = self.raw_requestline.rstrip(b"\r\n")
        parts = line.split(b" ")
        if len(parts) != 3:
            self.send_error(400, "malformed request line")
            return False
        method, target, _ = parts
        if not method or method.translate(None, _TOKEN_CHARS):
            self.send_error(400, "malformed method")
            return False
        if not target.startswith((b"/", b"http://", b"https://")) or target.translate(
            None, _VISIBLE_CHARS
        ):
            self.send_error(400, "malformed request target")
            return False
        return True

    def _header_fields_ok(self) -> bool:
        headers = self.headers
        # The email parser keeps going where HTTP must stop: a line without a colon ends the
        # fields (defect, rest as payload), a folded line is joined into its field's value.
        if headers.defects or headers.get_payload():
            self.send_error(400, "malformed header field")
            return False
        for name, value in headers.items():
            if name.encode("latin-1").translate(None, _TOKEN_CHARS) or "\n" in value:
                self.send_error(400, "malformed header field")
                return False
        lengths = {v.strip() for v in headers.get_all("Content-Length", ())}
        if len(lengths) > 1:
            self.send_error(400, "conflicting Content-Length")
            return False
        length = lengths.pop() if lengths else None
        if length is not None and not (length.isascii() and length.isdigit()):
            self.send_error(400, "malformed Content-Length")
            return False
        tokens = {
            token.strip().lower()
            for value in headers.get_all("Connection", ())
            for token in value.split(",")
        }
        if "close" in tokens:
            self.close_connection = True
        elif "keep-alive" in tokens:
            self.close_connection = False
        else:
            self.close_connection = self.request_version != "HTTP/1.1"
        if "Transfer-Encoding" in headers or (length is not None and int(length) > 0):
            self.close_connection = True  # a body is never read: answer, then close
        return True

    def _answer(self) -> None:
        path = self.path
        response = self.site.respond(self.command, path, self._fields)
        self._reply(response, head_only=self.command == "HEAD")
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s %s %d", self.client_address, self.command, path, response.status)

    def _reply(self, response: Response, head_only: bool) -> None:
        self.send_response(response.status)
        self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.flush_headers()
        # The fields that are the same for every answer of this kind, encoded once.
        key = (response.content_type, response.headers, self.extra_headers)
        fixed = _fixed_fields.get(key)
        if fixed is None:
            fixed = _encode_fields(
                (("Content-Type", response.content_type), *response.headers, *self.extra_headers)
            )
            if len(_fixed_fields) >= _FIXED_FIELDS_MAX:
                _fixed_fields.clear()
            _fixed_fields[key] = fixed
        self.wfile.write(fixed)
        if not head_only:
            self.wfile.write(response.body)

    # -- framing ----------------------------------------------------------------------------------

    def _next_head(self) -> bytes | None:
        """The next request head with its blank line, or None when the connection should end.

        Waits ``request_timeout`` for a first request, ``idle_timeout`` for later ones; once a
        head has started it must be complete within ``request_timeout`` (else 408) and within
        the size limits (else 414 or 431). Bytes after the head stay for the next request.
        """
        sock = self.connection
        buf = self._unread.lstrip(b"\r\n")
        while not buf:
            if self.closing():
                return None
            sock.settimeout(
                self.limits.request_timeout if self._first else self.limits.idle_timeout
            )
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                return None
            if not chunk:
                return None
            buf = chunk.lstrip(b"\r\n")
        self._first = False
        deadline = time.monotonic() + self.limits.request_timeout
        end = _head_end(buf)
        while end < 0:
            if len(buf) > MAX_HEAD or (
                len(buf) > MAX_REQUEST_LINE and b"\n" not in buf[:MAX_REQUEST_LINE]
            ):
                self._refuse_head(buf)
                return None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._refuse_head(None)
                return None
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                self._refuse_head(None)
                return None
            if not chunk:
                return None
            buf += chunk
            end = _head_end(buf)
        if end > MAX_HEAD or buf.find(b"\n", 0, MAX_REQUEST_LINE) < 0:
            self._refuse_head(buf)
            return None
        self._unread = buf[end:]
        return buf[:end]

    def _refuse_head(self, buf: bytes | None) -> None:
        """Answer a head that is too slow (``buf`` None) or too large."""
        if buf is None:
            self.send_error(408, "request head not received in time")
        elif buf.find(b"\n", 0, MAX_REQUEST_LINE) < 0:
            self.send_error(414, "request line too long")
        else:
            self.send_error(431, "request head too large")
        with contextlib.suppress(OSError):
            self.wfile.flush()

    # -- what BaseHTTPRequestHandler writes -------------------------------------------------------

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The stdlib's error answer (it closes the connection); the client may read it whole."""
        self._refused = True
        if log.isEnabledFor(logging.DEBUG):
            log.debug("bad request from %s: %d %s", self.client_address, code, message)
        super().send_error(code, message, explain)

    def send_response(self, code: int, message: str | None = None) -> None:
        """Status line and Date; no Server header and no access log."""
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())

    def end_headers(self) -> None:
        """The web config's extra headers go on every answer."""
        for name, value in self.extra_headers:
            self.send_header(name, value)
        super().end_headers()

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The HTTP date of ``timestamp`` (default now), formatted once per second."""
        second = int(time.time() if timestamp is None else timestamp)
        cached = _date_cache
        if cached[0] != second:
            cached = (second, formatdate(second, usegmt=True))
            _set_date_cache(cached)
        return cached[1]

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are logged at debug only: a scrape every few seconds is not news."""
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s: " + format, self.client_address, *args)


@dataclass(frozen=True, slots=True)
class _Request:
    """A parsed, checked request head: what answering it needs."""

    method: str
    path: str  # the route: without query, scheme or authority
    version: str
    message: Message  # as BaseHTTPRequestHandler.headers
    fields: dict[str, str]  # lower-case name -> value (repeated fields joined)
    close: bool


# Parsed heads by their bytes. A scraper sends the same head every time, so the stdlib's parse
# (its email parser: the larger part of a request's cost) runs once per scraper. A dict read
# and written under the GIL, bounded; heads with credentials are never kept in memory.
_parsed: dict[bytes, _Request] = {}
_PARSED_MAX: Final = 256
_PARSED_HEAD_MAX: Final = 2048


def _remember(head: bytes, request: _Request) -> None:
    if len(head) > _PARSED_HEAD_MAX or "authorization" in request.fields:
        return
    if len(_parsed) >= _PARSED_MAX:
        _parsed.clear()
    _parsed[head] = request


_fixed_fields: dict[tuple[str, Headers, Headers], bytes] = {}
_FIXED_FIELDS_MAX: Final = 64


def _encode_fields(fields: Headers) -> bytes:
    """Header lines and the blank line that ends them, as send_header() and end_headers()."""
    return b"".join(f"{name}: {value}\r\n".encode("latin-1") for name, value in fields) + b"\r\n"


_date_cache: tuple[int, str] = (0, "")


def _set_date_cache(value: tuple[int, str]) -> None:
    global _date_cache  # a tuple swap: atomic, no lock
    _date_cache = value


def _head_end(buf: bytes) -> int:
    """Index just past the blank line ending the head, or -1: accepts CRLF and bare LF."""
    crlf = buf.find(b"\n\r\n")
    lf = buf.find(b"\n\n", 0, crlf if crlf >= 0 else len(buf))
    if crlf < 0 and lf < 0:
        return -1
    if lf < 0 or (0 <= crlf < lf):
        return crlf + 3
    return lf + 2


class _Coalescing(io.BufferedIOBase):
    """A write-only file over a socket that sends everything written since the last flush in
    one ``sendall()``: headers and body in one segment, one system call."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self._sock = sock
        self._parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        if self._parts:
            data = b"".join(self._parts)
            self._parts.clear()
            self._sock.sendall(data)
