"""One client connection to a D-Bus message bus, driven by someone else's selector (sans-I/O).

jeepney builds and parses the messages; this module only owns the socket: a non-blocking
connect, the SASL EXTERNAL handshake pipelined with BEGIN (as sd-bus does, so no round trip
waits on the loop), the framing of incoming messages, and bounded buffers both ways. Nothing
here blocks, sleeps or spawns a thread: the caller registers :meth:`Connection.fileno` for
reading (and for writing while :attr:`Connection.wants_write`) and calls :meth:`read` /
:meth:`flush` when the fd is ready.

Any local user may address a message to this connection, so :meth:`read` shows the caller each
message's header (type, sender, size, signature) before its body is parsed or even buffered: a
body the caller does not admit is skipped as its bytes arrive, whatever its size.
"""

from __future__ import annotations

import errno
import socket
import struct
from collections.abc import Callable, Iterator
from typing import TypeVar

from jeepney.bus import get_connectable_addresses
from jeepney.low_level import Endianness, Header, Message

T = TypeVar("T")

SYSTEM_BUS = "unix:path=/run/dbus/system_bus_socket"
# Read at most this much per wake-up, so a flooding bus cannot keep the loop from its other fds.
READ_CHUNK = 65536
# A message larger than this is skipped unread (ListSessions at 10,000 sessions is about
# 0.6 MB); a header larger than this is not even parsed (logind's and the bus's are < 1 KiB).
MAX_MESSAGE = 16 * 1024 * 1024
MAX_HEADER = 64 * 1024
# The fixed part of every message: endianness, type, flags, version, body length, serial,
# length of the header fields array.
_FIXED = 16
_ENDIANNESS = {ord("l"): "<I", ord("B"): ">I"}
_JEEPNEY_ENDIANNESS = {ord("l"): Endianness.little, ord("B"): Endianness.big}
MAX_OUTGOING = 4 * 1024 * 1024
MAX_AUTH_LINE = 8192
# AUTH EXTERNAL with an empty authorization identity ("DATA" answers the server's challenge):
# the bus takes the uid from the socket's peer credentials, which stays right inside user
# namespaces, where geteuid() is not the uid the bus sees. BEGIN follows without waiting for OK.
_AUTH = b"\0AUTH EXTERNAL\r\nDATA\r\nBEGIN\r\n"


# Shown each message's header (None when the header itself is over MAX_HEADER) and the
# message's whole size in bytes; answers whether the body is wanted.
Admit = Callable[[Header | None, int], bool]


def framed_sizes(fixed: bytes) -> tuple[int, int]:
    """Return (header size, message size) in bytes from a message's first 16 bytes; the header
    size includes the padding before the body.

    Raises ValueError when the bytes do not start a D-Bus message (no endianness mark).
    """
    code = _ENDIANNESS.get(fixed[0])
    if code is None:
        raise ValueError(f"no endianness mark: {fixed[:1]!r}")
    body = struct.unpack(code, fixed[4:8])[0]
    fields = struct.unpack(code, fixed[12:16])[0]
    header = _FIXED + fields + (-fields % 8)
    return header, header + body


def read_header(raw: bytes) -> Header:
    """Return the header of the message ``raw`` starts with (at least its header's bytes).

    The fields that bus messages carry (names, paths, signatures, serials) are read here
    directly: jeepney's general parser costs ~15 µs a header, which would bound how fast a
    flood of forgeries can be skipped. A field of another type is left to jeepney.

    Raises ValueError (or struct.error, IndexError) when the bytes are not a D-Bus header.
    """
    code = _ENDIANNESS[raw[0]]
    u32 = struct.Struct(code).unpack_from
    end = _FIXED + u32(raw, 12)[0]
    fields: dict[int, str | int] = {}
    pos = _FIXED
    while pos < end:
        pos += -pos % 8
        field, length = raw[pos], raw[pos + 1]
        signature = raw[pos + 2:pos + 2 + length]
        pos += 3 + length
        if signature in (b"s", b"o"):
            pos += -pos % 4
            size = u32(raw, pos)[0]
            fields[field] = raw[pos + 4:pos + 4 + size].decode()
            pos += 5 + size
        elif signature == b"g":
            size = raw[pos]
            fields[field] = raw[pos + 1:pos + 1 + size].decode("ascii")
            pos += 2 + size
        elif signature == b"u":
            pos += -pos % 4
            fields[field] = u32(raw, pos)[0]
            pos += 4
        else:
            return Header.from_buffer(raw)[0]
    if pos != end:
        raise ValueError("header fields overrun their array")
    return Header(_JEEPNEY_ENDIANNESS[raw[0]], raw[1], raw[2], raw[3], u32(raw, 4)[0],
                  u32(raw, 8)[0], fields)


class ConnectionLost(Exception):
    """The connection is unusable (closed by the bus, refused, or the bus broke the protocol);
    the message says why. The caller closes it and connects again later."""


def _parsed(parse: Callable[[bytes], T], data: bytes) -> T:
    """Return ``parse(data)``. Raises ConnectionLost for anything jeepney raises on bytes
    that are not D-Bus (it raises many kinds)."""
    try:
        return parse(data)
    except Exception as exc:
        raise ConnectionLost(f"malformed message from the bus: {exc!r}") from exc


def socket_path(address: str) -> str:
    """Return the unix socket path (a leading NUL for an abstract socket) of a D-Bus address
    such as ``unix:path=/run/dbus/system_bus_socket``.

    Raises ValueError naming the address when it has no unix transport this client can use.
    """
    try:
        return str(next(get_connectable_addresses(address)))
    except (RuntimeError, ValueError, StopIteration) as exc:
        raise ValueError(
            f"invalid D-Bus address {address!r} (expected e.g. {SYSTEM_BUS}): {exc}"
        ) from None


class Connection:
    """A non-blocking connection to one bus address. ``open()`` then feed it the fd's events."""

    def __init__(self, address: str) -> None:
        self.path = socket_path(address)
        self._sock: socket.socket | None = None
        self._outgoing = bytearray()
        self._auth_buffer = bytearray()
        self._authenticated = False
        self._incoming = bytearray()
        self._skip = 0
        self._serial = 0

    def open(self) -> None:
        """Connect and queue the handshake. Raises OSError when the socket cannot be reached
        (missing, refused, permission denied); the connection stays closed then."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.setblocking(False)
        try:
            sock.connect(self.path)
        except BlockingIOError as exc:  # the listen backlog is full: try again later
            sock.close()
            raise OSError(errno.EAGAIN, "bus socket busy") from exc
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self._outgoing = bytearray(_AUTH)

    @property
    def is_open(self) -> bool:
        """Whether open() succeeded and close() has not been called since."""
        return self._sock is not None

    def fileno(self) -> int:
        """The socket's fd (-1 when closed)."""
        return self._sock.fileno() if self._sock is not None else -1

    @property
    def wants_write(self) -> bool:
        """Whether bytes are waiting to be written (register the fd for writing then)."""
        return bool(self._outgoing)

    def send(self, message: Message) -> int:
        """Queue ``message`` with the next serial and try to write it; return the serial.

        Raises ConnectionLost when the bus does not take data fast enough to keep the queue
        under its bound, or the socket failed.
        """
        self._serial += 1
        self._outgoing += message.serialise(serial=self._serial)
        if len(self._outgoing) > MAX_OUTGOING:
            raise ConnectionLost(f"more than {MAX_OUTGOING} bytes waiting to be sent")
        self.flush()
        return self._serial

    def flush(self) -> None:
        """Write as much of the queue as the socket takes now. Raises ConnectionLost."""
        if self._sock is None or not self._outgoing:
            return
        try:
            sent = self._sock.send(self._outgoing)
        except BlockingIOError:
            return
        except OSError as exc:
            raise ConnectionLost(f"writing to the bus failed: {exc}") from exc
        del self._outgoing[:sent]

    def read(self, admit: Admit) -> Iterator[Message]:
        """Read what one recv() gives and yield the complete messages in it that ``admit``
        wants; the others are dropped unparsed (``admit`` sees each message once, its header
        as soon as it is buffered, and counts what it refuses).

        Raises ConnectionLost on end of file, a refused handshake, or bytes that are not
        D-Bus messages.
        """
        if self._sock is None:
            raise ConnectionLost("not connected")
        try:
            data = self._sock.recv(READ_CHUNK)
        except BlockingIOError:
            return
        except OSError as exc:
            raise ConnectionLost(f"reading from the bus failed: {exc}") from exc
        if not data:
            raise ConnectionLost("the bus closed the connection")
        if not self._authenticated:
            data = self._authenticate(data)
            if not data:
                return
        if self._skip:
            skipped = min(self._skip, len(data))
            self._skip -= skipped
            data = data[skipped:]
        self._incoming += data
        yield from self._frames(admit)

    def _frames(self, admit: Admit) -> Iterator[Message]:
        """Yield the admitted complete messages at the front of the incoming buffer; skip
        the refused ones (setting ``_skip`` to what has not arrived yet of one).

        Raises ConnectionLost when the buffer does not hold D-Bus messages.
        """
        buffer = self._incoming
        while not self._skip and len(buffer) >= _FIXED:
            header_size, size = _parsed(framed_sizes, bytes(buffer[:_FIXED]))
            if header_size > MAX_HEADER:
                wanted = admit(None, size)
            elif len(buffer) < header_size:
                return
            else:
                header = _parsed(read_header, bytes(buffer[:header_size]))
                wanted = admit(header, size)
            if not wanted or size > MAX_MESSAGE:  # never buffer more than MAX_MESSAGE
                self._skip = max(0, size - len(buffer))
                del buffer[:size]
                continue
            if len(buffer) < size:
                return
            message = _parsed(Message.from_buffer, bytes(buffer[:size]))
            del buffer[:size]
            yield message

    def _authenticate(self, data: bytes) -> bytes:
        """Consume the server's SASL lines; return the bytes after OK (the first messages)."""
        self._auth_buffer += data
        while b"\r\n" in self._auth_buffer:
            line, _, rest = bytes(self._auth_buffer).partition(b"\r\n")
            self._auth_buffer = bytearray(rest)
            if line.startswith(b"OK "):
                self._authenticated = True
                remaining = bytes(self._auth_buffer)
                self._auth_buffer = bytearray()
                return remaining
            if not line.startswith(b"DATA"):
                raise ConnectionLost(f"the bus refused authentication: {line[:200]!r}")
        if len(self._auth_buffer) > MAX_AUTH_LINE:
            raise ConnectionLost("the bus sent an over-long authentication line")
        return b""

    def close(self) -> None:
        """Close the socket and forget buffered data (idempotent)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._outgoing = bytearray()
        self._auth_buffer = bytearray()
        self._authenticated = False
        self._incoming = bytearray()
        self._skip = 0
        self._serial = 0
