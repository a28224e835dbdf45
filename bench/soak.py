"""Soak: logins and logouts against the real exporter, with its memory and fds sampled.

Run as root (it moves itself into a private mount namespace with a fresh tmpfs on /run/systemd,
so the host's logind state is never touched):

    python3 -m bench.soak                     # 10 minutes
    python3 -m bench.soak --minutes 60 --interval 10 --rate 50

It starts ``python -m login_exporter`` on a free 127.0.0.1 port, then logs sessions in and out
(``--rate`` changes a second, at most 30 sessions alive, a quarter of them on seat0, each with
its user file, as logind writes them). Every ``--interval`` seconds it scrapes /metrics (as
Prometheus would) and prints elapsed time, sessions alive, logins, logouts, VmRSS and open fds
of the exporter (from /proc/PID). At the end it logs everyone out, waits for the exporter to
agree, and prints the growth of RSS and fds from the first sample to the last.
tests/reliability/test_faults.py runs a 20-second version and asserts the fd count comes back
to its start and RSS grows by less than 10 MiB.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

import requests

from tests.support import namespace, proc
from tests.support.exporter import start_exporter
from tests.support.logind_state import LogindState

MAX_ALIVE = 30


@dataclass(frozen=True)
class Sample:
    """One look at the exporter process."""

    elapsed: float
    alive: int
    logins: int
    logouts: int
    rss_kib: int
    fds: int


@dataclass
class SoakResult:
    """Every sample, the churn done, and fds/RSS at the start and after the churn settled."""

    samples: list[Sample] = field(default_factory=list)
    logins: int = 0
    logouts: int = 0
    fds_start: int = 0
    fds_end: int = 0
    rss_start: int = 0
    rss_end: int = 0

    @property
    def rss_growth_kib(self) -> int:
        """RSS at the end minus RSS at the start, in KiB."""
        return self.rss_end - self.rss_start

    def table(self) -> str:
        """The samples as a text table, then the growth line."""
        lines = [f"{'elapsed s':>9} {'alive':>5} {'logins':>7} {'logouts':>7} "
                 f"{'RSS KiB':>8} {'fds':>4}"]  # fmt: skip
        lines += [
            f"{s.elapsed:9.1f} {s.alive:5d} {s.logins:7d} {s.logouts:7d} {s.rss_kib:8d} {s.fds:4d}"
            for s in self.samples
        ]
        lines.append(
            f"growth: RSS {self.rss_start} -> {self.rss_end} KiB ({self.rss_growth_kib:+d} KiB), "
            f"fds {self.fds_start} -> {self.fds_end} ({self.fds_end - self.fds_start:+d}); "
            f"{self.logins} logins, {self.logouts} logouts"
        )
        return "\n".join(lines)


class _Churn:
    """Logs sessions in and out as logind would write them."""

    def __init__(self, state: LogindState) -> None:
        self.state = state
        self.alive: list[tuple[str, int, str | None]] = []
        self.serial = 0
        self.steps = 0
        self.logins = 0
        self.logouts = 0

    def _save_user(self, uid: int) -> None:
        sessions = [sid for sid, u, _ in self.alive if u == uid]
        if sessions:
            seats = sorted({seat for _, u, seat in self.alive if u == uid and seat})
            self.state.user(uid, sessions=sessions, seats=seats)
        else:
            path = self.state.root / "users" / str(uid)
            path.unlink(missing_ok=True)

    def _save_seat0(self) -> None:
        on_seat = [(sid, uid) for sid, uid, seat in self.alive if seat == "seat0"]
        self.state.seat0(sessions=on_seat, active=on_seat[-1][0] if on_seat else None)

    def step(self) -> None:
        """One login, or one logout when the machine is full (or every third step)."""
        self.steps += 1
        if len(self.alive) >= MAX_ALIVE or (self.alive and self.steps % 3 == 0):
            sid, uid, seat = self.alive.pop(0)
            self.state.remove("sessions", sid)
            self.logouts += 1
        else:
            self.serial += 1
            sid, uid = str(self.serial), 1000 + self.serial % 8
            seat = "seat0" if self.serial % 4 == 0 else None
            self.state.session(sid, uid=uid, seat=seat, remote=seat is None,
                               type="x11" if seat else "tty")  # fmt: skip
            self.alive.append((sid, uid, seat))
            self.logins += 1
        self._save_user(uid)
        if seat is not None:
            self._save_seat0()

    def logout_everyone(self) -> None:
        """End every session still alive."""
        while self.alive:
            sid, uid, _ = self.alive.pop()
            self.state.remove("sessions", sid)
            self.logouts += 1
            self._save_user(uid)
        self._save_seat0()


def _scrape(url: str) -> str:
    response = requests.get(url, timeout=5, headers={"Connection": "close"})
    response.raise_for_status()
    return response.text


def _settled_fds(pid: int, want: int, timeout: float = 3.0) -> int:
    """Open fds of pid once it equals ``want``, or once it held still for half a second
    (scrape connections closing), or after ``timeout``."""
    deadline = time.monotonic() + timeout
    fds, since = proc.open_fds(pid), time.monotonic()
    while fds != want and time.monotonic() < deadline:
        time.sleep(0.05)
        now_fds = proc.open_fds(pid)
        if now_fds != fds:
            fds, since = now_fds, time.monotonic()
        elif want < 0 and time.monotonic() - since >= 0.5:
            break
    return fds


def run(
    state: LogindState,
    seconds: float,
    interval: float = 5.0,
    rate: float = 40.0,
    out: TextIO | None = None,
) -> SoakResult:
    """Churn for ``seconds`` against a fresh exporter; return the samples and growth.

    ``state`` writes the (private) /run/systemd the exporter reads. Raises AssertionError
    when the exporter does not start or does not end with zero sessions.
    """
    state.seat0()
    churn = _Churn(state)
    exporter = start_exporter("--refresh.debounce=50ms")
    result = SoakResult()
    try:
        pid = exporter.process.pid
        url = exporter.url + "/metrics"
        _scrape(url)
        gc.collect()  # closes client sockets the readiness probe left for the collector
        result.fds_start = _settled_fds(pid, -1)
        result.rss_start = proc.rss_kib(pid)
        if out:
            print(f"soak: {seconds:g} s, {rate:g} changes/s, exporter pid {pid}", file=out)
        started = time.monotonic()
        next_sample = started + interval
        step_at = started
        while (now := time.monotonic()) < started + seconds:
            if now >= step_at:
                churn.step()
                step_at += 1.0 / rate
            if now >= next_sample:
                _scrape(url)
                sample = Sample(now - started, len(churn.alive), churn.logins, churn.logouts,
                                proc.rss_kib(pid), proc.open_fds(pid))  # fmt: skip
                result.samples.append(sample)
                if out:
                    print(result.table().splitlines()[-2], file=out, flush=True)
                next_sample += interval
            time.sleep(max(0.0, min(step_at, next_sample) - time.monotonic()))
        churn.logout_everyone()
        exporter.wait_for(
            lambda s: sum(v for (n, _), v in s.items() if n == "logind_sessions") == 0,
            timeout=10,
            what="every session logged out",
        )
        _scrape(url)
        result.fds_end = _settled_fds(pid, result.fds_start)
        result.rss_end = proc.rss_kib(pid)
        result.logins, result.logouts = churn.logins, churn.logouts
    finally:
        status, stderr = exporter.stop()
    if status != 0:
        raise AssertionError(f"exporter exited with {status}: {stderr}")
    if out:
        print(result.table(), file=out, flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the soak from the command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python3 -m bench.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="how long (default 10)")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--rate", type=float, default=40.0, help="logins+logouts per second")
    args = parser.parse_args(argv)
    namespace.enter_private_namespace()
    namespace.mount_tmpfs()
    try:
        run(LogindState(), args.minutes * 60, args.interval, args.rate, out=sys.stdout)
    finally:
        namespace.unmount()
    return 0


if __name__ == "__main__":
    sys.exit(main())
