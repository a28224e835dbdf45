"""Run the real exporter process (inheriting the test's private /run/systemd) and read it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support import namespace

ROOT = Path(__file__).resolve().parents[2]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def parse_samples(text: str) -> Samples:
    """Return {(sample name, labels): value} for a text exposition."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


class Exporter:
    """A running ``python -m login_exporter`` listening on 127.0.0.1:port."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, scheme: str = "http") -> None:
        self.process = process
        self.port = port
        self.url = f"{scheme}://127.0.0.1:{port}"

    def get(self, path: str = "/metrics", **kwargs: object) -> requests.Response:
        """GET a path of the exporter."""
        return requests.get(self.url + path, timeout=5, **kwargs)  # type: ignore[arg-type]

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

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 5.0) -> tuple[int, str]:
        """Signal the process, wait, and return (exit status, stderr)."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            _, err = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        return self.process.returncode, err.decode(errors="replace")


def start_exporter(
    *args: str,
    port: int | None = None,
    scheme: str = "http",
    env: dict[str, str] | None = None,
    ready_path: str | None = "/-/healthy",
    timeout: float = 10.0,
    verify: object = False,
) -> Exporter:
    """Start the exporter on 127.0.0.1:port with ``args`` and wait until ready_path answers.

    Raises AssertionError with its stderr when it exits or never answers, RuntimeError outside
    the tests' private mount namespace (the exporter would read the host's /run/systemd).
    """
    if not namespace.entered():
        raise RuntimeError("start_exporter needs the private /run/systemd: use the logind fixture")
    port = port or free_port()
    command: Sequence[str] = [
        sys.executable, "-m", "login_exporter",
        f"--web.listen-address=127.0.0.1:{port}", "--refresh.debounce=10ms", *args,
    ]  # fmt: skip
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    exporter = Exporter(process, port, scheme)
    if ready_path is None:
        return exporter
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            _, err = process.communicate()
            raise AssertionError(f"exporter exited with {process.returncode}: {err.decode()}")
        with contextlib.suppress(requests.RequestException):
            response = requests.get(exporter.url + ready_path, timeout=1, verify=verify)  # type: ignore[arg-type]
            if response.status_code in (200, 401):
                return exporter
        time.sleep(0.02)
    exporter.stop(signal.SIGKILL)
    raise AssertionError(f"exporter did not answer {ready_path} within {timeout} s")


@contextlib.contextmanager
def running_exporter(*args: str, **kwargs: object) -> Iterator[Exporter]:
    """start_exporter() as a context manager that always stops the process."""
    exporter = start_exporter(*args, **kwargs)  # type: ignore[arg-type]
    try:
        yield exporter
    finally:
        exporter.stop()
