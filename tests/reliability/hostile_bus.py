"""A unix socket that speaks like a broken or hostile D-Bus daemon, for fault tests.

Each accepted connection reads the client's handshake and then misbehaves as told: refuse
authentication, send garbage, announce a huge message, or flood valid signals. It records when
each connection arrived, so tests can check the client's reconnect back-off.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from pathlib import Path

from jeepney.low_level import HeaderFields, Message, MessageType
from jeepney.wrappers import new_header

_OK = b"DATA\r\nOK 0123456789abcdef0123456789abcdef\r\n"
# A little-endian signal header announcing a 128 MiB body.
_HUGE = b"l\x04\x01\x01" + (128 * 1024 * 1024).to_bytes(4, "little") + b"\x01\x00\x00\x00" \
    + (0).to_bytes(4, "little")


def flood_message(serial: int) -> bytes:
    """A valid PropertiesChanged signal from a made-up sender, serialised."""
    header = new_header(MessageType.signal)
    header.fields[HeaderFields.path] = "/org/freedesktop/login1/session/_31"
    header.fields[HeaderFields.interface] = "org.freedesktop.DBus.Properties"
    header.fields[HeaderFields.member] = "PropertiesChanged"
    header.fields[HeaderFields.signature] = "sa{sv}as"
    header.fields[HeaderFields.sender] = ":1.1"
    idle = {"IdleHint": ("b", serial % 2 == 0)}
    body: tuple[object, ...] = ("org.freedesktop.login1.Session", idle, [])
    return bytes(Message(header, body).serialise(serial=serial))


class HostileBus:
    """Serves ``behaviour`` ("reject", "garbage", "huge", "flood") on ``path`` in a thread."""

    def __init__(self, path: Path, behaviour: str) -> None:
        self.path = path
        self.behaviour = behaviour
        self.connections: list[float] = []
        self.sent = 0
        self._stop = threading.Event()
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        os.chmod(path, 0o666)
        self._server.listen(16)
        self._server.settimeout(0.1)
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def address(self) -> str:
        return f"unix:path={self.path}"

    def __enter__(self) -> HostileBus:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._server.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            self.connections.append(time.monotonic())
            threading.Thread(target=self._misbehave, args=(conn,), daemon=True).start()

    def _misbehave(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            conn.settimeout(2)
            conn.recv(4096)  # the handshake (and whatever the client pipelined after it)
            if self.behaviour == "reject":
                conn.sendall(b"REJECTED EXTERNAL\r\n")
            elif self.behaviour == "garbage":
                conn.sendall(_OK + b"\xff" + os.urandom(4095))  # \xff: no endianness mark
            elif self.behaviour == "huge":
                conn.sendall(_OK + _HUGE + b"\0" * 65536)
            elif self.behaviour == "flood":
                conn.sendall(_OK)
                batch = b"".join(flood_message(i + 1) for i in range(200))
                while not self._stop.is_set():
                    conn.sendall(batch)
                    self.sent += 200
            # Keep the connection open until the client gives up on it.
            while not self._stop.is_set() and conn.recv(4096):
                pass
