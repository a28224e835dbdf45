"""deploy/kubernetes: schema validation with kubernetes-validate (offline, strict) for the
built-in kinds, and structural checks of what the issue asks (PyYAML) for all of them."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import requests
import yaml

from tests.deploy.tools import DEPLOY, REPO, describe, run
from tests.support.exporter import running_exporter
from tests.support.logind_state import LogindState

K8S = DEPLOY / "kubernetes"
OPERATOR = K8S / "prometheus-operator"
CORE_FILES = sorted(K8S.glob("*.yaml"))
OPERATOR_FILES = sorted(OPERATOR.glob("*.yaml"))
NAMESPACE = "login-exporter"
ALERT_LABELS = {"kiosk", "remote_logins", "greeter_idle", "machines"}


def load(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def objects() -> dict[str, dict[str, Any]]:
    """kind -> object over every manifest (one object per kind here)."""
    out: dict[str, dict[str, Any]] = {}
    for path in CORE_FILES + OPERATOR_FILES:
        for doc in load(path):
            assert doc["kind"] not in out, f"two {doc['kind']} objects"
            out[doc["kind"]] = doc
    return out


def pod_spec() -> dict[str, Any]:
    spec: dict[str, Any] = objects()["DaemonSet"]["spec"]["template"]["spec"]
    return spec


def container() -> dict[str, Any]:
    containers = pod_spec()["containers"]
    assert len(containers) == 1
    c: dict[str, Any] = containers[0]
    return c


def test_builtin_kinds_validate_strictly_against_the_kubernetes_schema() -> None:
    assert {d["kind"] for p in CORE_FILES for d in load(p)} == {
        "Namespace", "ServiceAccount", "DaemonSet", "Service",
    }
    proc = run([sys.executable, "-m", "kubernetes_validate", "--strict", *map(str, CORE_FILES)])
    assert proc.returncode == 0, describe(proc)
    assert "ERROR" not in proc.stdout + proc.stderr and "WARN" not in proc.stdout + proc.stderr
    assert proc.stdout.count("passed") == len(CORE_FILES), describe(proc)


def test_schema_validation_rejects_a_misspelt_field(tmp_path: Path) -> None:
    bad = tmp_path / "daemonset.yaml"
    bad.write_text((K8S / "daemonset.yaml").read_text().replace(
        "readOnlyRootFilesystem", "readOnlyRootFileSystem"))
    proc = run([sys.executable, "-m", "kubernetes_validate", "--strict", str(bad)])
    assert proc.returncode != 0, describe(proc)


def test_every_object_is_in_the_exporter_namespace() -> None:
    for kind, obj in objects().items():
        if kind == "Namespace":
            assert obj["metadata"]["name"] == NAMESPACE
        else:
            assert obj["metadata"]["namespace"] == NAMESPACE, kind


def test_daemonset_mounts_run_systemd_and_the_bus_socket_read_only_from_the_host() -> None:
    volumes = {v["name"]: v for v in pod_spec()["volumes"]}
    mounts = {m["mountPath"]: m for m in container()["volumeMounts"]}
    assert set(mounts) == {"/run/systemd", "/run/dbus/system_bus_socket"}
    assert all(m["readOnly"] is True for m in mounts.values())
    assert volumes[mounts["/run/systemd"]["name"]]["hostPath"] == {
        "path": "/run/systemd", "type": "Directory"}
    # The system bus socket alone, not /run/dbus: connecting needs no write access to a
    # read-only mount (sockets are exempt), and nothing else of /run/dbus is exposed.
    assert volumes[mounts["/run/dbus/system_bus_socket"]["name"]]["hostPath"] == {
        "path": "/run/dbus/system_bus_socket", "type": "Socket"}
    assert set(volumes) == {m["name"] for m in mounts.values()}, "no other volumes"


def test_daemonset_runs_unprivileged_with_a_read_only_root() -> None:
    pod, c = pod_spec(), container()
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc.get("privileged", False) is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for key in ("hostPID", "hostIPC"):
        assert not pod.get(key, False), key
    assert pod["automountServiceAccountToken"] is False


def test_daemonset_user_matches_the_image_user() -> None:
    user = re.findall(r"^USER (\d+)(?::(\d+))?$", (REPO / "Dockerfile").read_text(), re.M)
    assert user, "Dockerfile has no numeric USER"
    uid, gid = user[-1]
    pod = pod_spec()["securityContext"]
    assert pod["runAsUser"] == int(uid)
    assert pod["runAsGroup"] == int(gid or uid)


def test_daemonset_has_resource_limits_and_probes_on_the_health_endpoints() -> None:
    c = container()
    for kind in ("requests", "limits"):
        assert set(c["resources"][kind]) == {"cpu", "memory"}, kind
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"metrics": 9844}
    assert "--web.listen-address=:9844" in c["args"]
    assert c["livenessProbe"]["httpGet"] == {"path": "/-/healthy", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/-/ready", "port": "metrics"}


def test_probes_answer_200_without_credentials_when_basic_auth_is_on(
    real_252: LogindState, tmp_path: Path
) -> None:
    # The kubelet sends the probes without credentials: a web config with basic_auth_users
    # (mounted and passed with --web.config.file) must not make the pods fail them.
    c = container()
    probes = [c[name]["httpGet"] for name in ("livenessProbe", "readinessProbe")]
    assert all(set(probe) == {"path", "port"} for probe in probes), "no scheme or headers"
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4)).decode()
    config = tmp_path / "web.yml"
    config.write_text(f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    args = [a for a in c["args"] if not a.startswith("--web.listen-address=")]
    with running_exporter(*args, f"--web.config.file={config}") as exporter:
        assert exporter.get("/metrics").status_code == 401
        for probe in probes:
            deadline = time.monotonic() + 5
            while (status := exporter.get(probe["path"]).status_code) != 200:
                assert time.monotonic() < deadline, f"{probe['path']}: {status}"
                time.sleep(0.05)
        assert requests.get(exporter.url + "/metrics", timeout=5,
                            auth=("prometheus", "s3cret")).status_code == 200  # fmt: skip


def test_service_selects_the_daemonset_pods_on_the_metrics_port() -> None:
    objs = objects()
    service, ds = objs["Service"], objs["DaemonSet"]
    pod_labels = ds["spec"]["template"]["metadata"]["labels"]
    assert ds["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (port,) = service["spec"]["ports"]
    assert port["name"] == "metrics" and port["targetPort"] == "metrics" and port["port"] == 9844


@pytest.mark.parametrize("kind", ["ServiceMonitor", "PodMonitor"])
def test_monitor_scrapes_with_the_job_and_labels_the_alerts_expect(kind: str) -> None:
    objs = objects()
    monitor = objs[kind]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    spec = monitor["spec"]
    assert spec["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    if kind == "ServiceMonitor":
        selected = objs["Service"]["metadata"]["labels"]
        endpoints = spec["endpoints"]
    else:
        selected = objs["DaemonSet"]["spec"]["template"]["metadata"]["labels"]
        endpoints = spec["podMetricsEndpoints"]
    assert spec["selector"]["matchLabels"].items() <= selected.items()
    # The job label's value must be the job name the alerts use.
    assert selected[spec["jobLabel"]] == "login-exporter"
    alerts = (DEPLOY / "prometheus" / "login-exporter-alerts.yml").read_text()
    assert 'job="login-exporter"' in alerts
    assert set(spec["podTargetLabels"]) == ALERT_LABELS
    (endpoint,) = endpoints
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    assert {"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "instance",
            "action": "replace"} in endpoint["relabelings"]


def test_namespace_allows_the_host_path_volume() -> None:
    labels = objects()["Namespace"]["metadata"]["labels"]
    # hostPath is forbidden by the baseline and restricted Pod Security levels.
    assert labels["pod-security.kubernetes.io/enforce"] == "privileged"
