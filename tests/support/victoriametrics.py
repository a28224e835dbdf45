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
