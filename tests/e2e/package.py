"""The Debian package on a booted host without systemd (sysvinit or OpenRC with elogind): built
from this checkout, installed by apt with the admin's flags already in place, purged."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
import requests

from tests.e2e.container import Container
from tests.release.builds import BuildError, build_deb

# What the package leaves nowhere after a purge: its user, processes, files and links.
LEFTOVERS = ("getent passwd login-exporter; pgrep -u login-exporter; "
             "ls /etc/init.d/login-exporter /var/log/login-exporter.log "
             "/run/login-exporter.pid /etc/default/login-exporter 2>/dev/null; "
             "ls /etc/rc2.d /etc/runlevels/default 2>/dev/null | grep login-exporter; true")


def answering(port: int) -> bool:
    """Whether an exporter on 127.0.0.1:port answers /-/ready with 200."""
    try:
        return requests.get(f"http://127.0.0.1:{port}/-/ready", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def install(host: Container, tmp_path: Path, port: int, *flags: str) -> float:
    """Build the .deb, set its flags (listen on ``port``, then ``flags``) as an admin would
    before installing (kept by --force-confold) and apt-get install it. Returns the seconds apt
    took.

    Fails the test when the package does not build or install; skips it when the mirror is
    unreachable (the package's dependencies cannot come)."""
    try:
        deb = build_deb(tmp_path)
    except BuildError as e:
        pytest.fail(f"the package does not build: {e}")
    shutil.copy2(deb, host.merged / "var/tmp/login-exporter.deb")  # /tmp inside is a tmpfs
    args = " ".join((f"--web.listen-address=127.0.0.1:{port}", *flags))
    (host.merged / "etc/default/login-exporter").write_text(f'LOGIN_EXPORTER_ARGS="{args}"\n')
    if host.run(["apt-get", "update", "-qq"], check=False, timeout=300).returncode != 0:
        pytest.skip("the Debian mirror is unreachable: the package's dependencies cannot come")
    started = time.monotonic()
    result = host.run(["sh", "-c", "DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
                       "--no-install-recommends -o Dpkg::Options::=--force-confold "
                       "/var/tmp/login-exporter.deb"], check=False, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # Nothing pulled systemd in, nor pushed elogind out.
    assert "REMOVED" not in result.stdout, result.stdout
    assert host.run(["dpkg-query", "-W", "-f", "${Status}", "elogind"]).stdout.endswith(
        "installed")
    assert host.run(["test", "-e", "/usr/lib/systemd/systemd"], check=False).returncode != 0
    return time.monotonic() - started


def purge(host: Container) -> str:
    """apt-get purge the package; returns what it left behind ("" when nothing)."""
    host.run(["sh", "-c", "DEBIAN_FRONTEND=noninteractive apt-get purge -y -q login-exporter"],
             timeout=300)
    return host.sh(LEFTOVERS, check=False).strip()
