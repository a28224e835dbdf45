"""A real VictoriaMetrics single node (Debian's package ``victoria-metrics``) for tests.

It accepts Prometheus remote write at /api/v1/write and answers the Prometheus query API;
``-search.latencyOffset=0s`` lets an instant query see samples written a moment ago.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

import pytest
import requests

from tests.support.prometheus import Prometheus


class VictoriaMetrics(Prometheus):
    """victoria-metrics on 127.0.0.1:port; the query helpers are Prometheus's (same API)."""

    def __init__(self, port: int) -> None:
        super().__init__(port, [])
        self.dir = Path(tempfile.mkdtemp(prefix="login-exporter-vm-"))

    @property
    def write_url(self) -> str:
        """The remote-write endpoint."""
        return f"{self.url}/api/v1/write"

    def start(self) -> VictoriaMetrics:
        """Start the server and wait for /health; fail the test when it cannot."""
        binary = shutil.which("victoria-metrics")
        if binary is None:
            pytest.fail("victoria-metrics missing: apt-get install victoria-metrics "
                        "(.ci/apt-packages.txt)")  # fmt: skip
        with open(self.dir / "prometheus.log", "wb") as log:  # log() reads this name
            self.proc = subprocess.Popen(
                [binary, f"-httpListenAddr=127.0.0.1:{self.port}",
                 f"-storageDataPath={self.dir / 'data'}", "-retentionPeriod=1d",
                 "-search.latencyOffset=0s", "-search.disableCache", "-loggerLevel=WARN"],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        self.wait(self._healthy, 30, "victoria-metrics /health")
        return self

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"victoria-metrics exited:\n{self.log()}")
        return requests.get(f"{self.url}/health", timeout=2).status_code == 200

    def __enter__(self) -> VictoriaMetrics:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class VMAlert(Prometheus):
    """vmalert (same Debian package) evaluating Prometheus rule files against VictoriaMetrics
    and writing the recorded series back into it; its own API (alerts) on 127.0.0.1:port."""

    def __init__(self, port: int, store: VictoriaMetrics, rules: list[Path],
                 interval: str = "1s") -> None:  # fmt: skip
        super().__init__(port, [])
        self.dir = Path(tempfile.mkdtemp(prefix="login-exporter-vmalert-"))
        self.store, self.rule_paths, self.interval = store, rules, interval

    def start(self) -> VMAlert:
        """Start vmalert and wait for /health; fail the test when it cannot."""
        binary = shutil.which("vmalert")
        if binary is None:
            pytest.fail("vmalert missing: apt-get install victoria-metrics (.ci/apt-packages.txt)")
        with open(self.dir / "prometheus.log", "wb") as log:
            self.proc = subprocess.Popen(
                [binary, f"-httpListenAddr=127.0.0.1:{self.port}",
                 f"-datasource.url={self.store.url}", f"-remoteWrite.url={self.store.url}",
                 f"-evaluationInterval={self.interval}", "-remoteWrite.flushInterval=1s",
                 # Alerts go nowhere: the tests read them from vmalert's own API.
                 "-notifier.url=http://127.0.0.1:9", "-loggerLevel=ERROR",
                 *[f"-rule={rule}" for rule in self.rule_paths]],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        self.wait(self._healthy, 30, "vmalert /health")
        return self

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"vmalert exited:\n{self.log()}")
        return requests.get(f"{self.url}/health", timeout=2).status_code == 200

    def __enter__(self) -> VMAlert:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
