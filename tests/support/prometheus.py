"""A real Prometheus server and Alertmanager (Debian's packages) with temporary configs and
storage, for tests."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
import requests
import yaml

JOB = "login-exporter"


class Prometheus:
    """Prometheus on 127.0.0.1:port scraping ``targets`` as job "login-exporter" every second,
    evaluating its rules every second.

    ``labels`` are target labels of that job (kiosk, site, ...: what the deploy/ alerts select
    hosts by). With ``labelled``, the same targets are scraped again as job
    "login-exporter-labelled" with those target labels. With ``alertmanager`` (host:port), alerts
    are sent there. ``config`` replaces the generated config (rule files still added);
    ``agent`` runs it in agent mode (scrape and remote_write only); ``flags`` are added to the
    command line.
    """

    def __init__(
        self, port: int, targets: list[str], labelled: dict[str, str] | None = None, *,
        labels: dict[str, str] | None = None, alertmanager: str | None = None,
        config: dict[str, Any] | None = None, agent: bool = False, flags: tuple[str, ...] = (),
    ) -> None:  # fmt: skip
        self.port = port
        self.dir = Path(tempfile.mkdtemp(prefix="login-exporter-prom-"))
        self.config = self.dir / "prometheus.yml"
        self.rule_files: list[Path] = []
        self.targets = targets
        self.labels = labels or {}
        self.labelled = labelled or {}
        self.alertmanager = alertmanager
        self.custom, self.agent, self.flags = config, agent, flags
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_config(self) -> None:
        """Write prometheus.yml for the targets, labels and rule files set now."""
        static: dict[str, Any] = {"targets": self.targets}
        if self.labels:
            static["labels"] = self.labels
        jobs: list[dict[str, Any]] = [{"job_name": JOB, "static_configs": [static]}]
        if self.labelled:
            jobs.append({"job_name": f"{JOB}-labelled",
                         "static_configs": [{"targets": self.targets,
                                             "labels": self.labelled}]})  # fmt: skip
        config: dict[str, Any] = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": jobs,
        }
        if self.custom is not None:
            config = dict(self.custom)
        if self.rule_files:
            config["rule_files"] = [str(p) for p in self.rule_files]
        if self.alertmanager:
            config["alerting"] = {"alertmanagers": [
                {"static_configs": [{"targets": [self.alertmanager]}]}]}
        self.config.write_text(yaml.safe_dump(config))

    def start(self) -> Prometheus:
        """Start the server and wait for /-/ready; fail the test when it cannot."""
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("prometheus missing: apt-get install prometheus (.ci/apt-packages.txt)")
        self.write_config()
        with open(self.dir / "prometheus.log", "wb") as log:
            self.proc = subprocess.Popen(
                [binary, f"--config.file={self.config}",
                 *(["--enable-feature=agent", f"--storage.agent.path={self.dir / 'wal'}"]
                   if self.agent else [f"--storage.tsdb.path={self.dir / 'tsdb'}"]),
                 f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-lifecycle",
                 *self.flags],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        self.wait(self._ready, 30, "prometheus /-/ready")
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited:\n{self.log()}")
        return requests.get(f"{self.url}/-/ready", timeout=2).status_code == 200

    def wait(self, check: Any, timeout: float, what: str) -> None:
        """Poll ``check()`` until it is truthy; AssertionError (with the log) on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if check():
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s: {what}\n{self.log()}")
            time.sleep(0.1)

    def reload(self) -> None:
        """Rewrite the config and make the server load it."""
        self.write_config()
        r = requests.post(f"{self.url}/-/reload", timeout=10)
        assert r.status_code == 200, f"reload failed: {r.text}\n{self.log()}"

    def log(self) -> str:
        """The last lines of the server's log."""
        return (self.dir / "prometheus.log").read_text(errors="replace")[-3000:]

    def api(self, path: str, **params: str) -> Any:
        """Return ``data`` of an HTTP API answer; AssertionError with Prometheus' error."""
        body = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=10).json()
        assert body.get("status") == "success", f"{params}: {body.get('errorType')}: {body}"
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; returns the result vector (a scalar as one element)."""
        data = self.api("query", query=expr)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def total(self, expr: str) -> float:
        """Return the sum of an instant query's values (0 when empty)."""
        return sum(float(s["value"][1]) for s in self.query(expr))

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts Prometheus holds now, pending and firing (/api/v1/alerts): each with
        ``labels``, ``state`` ("pending" or "firing"), ``activeAt`` and ``value``."""
        found: list[dict[str, Any]] = self.api("alerts")["alerts"]
        return found

    def alertmanagers(self) -> list[str]:
        """The URLs of the Alertmanagers Prometheus sends to now. After a reload this list is
        empty for up to about 5 s, and alerts due meanwhile are dropped (prometheus/prometheus
        issue 13064): wait for it before causing an alert."""
        found = self.api("alertmanagers")["activeAlertmanagers"]
        return [str(a["url"]) for a in found]

    def rules(self) -> list[dict[str, Any]]:
        """The rule groups Prometheus has loaded."""
        groups: list[dict[str, Any]] = self.api("rules")["groups"]
        return groups

    def stop(self) -> None:
        """Stop the server and remove its files."""
        _terminate(self.proc)
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Prometheus:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class Alertmanager:
    """Alertmanager on 127.0.0.1:port (no cluster) sending every alert to ``webhook`` (a URL).

    Each alert is a group of its own (``group_by: [...]``), told after ``group_wait`` and again,
    when it changes or resolves, after ``group_interval``; resolved alerts are sent too.
    """

    def __init__(self, port: int, webhook: str, *, group_wait: str = "1s",
                 group_interval: str = "1s") -> None:
        self.port = port
        self.webhook = webhook
        self.group_wait, self.group_interval = group_wait, group_interval
        self.dir = Path(tempfile.mkdtemp(prefix="login-exporter-am-"))
        self.config = self.dir / "alertmanager.yml"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        """host:port, as Prometheus' alerting config names it."""
        return f"127.0.0.1:{self.port}"

    def write_config(self) -> None:
        """Write alertmanager.yml: one route, one webhook receiver."""
        config = {
            "route": {"receiver": "test", "group_by": ["..."], "group_wait": self.group_wait,
                      "group_interval": self.group_interval, "repeat_interval": "1h"},
            "receivers": [{"name": "test", "webhook_configs": [
                {"url": self.webhook, "send_resolved": True}]}],
        }  # fmt: skip
        self.config.write_text(yaml.safe_dump(config))

    def start(self) -> Alertmanager:
        """Start it and wait for /-/ready; fail the test when it cannot."""
        binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
        if binary is None:
            pytest.fail("alertmanager missing: apt-get install prometheus-alertmanager "
                        "(.ci/apt-packages.txt)")
        self.write_config()
        with open(self.dir / "alertmanager.log", "wb") as log:
            self.proc = subprocess.Popen(
                [binary, f"--config.file={self.config}", f"--storage.path={self.dir / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address="],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"alertmanager exited:\n{self.log()}")
            try:
                if requests.get(f"{self.url}/-/ready", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"alertmanager not ready after 30 s:\n{self.log()}")
            time.sleep(0.1)

    def log(self) -> str:
        """The last lines of its log."""
        return (self.dir / "alertmanager.log").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        """Stop it and remove its files."""
        _terminate(self.proc)
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


def _terminate(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM ``proc`` (if any), SIGKILL after 10 s; wait for it."""
    if proc is None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
