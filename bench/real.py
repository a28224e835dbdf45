"""node_exporter `--collector.logind` vs ours on a real logind: `python3 -m bench.run --real`.

Boots this machine's own OS in systemd-nspawn from an overlay of / (shared/notes/real-logind.md
§2), opens 50 and then 200 real sessions with `systemd-run -p PAMName=login`, and runs both
exporters inside the container on 127.0.0.1 (the container shares the host's network). Each is
loaded with `wrk -t1 -c1 --latency` (one scraper, as Prometheus scrapes). The container is
stopped and the overlay removed afterwards, whatever happened.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench import exporter, latency
from bench.table import Row
from tests.support import namespace

REPO = Path(__file__).resolve().parent.parent
SESSIONS = (50, 200)
TARGET = 20.0
NODE = "node_exporter --collector.logind, p50 per scrape"
OURS = "ours, real logind, p50 per scrape"
USER = "benchuser"


class RealUnavailable(RuntimeError):
    """The booted-container comparison cannot run here; the message says why."""


def na_rows(reason: str) -> list[Row]:
    """n/a rows for both exporters at both session counts."""
    rows = []
    for n in SESSIONS:
        rows.append(Row(NODE, str(n), None, "ms", note=reason))
        rows.append(Row(OURS, str(n), None, "ms", target=f"≥ {TARGET:g}x faster", note=reason))
    return rows


def measure(exporter_reason: str | None, seconds: float = 5.0) -> list[Row]:
    """Rows for 50 and 200 real sessions (n/a rows with the reason when it cannot run)."""
    missing = [t for t in ("systemd-nspawn", "nsenter", "prometheus-node-exporter", "wrk")
               if shutil.which(t) is None]
    if missing:
        return na_rows(f"missing: {', '.join(missing)}")
    if os.geteuid() != 0:
        return na_rows("needs root")
    try:
        with booted() as container:
            return container.compare(exporter_reason, seconds)
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        return na_rows(f"{type(exc).__name__}: {str(exc)[:120]}")


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] real: {message}", file=sys.stderr, flush=True)


class Container:
    """A booted container, driven with nsenter into its init's namespaces."""

    def __init__(self, init_pid: int) -> None:
        self.init = init_pid

    def run(self, *cmd: str, check: bool = True, timeout: float = 60) -> str:
        """Run a command inside the container. Returns stdout; raises CalledProcessError."""
        done = subprocess.run(
            ["nsenter", "-t", str(self.init), "-a", *cmd],
            capture_output=True, text=True, timeout=timeout,
        )
        if check and done.returncode != 0:
            raise subprocess.CalledProcessError(done.returncode, cmd, done.stdout, done.stderr)
        return done.stdout

    def wait_running(self, timeout: float = 90) -> None:
        """Wait for `systemctl is-system-running` to say running or degraded."""
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            state = self.run("systemctl", "is-system-running", check=False).strip()
            if state in ("running", "degraded"):
                return
            time.sleep(0.5)
        raise RealUnavailable(f"container not up after {timeout:.0f} s (state {state!r})")

    def sessions(self) -> int:
        """Sessions logind knows (loginctl, over D-Bus)."""
        out = self.run("loginctl", "list-sessions", "--no-legend", check=False)
        return len([line for line in out.splitlines() if line.strip()])

    def open_sessions(self, target: int) -> None:
        """Start `sleep` units with PAMName=login until logind has ``target`` sessions."""
        have = self.sessions()
        k = have
        while have < target:
            for _ in range(target - have):
                k += 1
                self.run("systemd-run", "--no-block", f"--unit=bench-s{k}", "-p", "PAMName=login",
                         "-p", f"User={USER}", "sleep", "86400")
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and (have := self.sessions()) < target:
                time.sleep(0.3)
            if have < target and time.monotonic() >= deadline:
                raise RealUnavailable(f"only {have} of {target} sessions opened")

    def start_unit(self, unit: str, *cmd: str, cwd: str | None = None) -> None:
        """Start a transient service running ``cmd`` inside the container."""
        props = ["-p", f"WorkingDirectory={cwd}"] if cwd else []
        self.run("systemd-run", f"--unit={unit}", *props, *cmd)

    def stop_unit(self, unit: str) -> None:
        """Stop a transient service (ignoring failure)."""
        self.run("systemctl", "stop", unit, check=False)

    def compare(self, exporter_reason: str | None, seconds: float) -> list[Row]:
        """Measure both exporters at each session count. Returns the rows."""
        self.run("useradd", "-m", USER, check=False)
        rows: list[Row] = []
        for n in SESSIONS:
            _log(f"opening {n} sessions")
            self.open_sessions(n)
            time.sleep(2)  # let logind finish writing users' and seats' state
            seen = self.sessions()
            node, _ = self._load("prometheus-node-exporter", [
                "prometheus-node-exporter", "--collector.disable-defaults", "--collector.logind",
            ], seconds)
            rows.append(Row(NODE, str(n), node.p50 * 1e3, "ms",
                            note=f"p99 {node.p99 * 1e3:.1f} ms, {node.rps:,.0f} scrapes/s, "
                                 f"{seen} sessions"))
            if exporter_reason is not None:
                rows.append(Row(OURS, str(n), None, "ms", target=f"≥ {TARGET:g}x faster",
                                note=exporter_reason))
                continue
            ours, body = self._load("login-exporter", [
                sys.executable, "-m", "login_exporter",
            ], seconds, cwd="/project")
            counted = exporter.total(body, "logind_sessions")
            speedup = node.p50 / ours.p50
            rows.append(Row(OURS, str(n), ours.p50 * 1e3, "ms", target=f"≥ {TARGET:g}x faster",
                            met=speedup >= TARGET,
                            note=f"{speedup:.0f}x node_exporter; p99 {ours.p99 * 1e3:.2f} ms, "
                                 f"{ours.rps:,.0f} scrapes/s, {counted:.0f} sessions"))
        return rows

    def _load(self, name: str, cmd: list[str], seconds: float,
              cwd: str | None = None) -> tuple[latency.Latency, str]:
        port = exporter.free_port()
        unit = f"bench-{name}-{port}"
        self.start_unit(unit, *cmd, f"--web.listen-address=127.0.0.1:{port}", cwd=cwd)
        try:
            body = wait_http(port, "/metrics", timeout=30)
            _log(f"{name}: wrk {seconds:g} s")
            return _wrk_one(port, seconds), body
        finally:
            self.stop_unit(unit)


def _wrk_one(port: int, seconds: float) -> latency.Latency:
    return latency.measure("127.0.0.1", port, "/metrics", seconds, clients=1)


def wait_http(port: int, path: str, timeout: float) -> str:
    """Poll until ``path`` answers 200. Returns the body; raises RealUnavailable on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                conn.request("GET", path)
                response = conn.getresponse()
                body = response.read().decode()
                if response.status == 200:
                    return body
            finally:
                conn.close()
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"nothing answered on 127.0.0.1:{port}{path} within {timeout:.0f} s")


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            out += [int(c) for c in (task / "children").read_text().split()]
    return out


@contextlib.contextmanager
def booted() -> Iterator[Container]:
    """Boot the host OS from an overlay of / in systemd-nspawn; stop and clean up on exit.

    The overlay is mounted inside the bench's private mount namespace, never the host's.
    """
    namespace.enter_private_namespace()
    base = Path(tempfile.mkdtemp(prefix="bench-real-", dir="/var/tmp"))
    upper, work, merged = base / "upper", base / "work", base / "merged"
    for d in (upper, work, merged):
        d.mkdir()
    subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o",
         f"lowerdir=/,upperdir={upper},workdir={work}", str(merged)],
        check=True, capture_output=True, text=True,
    )
    nspawn: subprocess.Popen[bytes] | None = None
    try:
        _log("booting container")
        nspawn = subprocess.Popen(
            ["systemd-nspawn", "-D", str(merged), "--register=no", "--keep-unit", "-b",
             "--console=passive", f"--bind-ro={REPO}:/project"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        kids: list[int] = []
        while time.monotonic() < deadline and not kids:
            if nspawn.poll() is not None:
                raise RealUnavailable(f"systemd-nspawn exited {nspawn.returncode}")
            kids = _children(nspawn.pid)
            time.sleep(0.1)
        if not kids:
            raise RealUnavailable("systemd-nspawn started no init")
        container = Container(kids[0])
        container.wait_running()
        yield container
    finally:
        if nspawn is not None and nspawn.poll() is None:
            nspawn.send_signal(signal.SIGTERM)
            try:
                nspawn.wait(20)
            except subprocess.TimeoutExpired:
                nspawn.kill()
                nspawn.wait()
        subprocess.run(["umount", "-l", str(merged)], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
