"""The exporter as a separate process: start it, wait for /-/ready, scrape it, read /proc.

Every figure measured here is measured from outside, as a user would see it: the exporter is
`python3 -m login_exporter --web.listen-address=127.0.0.1:PORT ...` (ports 19900-19999), a
child of the bench process, so it reads the bench's private /run/systemd.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

REPO = Path(__file__).resolve().parent.parent
PORT_FIRST, PORT_LAST = 19900, 19999
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

_next_port = PORT_FIRST


class ExporterUnavailable(RuntimeError):
    """The exporter cannot run here (not written yet, or it fails to start)."""


def free_port() -> int:
    """The next port in 19900-19999 that nothing listens on. Raises RuntimeError if none."""
    global _next_port
    for _ in range(PORT_LAST - PORT_FIRST + 1):
        port = _next_port
        _next_port = PORT_FIRST if port >= PORT_LAST else port + 1
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 19900-19999")


def availability() -> str | None:
    """None when `python3 -m login_exporter --version` works, else the reason it does not."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "login_exporter", "--version"],
            capture_output=True, text=True, timeout=30, cwd=REPO,
        )
    except subprocess.TimeoutExpired:
        return "login_exporter --version hangs"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["exit " + str(done.returncode)])[-1]
        return f"exporter not runnable: {last[:80]}"
    return None


class Exporter:
    """One exporter process. Use as a context manager; it is stopped (SIGTERM) on exit."""

    def __init__(self, *flags: str) -> None:
        self.flags = list(flags)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready_s: float | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the process)
        self._conn: http.client.HTTPConnection | None = None

    # -- life cycle ---------------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> float:
        """Start the process and wait until /-/ready answers 200.

        Returns seconds from spawn to ready. Raises ExporterUnavailable when it exits or never
        becomes ready (with the tail of its stderr).
        """
        cmd = [
            sys.executable, "-m", "login_exporter",
            f"--web.listen-address=127.0.0.1:{self.port}", *self.flags,
        ]
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=self._log, stdin=subprocess.DEVNULL
        )
        deadline = t0 + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                raise ExporterUnavailable(f"exporter exited {code}: {self.stderr()}")
            if self._ready_once():
                self.ready_s = time.perf_counter() - t0
                return self.ready_s
            time.sleep(0.002)
        raise ExporterUnavailable(f"not ready after {timeout:.0f} s: {self.stderr()}")

    def _ready_once(self) -> bool:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
            try:
                conn.request("GET", "/-/ready")
                return conn.getresponse().status == 200
            finally:
                conn.close()
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s. Idempotent."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def stderr(self) -> str:
        """The last 300 characters the exporter wrote to stderr."""
        try:
            self._log.seek(0)
            return self._log.read().decode(errors="replace").strip()[-300:]
        except ValueError:
            return ""

    def __enter__(self) -> Exporter:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        """The exporter's process id. Raises RuntimeError before start()."""
        if self.proc is None:
            raise RuntimeError("not started")
        return self.proc.pid

    @property
    def url(self) -> str:
        """The /metrics URL."""
        return f"http://127.0.0.1:{self.port}/metrics"

    # -- scraping -----------------------------------------------------------------------------

    def scrape(self) -> str:
        """GET /metrics over one kept-alive connection. Returns the body."""
        for attempt in (0, 1):
            conn = self._conn
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            self._conn = conn
            try:
                conn.request("GET", "/metrics")
                response = conn.getresponse()
                body = response.read().decode()
                if response.getheader("Connection", "").lower() == "close":
                    conn.close()
                    self._conn = None
                return body
            except (OSError, http.client.HTTPException):
                conn.close()
                self._conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    # -- /proc --------------------------------------------------------------------------------

    def context_switches(self) -> int:
        """Voluntary + involuntary context switches summed over all of the process's threads."""
        total = 0
        for task in Path(f"/proc/{self.pid}/task").iterdir():
            try:
                text = (task / "status").read_text()
            except OSError:
                continue  # thread ended meanwhile
            for line in text.splitlines():
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    total += int(line.split()[1])
        return total

    def cpu_seconds(self) -> float:
        """utime + stime of the whole process (all threads), from /proc/PID/stat."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK

    def rss_bytes(self) -> int:
        """VmRSS from /proc/PID/status, in bytes."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")


def samples(text: str, name: str) -> Iterator[tuple[dict[str, str], float]]:
    """Yield (labels, value) for every sample of metric ``name`` in a text exposition."""
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        match = _SAMPLE.match(line)
        if match is None or match.group(1) != name:
            continue
        labels = dict(_LABEL.findall(match.group(3) or ""))
        yield labels, float(match.group(4))


def total(text: str, name: str, **want: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``want``."""
    return sum(
        value for labels, value in samples(text, name)
        if all(labels.get(k) == v for k, v in want.items())
    )
