"""Synthetic logind state for benchmarks, written into a private /run/systemd.

`populate(n)` writes N sessions over four seats (seat0, seat-kiosk1..3), hundreds of users and
tens of machines (fewer at small N), in logind's own file format via
`tests.support.logind_state.LogindState`. `private_run_systemd()` moves this process into a
private mount namespace (once) and mounts a fresh tmpfs on /run/systemd, so the host's
/run/systemd is never read or written; child processes (the C floor, the exporter) inherit it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from tests.support import namespace
from tests.support.logind_state import LogindState

SEATS = ("seat0", "seat-kiosk1", "seat-kiosk2", "seat-kiosk3")
SEATED_PER_SEAT = 4  # sessions attached to each seat (a greeter or desktop plus a few more)
FIRST_UID = 1000


@contextmanager
def private_run_systemd() -> Iterator[LogindState]:
    """Yield a writer over a fresh tmpfs on /run/systemd, private to this process.

    Raises OSError when the kernel refuses the namespace or the mount.
    """
    namespace.enter_private_namespace()
    namespace.mount_tmpfs()
    try:
        yield LogindState()
    finally:
        namespace.unmount()


def user_count(n: int) -> int:
    """Users for N sessions: hundreds at N >= 1,000, about one per three sessions below."""
    return max(1, min(300, n // 3))


def machine_count(n: int) -> int:
    """Machines for N sessions: tens at N >= 1,000, a few below."""
    return max(1, min(30, n // 30))


@dataclass
class SessionSpec:
    """What the writer put in one session file (the bench's model of the truth)."""

    session_id: str
    uid: int
    seat: str | None
    type: str
    klass: str
    state: str
    active: bool
    remote: bool
    service: str


@dataclass
class StateTree:
    """The state written for one N, and helpers that change it the way logind would."""

    writer: LogindState
    sessions: dict[str, SessionSpec] = field(default_factory=dict)
    uids: list[int] = field(default_factory=list)
    machines: list[str] = field(default_factory=list)

    def write_session(self, spec: SessionSpec) -> None:
        """(Re)write one session file atomically (temp file + rename, as logind does)."""
        self.sessions[spec.session_id] = spec
        self.writer.session(
            spec.session_id,
            uid=spec.uid,
            seat=spec.seat,
            type=spec.type,
            klass=spec.klass,
            state=spec.state,
            active=spec.active,
            remote=spec.remote,
            remote_host="203.0.113.9" if spec.remote else None,
            service=spec.service,
            tty=None if spec.seat else "pts/0",
            vtnr=1 if spec.seat == "seat0" else None,
        )

    def toggle_state(self, session_id: str) -> str:
        """Flip one session between active and online (one rename). Returns the new state."""
        spec = self.sessions[session_id]
        spec.state = "online" if spec.state == "active" else "active"
        spec.active = spec.state == "active"
        self.write_session(spec)
        return spec.state

    def count_by_state(self) -> dict[str, int]:
        """Sessions per state, from the model (what /metrics must show once settled)."""
        out: dict[str, int] = {}
        for spec in self.sessions.values():
            out[spec.state] = out.get(spec.state, 0) + 1
        return out

    def toggleable(self) -> list[str]:
        """Session ids that are safe to flip active/online (seatless, so seats stay valid)."""
        return [sid for sid, s in self.sessions.items() if s.seat is None]


def seated_count(n: int) -> int:
    """Sessions on seats: up to SEATED_PER_SEAT per seat, never more than half of N."""
    return min(SEATED_PER_SEAT * len(SEATS), max(1, n // 2))


def _spec(i: int, users: int, seated: int) -> SessionSpec:
    sid = str(i + 1)
    uid = FIRST_UID + i % users
    if i < seated:
        seat = SEATS[i % len(SEATS)]
        greeter = i < len(SEATS)
        return SessionSpec(
            sid,
            uid,
            seat,
            type="wayland" if i % 2 else "x11",
            klass="greeter" if greeter else "user",
            state="online" if greeter else "active",
            active=not greeter,
            remote=False,
            service="gdm-password" if not greeter else "gdm-launch-environment",
        )
    kind = i % 10
    if kind < 6:  # ssh logins
        return SessionSpec(sid, uid, None, "tty", "user", "active", True, True, "sshd")
    if kind < 8:  # services run with PAMName= (background class)
        return SessionSpec(sid, uid, None, "unspecified", "background", "active", True, False,
                           "systemd-user")
    if kind == 8:  # su -l
        return SessionSpec(sid, uid, None, "tty", "user", "online", False, False, "su-l")
    return SessionSpec(sid, uid, None, "tty", "user", "closing", False, True, "sshd")


def populate(writer: LogindState, n: int) -> StateTree:
    """Write N sessions, 4 seats, user_count(n) users, machine_count(n) machines.

    Returns the model of what was written.
    """
    tree = StateTree(writer)
    users = user_count(n)
    seated = seated_count(n)
    by_uid: dict[int, list[str]] = {}
    by_seat: dict[str, list[tuple[str, int]]] = {seat: [] for seat in SEATS}
    for i in range(n):
        spec = _spec(i, users, seated)
        tree.write_session(spec)
        by_uid.setdefault(spec.uid, []).append(spec.session_id)
        if spec.seat is not None:
            by_seat[spec.seat].append((spec.session_id, spec.uid))
    for seat, on_seat in by_seat.items():
        active = next((sid for sid, _ in reversed(on_seat)), None)
        writer.seat(seat, sessions=on_seat, active=active, can_graphical=True,
                    can_tty=seat == "seat0", can_multi_session=True)
    for k in range(users):
        uid = FIRST_UID + k
        sids = by_uid.get(uid, [])
        seats = sorted({s.seat for sid in sids if (s := tree.sessions[sid]).seat})
        state = "active" if sids else "lingering"
        writer.user(uid, state=state, sessions=sids, seats=seats)
        tree.uids.append(uid)
    for m in range(machine_count(n)):
        name = f"vm{m}" if m % 3 == 0 else f"ct{m}"
        writer.machine(name, klass="vm" if m % 3 == 0 else "container", leader=1000 + m)
        tree.machines.append(name)
    return tree
