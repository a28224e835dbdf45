"""Run the real exporter process (inheriting the caller's private /run/systemd) and read it.

Used by the tests and by the benchmarks (bench/exporter.py adds its port range and error type).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO

import requests

from tests.support import namespace
from tests.support.exposition import Samples as Samples
from tests.support.exposition import parse_samples as parse_samples

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Exporter:
    """A running ``python -m login_exporter`` listening on 127.0.0.1:port.

    With ``drain_stderr`` a thread keeps reading its stderr pipe (a long run never blocks on a
    full pipe, and no file is opened for it); otherwise stop() reads what the pipe holds.
    """

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        port: int,
        scheme: str = "http",
        drain_stderr: bool = False,
    ) -> None:
        self.process = process
        self.port = port
        self.url = f"{scheme}://127.0.0.1:{port}"
        self.ready_s: float | None = None  # spawn to first answer, set by start_exporter()
        self._stderr = bytearray()
        self._drain: threading.Thread | None = None
        if drain_stderr and process.stderr is not None:
            self._drain = threading.Thread(target=self._read_stderr, args=(process.stderr,))
            self._drain.daemon = True
            self._drain.start()
        self._connection: http.client.HTTPConnection | None = None

    def _read_stderr(self, pipe: IO[bytes]) -> None:
        for chunk in iter(lambda: pipe.read1(65536), b""):  # type: ignore[attr-defined]
            self._stderr += chunk

    @property
    def pid(self) -> int:
        """The exporter's process id."""
        return self.process.pid

    def get(self, path: str = "/metrics", **kwargs: object) -> requests.Response:
        """GET a path of the exporter."""
        return requests.get(self.url + path, timeout=5, **kwargs)  # type: ignore[arg-type]

    def scrape(self) -> str:
        """GET /metrics over one kept-alive plain-HTTP connection (cheap enough to time).

        Returns the body. Raises OSError or http.client.HTTPException when two tries fail.
        """
        for attempt in (0, 1):
            connection = self._connection
            if connection is None:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            self._connection = connection
            try:
                connection.request("GET", "/metrics")
                response = connection.getresponse()
                body = response.read().decode()
                if response.getheader("Connection", "").lower() == "close":
                    self._drop_connection()
                return body
            except (OSError, http.client.HTTPException):
                self._drop_connection()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _drop_connection(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def samples(self) -> Samples:
        """Scrape /metrics and return its samples. Raises on a non-200 answer."""
        response = self.get()
        response.raise_for_status()
        return parse_samples(response.text)

    def value(self, name: str, **labels: str) -> float | None:
        """Return one sample's value from a fresh scrape, or None when it is absent."""
        return self.samples().get((name, frozenset(labels.items())))

    def wait_for(
        self, predicate: Callable[[Samples], bool], timeout: float = 5.0, what: str = "condition"
    ) -> Samples:
        """Scrape until predicate(samples) holds; return those samples.

        Raises AssertionError naming ``what`` (and showing the last logind_* samples) on timeout.
        """
        deadline = time.monotonic() + timeout
        samples: Samples = {}
        while True:
            with contextlib.suppress(requests.RequestException):
                samples = self.samples()
                if predicate(samples):
                    return samples
            if time.monotonic() > deadline:
                shown = {k: v for k, v in samples.items() if k[0].startswith("logind_")}
                raise AssertionError(f"timed out waiting for {what}; last samples: {shown}")
            time.sleep(0.02)

    def stderr_tail(self, characters: int = 300) -> str:
        """Return the last ``characters`` the drained stderr held so far ("" when not drained)."""
        return bytes(self._stderr).decode(errors="replace").strip()[-characters:]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 5.0) -> tuple[int, str]:
        """Signal the process, wait, and return (exit status, stderr). Idempotent."""
        self._drop_connection()
        if self.process.poll() is None:
            self.process.send_signal(sig)
        if self._drain is not None:
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self._drain.join()
            err = bytes(self._stderr)
        else:
            try:
                _, err = self.process.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                _, err = self.process.communicate()
        return self.process.returncode, (err or b"").decode(errors="replace")


def start_exporter(
    *args: str,
    port: int | None = None,
    scheme: str = "http",
    env: dict[str, str] | None = None,
    ready_path: str | None = "/-/healthy",
    timeout: float = 10.0,
    verify: object = False,
    debounce: str | None = "10ms",
    poll: float = 0.02,
    run_systemd: Path | None = None,
    python: str = sys.executable,
) -> Exporter:
    """Start the exporter on 127.0.0.1:port with ``args`` and wait until ready_path answers.

    ``debounce`` None leaves the exporter's default; ``poll`` is the readiness probe's interval.
    ``run_systemd``: a directory (outside /run/systemd) the exporter sees as /run/systemd, in a
    mount namespace of its own nested in the caller's, so several exporters read several trees.
    ``python``: the interpreter that runs it (default: the caller's).
    Raises AssertionError with its stderr when it exits or never answers, RuntimeError outside
    a private mount namespace (the exporter would read the host's /run/systemd).
    """
    if not namespace.entered():
        raise RuntimeError("start_exporter needs the private /run/systemd: use the logind fixture")
    port = port or free_port()
    command: Sequence[str] = [
        python, "-m", "login_exporter", f"--web.listen-address=127.0.0.1:{port}",
        *([f"--refresh.debounce={debounce}"] if debounce is not None else []), *args,
    ]  # fmt: skip
    if run_systemd is not None:
        # unshare and sh exec in place: the pid stays the exporter's, signals reach it directly.
        bind = 'mount --bind "$0" /run/systemd && exec "$@"'
        command = ["unshare", "--mount", "--propagation", "private", "--",
                   "sh", "-c", bind, str(run_systemd), *command]  # fmt: skip
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, env={**os.environ, **(env or {})},
    )  # fmt: skip
    exporter = Exporter(process, port, scheme, drain_stderr=True)
    if ready_path is None:
        return exporter
    deadline = started + timeout
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            code, err = exporter.stop()
            raise AssertionError(f"exporter exited with {code}: {err}")
        with contextlib.suppress(requests.RequestException):
            response = requests.get(exporter.url + ready_path, timeout=1, verify=verify)  # type: ignore[arg-type]
            if response.status_code in (200, 401):
                exporter.ready_s = time.perf_counter() - started
                return exporter
        time.sleep(poll)
    _, err = exporter.stop(signal.SIGKILL)
    raise AssertionError(f"exporter did not answer {ready_path} within {timeout} s: {err[-300:]}")


@contextlib.contextmanager
def running_exporter(*args: str, **kwargs: object) -> Iterator[Exporter]:
    """start_exporter() as a context manager that always stops the process."""
    exporter = start_exporter(*args, **kwargs)  # type: ignore[arg-type]
    try:
        yield exporter
    finally:
        exporter.stop()
