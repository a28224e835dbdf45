"""The exporter as a separate process for a measurement: tests/support's wrapper, with the
bench's port range (19900-19999), its error type and the /proc figures of that process.

Every figure measured here is measured from outside, as a user would see it: the exporter is
`python3 -m login_exporter --web.listen-address=127.0.0.1:PORT ...`, a child of the bench
process, so it reads the bench's private /run/systemd.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from types import TracebackType

from tests.support import exporter as support
from tests.support import proc
from tests.support.exposition import samples as samples
from tests.support.exposition import total as total

REPO = support.ROOT
class PortRange:
    """Ports on 127.0.0.1 from ``first`` to ``last`` handed out in turn (a bench's own range, clear
    of the e2e suite's 19800-19899)."""

    def __init__(self, first: int, last: int) -> None:
        self.first, self.last = first, last
        self._next = first

    def free(self) -> int:
        """The next port of the range nothing listens on. Raises RuntimeError if none."""
        for _ in range(self.last - self.first + 1):
            port = self._next
            self._next = self.first if port >= self.last else port + 1
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
        raise RuntimeError(f"no free port in {self.first}-{self.last}")


# The exporter benches' range.
free_port = PortRange(19900, 19999).free


class ExporterUnavailable(RuntimeError):
    """The exporter cannot run here (not written yet, or it fails to start)."""


def availability(python: str = sys.executable) -> str | None:
    """None when `PYTHON -m login_exporter --version` works, else the reason it does not."""
    try:
        done = subprocess.run(
            [python, "-m", "login_exporter", "--version"],
            capture_output=True, text=True, timeout=30, cwd=REPO,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return "login_exporter --version hangs"
    except OSError as exc:  # no such interpreter
        return f"{python}: {exc.strerror}"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["exit " + str(done.returncode)])[-1]
        return f"exporter not runnable: {last[:80]}"
    return None


class Exporter:
    """One exporter process with the exporter's own defaults. Use as a context manager; it is
    stopped (SIGTERM) on exit."""

    def __init__(self, *flags: str, python: str = sys.executable) -> None:
        self.flags = list(flags)
        self.python = python
        self.port = free_port()
        self.ready_s: float | None = None
        self._running: support.Exporter | None = None

    def start(self, timeout: float = 60.0) -> float:
        """Start the process and wait until /-/ready answers 200.

        Returns seconds from spawn to ready. Raises ExporterUnavailable when it exits or never
        becomes ready (with the tail of its stderr).
        """
        try:
            self._running = support.start_exporter(
                *self.flags, port=self.port, ready_path="/-/ready", timeout=timeout,
                debounce=None, poll=0.002, python=self.python,
            )  # fmt: skip
        except AssertionError as exc:
            raise ExporterUnavailable(str(exc)[-400:]) from None
        self.ready_s = self._running.ready_s
        assert self.ready_s is not None
        return self.ready_s

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s. Idempotent."""
        if self._running is not None:
            self._running.stop()

    def __enter__(self) -> Exporter:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> support.Exporter:
        """The started process. Raises RuntimeError before start()."""
        if self._running is None:
            raise RuntimeError("not started")
        return self._running

    @property
    def pid(self) -> int:
        """The exporter's process id. Raises RuntimeError before start()."""
        return self.running.pid

    def scrape(self) -> str:
        """GET /metrics over one kept-alive connection. Returns the body."""
        return self.running.scrape()

    def stderr(self) -> str:
        """The last 300 characters the exporter wrote to stderr."""
        return self.running.stderr_tail()

    def context_switches(self) -> int:
        """Voluntary + involuntary context switches summed over all of the process's threads."""
        return proc.context_switches(self.pid)

    def cpu_seconds(self) -> float:
        """utime + stime of the whole process (all threads), from /proc/PID/stat."""
        return proc.cpu_seconds(self.pid)

    def rss_bytes(self) -> int:
        """VmRSS from /proc/PID/status, in bytes."""
        return proc.rss_kib(self.pid) * 1024


def idle_wakeups(seconds: float) -> tuple[int, float]:
    """(context switches, CPU ms) of an exporter left alone for ``seconds`` after one scrape."""
    with Exporter() as exp:
        exp.scrape()
        time.sleep(1.0)  # let the scrape's connection close and the loop go back to sleep
        ctx0, cpu0 = exp.context_switches(), exp.cpu_seconds()
        time.sleep(seconds)
        ctx1, cpu1 = exp.context_switches(), exp.cpu_seconds()
    return ctx1 - ctx0, (cpu1 - cpu0) * 1e3
