"""A fleet on this machine, built from deploy/prometheus/fleet's own files (tests and bench.fleet).

A few real exporters, each reading a state tree of its own (``start_exporter(run_systemd=)``),
are scraped under many target identities: every identity is a file_sd group naming one exporter's
address with its own ``instance``, ``site``, ``pool`` and ``kiosk`` labels, which is all
Prometheus needs to treat it as another host. The agent, central, site and federation configs
are the deploy files with only addresses, intervals and file paths replaced.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.support.exporter import Exporter, start_exporter
from tests.support.logind_state import LogindState
from tests.support.prometheus import Prometheus
from tests.support.victoriametrics import VictoriaMetrics, VMAlert

ROOT = Path(__file__).resolve().parents[2]
FLEET = ROOT / "deploy" / "prometheus" / "fleet"
RULES = FLEET / "fleet-rules.yml"
ALERTS = FLEET / "fleet-alerts.yml"
JOB = "login-exporter"
# Labels no series may carry at the central store (the agent's write_relabel_configs).
PRIVATE_LABELS = frozenset({"user", "uid", "session", "remote_host", "remote_user", "tty", "who",
                            "why"})  # fmt: skip


@dataclass(frozen=True)
class Host:
    """One target identity: which exporter answers for it and the labels it carries."""

    instance: str
    address: str
    labels: dict[str, str] = field(default_factory=dict)


def load(name: str) -> dict[str, Any]:
    """Return deploy/prometheus/fleet/NAME parsed. Raises OSError or yaml.YAMLError."""
    doc: dict[str, Any] = yaml.safe_load((FLEET / name).read_text())
    return doc


def _server(name: str) -> dict[str, Any]:
    """A server config of NAME: its rule files found where they are, no Alertmanager to call."""
    config = load(name)
    config["rule_files"] = [str(FLEET / f) for f in config.get("rule_files", [])]
    config.pop("alerting", None)
    return config


def write_targets(path: Path, hosts: list[Host]) -> Path:
    """Write a file_sd file with one group per host; returns the path."""
    groups = [{"targets": [h.address], "labels": {"instance": h.instance, **h.labels}}
              for h in hosts]  # fmt: skip
    path.write_text(yaml.safe_dump(groups))
    return path


def _scrape_configs(name: str, targets: Path) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = copy.deepcopy(load(name)["scrape_configs"])
    for job in jobs:
        for sd in job.get("file_sd_configs", []):
            sd["files"] = [str(targets)]
            sd["refresh_interval"] = "1s"
    return jobs


def agent_config(
    targets: Path, writes: dict[str, str], interval: str = "1s", deadline: str = "1s"
) -> dict[str, Any]:
    """agent.yml's scrape job on ``targets``, writing with the remote_write of each file named
    in ``writes`` (file name -> URL of the store), every ``interval``."""
    remote = []
    for name, url in writes.items():
        entry = copy.deepcopy(load(name)["remote_write"][0])
        entry["url"] = url
        entry.setdefault("queue_config", {})["batch_send_deadline"] = deadline
        remote.append(entry)
    scrape = _scrape_configs("agent.yml", targets)
    return {"global": {"scrape_interval": interval, "scrape_timeout": interval},
            "scrape_configs": scrape, "remote_write": remote}  # fmt: skip


def central_config(port: int, interval: str = "1s") -> dict[str, Any]:
    """central.yml, scraping itself on ``port``, evaluating every ``interval``."""
    config = _server("central.yml")
    config["global"]["evaluation_interval"] = interval
    config["scrape_configs"][0]["static_configs"] = [{"targets": [f"127.0.0.1:{port}"]}]
    return config


def site_server_config(targets: Path, interval: str = "1s") -> dict[str, Any]:
    """site-server.yml scraping ``targets`` and evaluating every ``interval``."""
    config = _server("site-server.yml")
    config["global"].update(scrape_interval=interval, scrape_timeout=interval,
                            evaluation_interval=interval)  # fmt: skip
    config["scrape_configs"] = _scrape_configs("site-server.yml", targets)
    return config


def federation_config(sites: list[str], interval: str = "1s") -> dict[str, Any]:
    """central-federation.yml pulling /federate from the site servers at ``sites`` (host:port)."""
    config = _server("central-federation.yml")
    config["global"].update(scrape_interval=interval, evaluation_interval=interval)
    config["scrape_configs"][0]["static_configs"] = [{"targets": sites}]
    config["scrape_configs"][0]["scrape_timeout"] = interval
    return config


# -- state trees -------------------------------------------------------------------------------

def occupied(tree: LogindState, seats: int = 1) -> LogindState:
    """A kiosk in use: each seat has a user's x11 session in front."""
    for n in range(seats):
        seat, sid, uid = ("seat0" if n == 0 else f"seat{n}"), str(10 + n), 1000 + n
        tree.user(uid, sessions=[sid], seats=[seat])
        tree.session(sid, uid=uid, seat=seat, type="x11", vtnr=7, is_display=True)
        tree.seat(seat, sessions=[(sid, uid)], active=sid, can_tty=n == 0)
    return tree


def on_greeter(tree: LogindState) -> LogindState:
    """A kiosk whose auto-login failed: the login screen is in front of seat0."""
    tree.user(110, sessions=["c1"], seats=["seat0"])
    tree.session("c1", uid=110, seat="seat0", type="wayland", klass="greeter", vtnr=1,
                 service="gdm-launch-environment", is_display=True)  # fmt: skip
    tree.seat("seat0", sessions=[("c1", 110)], active="c1")
    return tree


def empty_seat(tree: LogindState) -> LogindState:
    """A desk nobody uses: seat0 and no session at all."""
    tree.seat("seat0")
    return tree


# -- the running chain -------------------------------------------------------------------------

class Fleet:
    """Exporters on state trees -> agent -> central Prometheus (and optionally VictoriaMetrics,
    and a site server federated by a second central), each server with the rule files its
    deploy config names. Ports from ``ports`` (a callable giving a
    free one); every process is stopped by stop(), also after a failed start."""

    def __init__(self, workdir: Path, ports: Callable[[], int], *, interval: str = "1s",
                 victoria: bool = False, federation: bool = False) -> None:  # fmt: skip
        self.workdir, self.ports, self.interval = workdir, ports, interval
        self.victoria_wanted, self.federation_wanted = victoria, federation
        self.exporters: list[Exporter] = []
        self.agent: Prometheus | None = None
        self.central: Prometheus | None = None
        self.vm: VictoriaMetrics | None = None
        self.vmalert: VMAlert | None = None
        self.site: Prometheus | None = None
        self.federation: Prometheus | None = None

    def add_exporter(self, tree: Path, *args: str) -> str:
        """Start an exporter reading ``tree`` as /run/systemd; returns its address."""
        exporter = start_exporter("--no-collector.dbus", *args, port=self.ports(), debounce=None,
                                  ready_path="/-/ready", run_systemd=tree)  # fmt: skip
        self.exporters.append(exporter)
        return f"127.0.0.1:{exporter.port}"

    def start(self, hosts: list[Host]) -> Fleet:
        """Start the stores, then the agent (and site server) scraping ``hosts``."""
        targets = write_targets(self.workdir / "targets.yml", hosts)
        port = self.ports()
        self.central = Prometheus(port, [], config=central_config(port, self.interval),
                                  flags=("--web.enable-remote-write-receiver",))  # fmt: skip
        self.central.start()
        writes = {"agent.yml": f"{self.central.url}/api/v1/write"}
        if self.victoria_wanted:
            self.vm = VictoriaMetrics(self.ports()).start()
            writes["agent-victoriametrics.yml"] = self.vm.write_url
            self.vmalert = VMAlert(self.ports(), self.vm, [RULES, ALERTS], self.interval).start()
        self.agent = Prometheus(self.ports(), [], agent=True,
                                config=agent_config(targets, writes, self.interval))  # fmt: skip
        self.agent.start()
        if self.federation_wanted:
            self.site = Prometheus(self.ports(), [],
                                   config=site_server_config(targets, self.interval))  # fmt: skip
            self.site.start()
            self.federation = Prometheus(
                self.ports(), [], config=federation_config([f"127.0.0.1:{self.site.port}"],
                                                           self.interval))  # fmt: skip
            self.federation.start()
        return self

    def stop(self) -> None:
        """Stop every process started (stores last, so nothing is written into a dead one)."""
        for exporter in self.exporters:
            exporter.stop()
        for server in (self.agent, self.federation, self.site, self.vmalert, self.vm,
                       self.central):
            if server is not None:
                server.stop()
