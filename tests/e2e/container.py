"""Boot a systemd (or sysvinit and elogind) in systemd-nspawn on an overlay, drive it from tests.

Two kinds of root: this machine's own / (its systemd, 252 on Debian 12), or a cached Debian root
filesystem built by ``.ci/rootfs RELEASE`` (trixie: 257, sid: the newest; trixie-elogind:
sysvinit and elogind 255, no systemd at all). The overlay keeps either unchanged. The container
has its own /run (so its own logind, machined and D-Bus) and shares the host's network, so a
server started inside on 127.0.0.1 is reachable from the test process.

Teardown always runs (``close()`` is idempotent and called from a ``finally``): SIGTERM to
systemd-nspawn, wait, SIGKILL, unmount the overlay, remove the directories. Nothing is left
behind: no mounts, no processes.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PROJECT = "/project"

# Environment for every command run inside: nothing from pytest leaks in.
INNER_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "HOME": "/root",
    "SYSTEMD_PAGER": "",
    "SYSTEMD_COLORS": "0",
    "TERM": "dumb",
}

# Units enabled on the host that would start inside the container, bind the shared network's
# ports or slow the boot down. Everything under /etc/systemd/system/multi-user.target.wants is
# masked as well; logind, machined and D-Bus come from /lib and stay.
EXTRA_MASKS = (
    "prometheus.service",
    "prometheus-node-exporter.service",
    "prometheus-alertmanager.service",
    "ssh.service",
    "getty@tty1.service",
    "console-getty.service",
    "systemd-timesyncd.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "man-db.timer",
    "e2scrub_all.timer",
    "fstrim.timer",
    "dpkg-db-backup.timer",
    "logrotate.timer",
)


# Under the unified hierarchy: move the calling shell into the container's root cgroup.
_JOIN_CONTAINER_CGROUP = (
    "[ -w /sys/fs/cgroup/cgroup.procs ] && echo $$ > /sys/fs/cgroup/cgroup.procs;"
)


class ContainerError(RuntimeError):
    """The container did not boot, or a command inside it failed."""


class RootfsUnavailable(ContainerError):
    """A release's root filesystem could not be bootstrapped (mirror unreachable)."""


def rootfs(release: str) -> Path:
    """Return the cached root filesystem of a Debian ``release``, building it on first use.

    Raises RootfsUnavailable (with debootstrap's last lines) when it cannot be built.
    """
    r = subprocess.run(["bash", str(REPO_ROOT / ".ci" / "rootfs"), release],
                       capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        raise RootfsUnavailable(f"cannot bootstrap Debian {release}: {r.stderr.strip()}")
    return Path(r.stdout.strip().splitlines()[-1])


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                text = Path(f"/proc/{pid}/task/{task}/children").read_text()
                kids.extend(int(p) for p in text.split())
    return kids


CGROUP_ROOTS = (
    Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup/systemd"), Path("/sys/fs/cgroup"),
)


def _own_cgroups(name: str, *, named_only: bool = False) -> list[Path]:
    """Create a cgroup named ``name`` in each hierarchy nspawn places the container by; return
    their paths.

    With ``--keep-unit`` nspawn otherwise puts the container in the caller's cgroup, and two
    containers at once (parallel work, a developer's run beside CI) then share one user.slice:
    their sessions fail to register. On this machine's hybrid hierarchy a container booted in
    legacy mode (this machine's own systemd) is tracked in the named systemd hierarchy and the
    unified one: a cgroup of its own in both (so is the sysvinit + elogind one). A systemd booted
    in unified mode (``named_only``: the cached releases, 257 and newer) gets one in the named
    hierarchy only:
    under a cgroup of the unified hierarchy other than its root, their logind refuses to make a
    user linger ("Protocol driver not attached", seen on 257 and 262), so two of those at once
    still share the unified hierarchy's /payload.
    """
    roots = [r for r in CGROUP_ROOTS[:2] if (r / "cgroup.procs").exists()]
    if not roots and (CGROUP_ROOTS[2] / "cgroup.controllers").exists():
        roots = [] if named_only else [CGROUP_ROOTS[2]]
    if named_only:
        roots = [r for r in roots if r != CGROUP_ROOTS[0]]
    groups = []
    for root in roots:
        group = root / name
        group.mkdir(exist_ok=True)
        groups.append(group)
    return groups


def _join(groups: list[Path]) -> None:
    """Move the calling process (the child about to exec nspawn) into ``groups``."""
    for group in groups:
        (group / "cgroup.procs").write_text("0")


def _remove_cgroup(group: Path, timeout: float = 5.0) -> None:
    """Remove ``group`` and the cgroups made inside it (by nspawn, by systemd), deepest first,
    retrying while the container's last processes are still exiting."""
    deadline = time.monotonic() + timeout
    while group.is_dir():
        inner = sorted((p for p in group.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
        for path in inner:
            with contextlib.suppress(OSError):
                path.rmdir()
        with contextlib.suppress(OSError):
            group.rmdir()
        if not group.is_dir() or time.monotonic() > deadline:
            return
        time.sleep(0.1)


def _is_mounted(path: Path) -> bool:
    target = str(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == target for line in f)


class Container:
    """One booted systemd in systemd-nspawn on an overlay of ``lower`` (default: this machine's
    own /).

    Use as a context manager, or call ``boot()`` then ``close()`` (in a ``finally``).
    ``python`` is the interpreter to run the exporter with inside: the test's own one on an
    overlay of / (it is there, with its packages), Debian's python3 in a cached root filesystem
    (which has the exporter's dependencies as Debian packages).
    """

    def __init__(
        self,
        *,
        lower: Path | None = None,
        project: Path = REPO_ROOT,
        boot_timeout: float = 60.0,
        binds: Sequence[tuple[Path, str]] = (),
    ) -> None:
        self.lower = lower
        self.binds = tuple(binds)  # (host path, path inside), read-only
        self.project = project
        self.boot_timeout = boot_timeout
        self.python = sys.executable if lower is None else "/usr/bin/python3"
        # In a root filesystem: this machine's Python (with its packages) and libsystemd, bound
        # read-only, so that this machine's exporter can also run against the release inside.
        self.host_python = sys.executable
        self.host_libsystemd = "/opt/host-libsystemd"
        # A cached tree is named RELEASE-KEY (trixie-67fe56e067fb, trixie-elogind-fbae5c522a97).
        self.release = "host" if lower is None else lower.name.rsplit("-", 1)[0]
        # No systemd in the tree: sysvinit boots it, elogind is its logind.
        self.init = (
            "sysvinit" if lower is not None and not (lower / "usr/lib/systemd/systemd").exists()
            else "systemd"
        )
        self.base: Path | None = None
        self.nspawn: subprocess.Popen[bytes] | None = None
        self.init_pid = 0
        self._log_file: int | None = None
        self.cgroups: list[Path] = []

    # -- life cycle --------------------------------------------------------------------------

    @property
    def merged(self) -> Path:
        if self.base is None:
            raise ContainerError("container not booted")
        return self.base / "merged"

    @property
    def log_path(self) -> Path:
        if self.base is None:
            raise ContainerError("container not booted")
        return self.base / "nspawn.log"

    def __enter__(self) -> Container:
        self.boot()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def boot(self) -> None:
        """Mount the overlay, start systemd-nspawn and wait until systemd is up.

        Raises ContainerError (after tearing everything down) when it does not come up in time.
        """
        try:
            self._boot()
        except BaseException:
            self.close()
            raise

    def _boot(self) -> None:
        if shutil.which("systemd-nspawn") is None:
            raise ContainerError("systemd-nspawn missing: apt-get install systemd-container")
        self.base = Path(tempfile.mkdtemp(prefix="login-exporter-e2e-"))
        for d in ("upper", "work", "merged"):
            (self.base / d).mkdir()
        subprocess.run(
            [
                "mount", "-t", "overlay", "overlay", "-o",
                f"lowerdir={self.lower or '/'},upperdir={self.base / 'upper'},"
                f"workdir={self.base / 'work'}",
                str(self.merged),
            ],
            check=True,
            capture_output=True,
        )
        if self.init == "systemd":
            self._mask_units()
        else:
            self._quiet_inittab()
        # (systemd 257+ in unified mode: named hierarchy only, see _own_cgroups)
        self.cgroups = _own_cgroups(
            self.base.name, named_only=self.lower is not None and self.init == "systemd")
        self._log_file = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self.nspawn = subprocess.Popen(
            [
                "systemd-nspawn",
                "-D", str(self.merged),
                "--register=no",
                "--keep-unit",
                "-b",
                "--console=passive",
                f"--bind-ro={self.project}:{PROJECT}",
                *self._host_binds(),
                *(f"--bind-ro={host}:{inside}" for host, inside in self.binds),
                "--machine=login-exporter-e2e",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=self._log_file,
            start_new_session=True,
            preexec_fn=lambda: _join(self.cgroups),
            # systemd 258 and newer refuse this machine's hybrid cgroup hierarchy; a unified one
            # boots every release (notes/newer-systemd.md §1).
            env={**os.environ, "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "1"} if self.lower else None,
        )
        deadline = time.monotonic() + self.boot_timeout
        self.init_pid = self._wait_for_init(deadline)
        if self.init == "systemd":
            self._wait_for_systemd(deadline)
        else:
            self._wait_for_sysvinit(deadline)

    def _host_binds(self) -> list[str]:
        if self.lower is None:
            return []  # an overlay of / has all of it already
        from login_exporter.sdlogin import _ffi

        _ffi.load()
        library = _ffi.library_path()
        if library is None:
            raise ContainerError("cannot tell where this machine's libsystemd was loaded from")
        prefixes = {sys.prefix, sys.base_prefix}
        # Its libraries too (libcap, libgcrypt, ...): newer releases do not install them all.
        ldd = subprocess.run(["ldd", library], capture_output=True, text=True, check=True)
        libraries = {"libsystemd.so.0": library}
        for line in ldd.stdout.splitlines():
            name, arrow, path = line.strip().partition(" => ")
            if arrow and not name.startswith(("libc.so", "ld-linux")):
                libraries[name] = path.split(" (")[0]
        return [*(f"--bind-ro={p}" for p in sorted(prefixes)),
                *(f"--bind-ro={path}:{self.host_libsystemd}/{name}"
                  for name, path in sorted(libraries.items()))]

    def systemd_version(self) -> str:
        """The booted systemd's version as ``systemctl --version`` prints it (e.g. "257.13"),
        or under sysvinit elogind's as ``loginctl --version`` prints it (e.g. "255.17")."""
        first = self.run(["loginctl" if self.init == "sysvinit" else "systemctl",
                          "--version"]).stdout.splitlines()[0]
        match = re.search(r"\(([^)]+)\)", first)
        return match.group(1).split("-")[0] if match else first.split()[1]

    def _mask_units(self) -> None:
        etc = self.merged / "etc/systemd/system"
        wants = etc / "multi-user.target.wants"
        names = set(EXTRA_MASKS)
        if wants.is_dir():
            names.update(p.name for p in wants.iterdir() if p.name.endswith(".service"))
        for name in sorted(names):
            unit = etc / name
            if unit.is_symlink() or unit.exists():
                unit.unlink()
            unit.symlink_to("/dev/null")

    def _quiet_inittab(self) -> None:
        """No gettys: the container has no /dev/ttyN, and init would respawn them in a loop."""
        inittab = self.merged / "etc/inittab"
        lines = inittab.read_text().splitlines()
        inittab.write_text("".join(
            f"#{line}\n" if re.match(r"\d+:\d+:respawn:/sbin/getty", line) else f"{line}\n"
            for line in lines
        ))

    def _wait_for_sysvinit(self, deadline: float) -> None:
        """Wait until the runlevel's scripts are done and elogind owns its bus name with seat0's
        state written (sysvinit has no "is the boot finished" call)."""
        script = ("! pgrep -f '^/bin/sh /etc/init.d/rc' >/dev/null && "
                  "test -e /run/systemd/seats/seat0 && "
                  "busctl status org.freedesktop.login1 >/dev/null 2>&1")
        while time.monotonic() < deadline:
            if self.nspawn is not None and self.nspawn.poll() is not None:
                raise ContainerError(f"systemd-nspawn exited early:\n{self.log_tail()}")
            if self.run(["sh", "-c", script], check=False, timeout=10).returncode == 0:
                return
            time.sleep(0.05)
        raise ContainerError(f"sysvinit did not start elogind:\n{self.log_tail()}")

    def _wait_for_init(self, deadline: float) -> int:
        assert self.nspawn is not None
        while time.monotonic() < deadline:
            if self.nspawn.poll() is not None:
                raise ContainerError(f"systemd-nspawn exited early:\n{self.log_tail()}")
            for kid in _children(self.nspawn.pid):
                with contextlib.suppress(OSError):
                    # The container's PID 1 is systemd (comm "systemd") in a new pid namespace.
                    if os.readlink(f"/proc/{kid}/ns/pid") != os.readlink("/proc/self/ns/pid"):
                        return kid
            time.sleep(0.02)
        raise ContainerError(f"no init process under systemd-nspawn:\n{self.log_tail()}")

    def _wait_for_systemd(self, deadline: float) -> None:
        state = ""
        while time.monotonic() < deadline:
            r = self.run(["systemctl", "is-system-running"], check=False, timeout=10)
            state = r.stdout.strip()
            if state in ("running", "degraded"):
                return
            time.sleep(0.1)
        raise ContainerError(
            f"systemd did not finish booting (state {state!r}):\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of systemd-nspawn's console output ("" when there is none)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except (OSError, ContainerError):
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def close(self) -> None:
        """Stop the container and remove every trace of it. Safe to call more than once."""
        if self.nspawn is not None:
            proc = self.nspawn
            if proc.poll() is None and self.init == "sysvinit" and self.init_pid:
                # sysvinit ignores nspawn's halt signal and leaves what nsenter started running:
                # nothing inside needs a clean shutdown, and killing PID 1 ends its namespace.
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.init_pid, signal.SIGKILL)
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    if self.init_pid:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(self.init_pid, signal.SIGKILL)
                    proc.wait(timeout=15)
            self.nspawn = None
        self.init_pid = 0
        if self._log_file is not None:
            os.close(self._log_file)
            self._log_file = None
        if self.base is not None:
            merged = self.base / "merged"
            for _ in range(50):
                if not _is_mounted(merged):
                    break
                r = subprocess.run(["umount", str(merged)], capture_output=True)
                if r.returncode != 0:
                    time.sleep(0.1)
            if _is_mounted(merged):
                subprocess.run(["umount", "-l", str(merged)], capture_output=True)
            shutil.rmtree(self.base, ignore_errors=True)
            self.base = None
        for group in self.cgroups:
            _remove_cgroup(group)
        self.cgroups = []

    # -- commands inside ---------------------------------------------------------------------

    def _nsenter(self, cmd: Sequence[str]) -> list[str]:
        if not self.init_pid:
            raise ContainerError("container not booted")
        return ["nsenter", "-t", str(self.init_pid), "-a", "--", "env", "-i",
                *(f"{k}={v}" for k, v in INNER_ENV.items()), *cmd]

    def run(
        self,
        cmd: Sequence[str],
        *,
        check: bool = True,
        timeout: float = 30.0,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` inside the container (all its namespaces) and return the result.

        Raises ContainerError when ``check`` and the command fails.
        """
        r = subprocess.run(
            self._nsenter(cmd),
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
        if check and r.returncode != 0:
            raise ContainerError(
                f"{' '.join(cmd)} -> {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
            )
        return r

    def systemctl(self, verb: str, unit: str, *, timeout: float = 200.0) -> float:
        """``systemctl VERB UNIT`` inside (its start limit reset first: tests restart units more
        often than the limit's 5 starts in 10 s allow), waiting for the job to finish.

        Returns the seconds the job took. Raises ContainerError when systemctl fails, and when
        the job is not done within ``timeout``, with the unit's status and journal. How long a
        job may take is the unit's business (a restart may wait for TimeoutStopSec, then
        TimeoutStartSec: 90 s each by default; logind's also for a user@UID.service being
        stopped, ordered after it, whose manager has 120 s), so ``timeout`` is long, and a job
        slower than 10 s is reported as a warning with the same detail.
        """
        self.run(["systemctl", "reset-failed", unit], check=False)
        start = time.monotonic()
        try:
            self.run(["systemctl", verb, unit], timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ContainerError(f"systemctl {verb} {unit}: not done after {timeout:.0f} s\n"
                                 + self._unit_report(unit)) from None
        took = time.monotonic() - start
        if took > 10:
            warnings.warn(f"systemctl {verb} {unit} took {took:.1f} s\n"
                          + self._unit_report(unit), stacklevel=2)
        return took

    def _unit_report(self, unit: str) -> str:
        status = self.run(["systemctl", "status", "--no-pager", "-n", "0", unit],
                          check=False).stdout
        journal = self.run(["journalctl", "--no-pager", "-o", "short-monotonic", "-n", "60"],
                           check=False).stdout
        return f"--- systemctl status {unit} ---\n{status}\n--- journal ---\n{journal}"

    def sh(self, script: str, *, check: bool = True, timeout: float = 30.0) -> str:
        """Run a shell script inside; return its stdout."""
        return self.run(["sh", "-c", script], check=check, timeout=timeout).stdout

    def spawn(self, argv: Sequence[str], *, name: str, cwd: str = "/",
              env: dict[str, str] | None = None) -> int:
        """Start ``argv`` inside in the background, in a session of its own, with stdout and
        stderr in /run/e2e/NAME.log and its pid in /run/e2e/NAME.pid (where there is no PID 1 to
        run it as a unit: sysvinit). Returns its pid inside the container.

        Such processes are not init's children: close() kills them with the container. They
        start in the container's root cgroup (nsenter leaves them in the caller's, outside the
        container's cgroup namespace, where elogind cannot move a session's processes into the
        session's cgroup, nor kill them at terminate-session).
        """
        assignments = " ".join(shlex.quote(f"{k}={v}") for k, v in (env or {}).items())
        command = " ".join(shlex.quote(a) for a in argv)
        script = (f"mkdir -p /run/e2e && cd {shlex.quote(cwd)} && "
                  f"env {assignments} setsid sh -c '{_JOIN_CONTAINER_CGROUP} "
                  f"echo $$ > /run/e2e/{name}.pid; exec \"$@\"' "
                  f"sh {command} </dev/null >/run/e2e/{name}.log 2>&1 & "
                  f"while [ ! -s /run/e2e/{name}.pid ]; do sleep 0.01; done; "
                  f"cat /run/e2e/{name}.pid")
        return int(self.sh(script).strip())


@contextlib.contextmanager
def booted(lower: Path | None = None, boot_timeout: float = 60.0,
           binds: Sequence[tuple[Path, str]] = ()) -> Iterator[Container]:
    """A booted container, torn down on exit whatever happens."""
    c = Container(lower=lower, boot_timeout=boot_timeout, binds=binds)
    c.boot()
    try:
        yield c
    finally:
        c.close()
