"""Snapshot objects built by hand, for unit tests of pure logic (no libsystemd)."""

from __future__ import annotations

from collections.abc import Sequence
from types import MappingProxyType

from login_exporter.state import Machine, Seat, Session, Snapshot, User


def session(
    sid: str,
    *,
    seat: str = "",
    remote: bool = False,
    type: str | None = "tty",
    klass: str | None = "user",
    state: str | None = "active",
    start_time: float | None = None,
    first_seen: float = 100.0,
) -> Session:
    """Return a session with plausible defaults for every field not given."""
    return Session(
        id=sid,
        uid=1000 + len(sid),
        seat=seat,
        type=type,
        klass=klass,
        remote=remote,
        service="sshd",
        state=state,
        active=state == "active",
        start_time=start_time,
        first_seen=first_seen,
        user="alice",
        remote_host="203.0.113.9" if remote else None,
        tty="pts/1",
        desktop=None,
    )


def snapshot(
    sessions: Sequence[Session] = (),
    seats: Sequence[Seat] = (),
    users: Sequence[User] = (),
    machines: Sequence[Machine] = (),
    *,
    up: bool = True,
    taken_at: float = 1000.0,
) -> Snapshot:
    """Return a snapshot holding these objects."""
    return Snapshot(
        logind_up=up,
        sessions=MappingProxyType({s.id: s for s in sessions}),
        seats=MappingProxyType({s.name: s for s in seats}),
        users=MappingProxyType({u.uid: u for u in users}),
        machines=MappingProxyType({m.name: m for m in machines}),
        taken_at=taken_at,
    )
