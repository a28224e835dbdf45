"""Snapshot objects built by hand, for unit tests of pure logic (no libsystemd)."""

from __future__ import annotations

from login_exporter.state import Session


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
