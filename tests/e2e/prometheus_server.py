"""A real Prometheus server on the host, with a temporary config and TSDB."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.e2e.scenario import wait_until


class Prometheus:
    """A real Prometheus on the host (temp config and TSDB), scraping the exporter every 1 s."""

    def __init__(
        self, port: int, targets: list[str], labelled: dict[str, str] | None = None
    ) -> None:
        """Scrape ``targets`` as job "login-exporter"; with ``labelled``, scrape them again as
        job "login-exporter-labelled" with those target labels (what deploy/ alerts select on).
        """
        self.port = port
        self.dir = Path(tempfile.mkdtemp(prefix="login-exporter-e2e-prom-"))
        self.config = self.dir / "prometheus.yml"
        self.rule_files: list[Path] = []
        self.targets = targets
        self.labelled = labelled or {}
        self.proc: subprocess.Popen[bytes] | None = None

    def write_config(self) -> None:
        jobs: list[dict[str, Any]] = [
            {"job_name": "login-exporter", "static_configs": [{"targets": self.targets}]}
        ]
        if self.labelled:
            jobs.append({"job_name": "login-exporter-labelled",
                         "static_configs": [{"targets": self.targets,
                                             "labels": self.labelled}]})
        config: dict[str, Any] = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": jobs,
        }
        if self.rule_files:
            config["rule_files"] = [str(p) for p in self.rule_files]
        self.config.write_text(yaml.safe_dump(config))

    def start(self) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("prometheus missing: apt-get install prometheus")
        self.write_config()
        log = open(self.dir / "prometheus.log", "wb")  # noqa: SIM115 - closed in stop()
        self._log = log
        self.proc = subprocess.Popen(
            [binary, f"--config.file={self.config}", f"--storage.tsdb.path={self.dir / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-lifecycle"],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL,
        )
        wait_until(self._ready, timeout=30, interval=0.1, what="prometheus /-/ready")

    def _ready(self) -> bool | None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited:\n{self.log()}")
        r = requests.get(f"{self.url}/-/ready", timeout=2)
        return True if r.status_code == 200 else None

    def reload(self) -> None:
        self.write_config()
        r = requests.post(f"{self.url}/-/reload", timeout=10)
        assert r.status_code == 200, f"reload failed: {r.text}\n{self.log()}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return (self.dir / "prometheus.log").read_text(errors="replace")[-3000:]

    def query(self, expr: str) -> list[dict[str, object]]:
        """Instant query; returns the result vector. AssertionError when it does not parse."""
        r = requests.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        body = r.json()
        assert body.get("status") == "success", f"{expr!r}: {body}"
        data = body["data"]
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, object]] = data["result"]
        return result

    def rules(self) -> list[dict[str, Any]]:
        """The rule groups Prometheus has loaded (GET /api/v1/rules)."""
        body = requests.get(f"{self.url}/api/v1/rules", timeout=10).json()
        assert body.get("status") == "success", body
        groups: list[dict[str, Any]] = body["data"]["groups"]
        return groups

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
            self.proc = None
            self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
