"""Metric families from the newest snapshot, rendered once per refresh.

Counters and the session-duration histogram accumulate from the difference between consecutive
snapshots (:meth:`Totals.observe`). :func:`render` turns a snapshot plus totals into exposition
bytes; a scrape only reads those bytes (see login_exporter.exposition), so it never calls
libsystemd.
"""

from __future__ import annotations

import bisect
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client.core import Metric

from login_exporter import __version__
from login_exporter.exposition import Exposition
from login_exporter.families import Sticky, counter, gauge, histogram
from login_exporter.liveness import FILES_RULE, RULES, Status
from login_exporter.specs import SPECS
from login_exporter.state import Difference, Seat, Session, Snapshot

_LABEL_VALUE = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
USER_STATES = ("offline", "lingering", "online", "active", "closing")
DURATION_BUCKETS = (
    1.0, 10.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0,
    259200.0, 604800.0,
)  # fmt: skip
REFRESH_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip
REFRESH_REASONS = ("startup", "event", "resync")
ERROR_KINDS = ("list", "monitor", "read")


def label_value(value: str | None) -> str:
    """Return ``value`` when it looks like a logind enum value, else "other" (never frozen)."""
    return value if value is not None and _LABEL_VALUE.fullmatch(value) else "other"


def _flag(value: bool) -> str:
    return "true" if value else "false"


@dataclass(frozen=True, slots=True)
class Options:
    """Which optional collectors are on (flags --[no-]collector.*)."""

    machines: bool = True
    machine_info: bool = True
    session_info: bool = False


@dataclass
class Histogram:
    """Cumulative histogram data: per-bucket counts (last is +Inf), sum."""

    bounds: Sequence[float]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        """Add one observation."""
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def buckets(self) -> list[tuple[str, float]]:
        """Return cumulative (le, count) pairs ending with +Inf."""
        result, running = [], 0
        for bound, count in zip([*map(repr, self.bounds), "+Inf"], self.counts, strict=True):
            running += count
            result.append((bound, float(running)))
        return result


SessionKey = tuple[str, str, str, str]  # seat, remote, type, class


def session_key(seat: str, remote: bool, type: str | None, klass: str | None) -> SessionKey:
    """Return the (seat, remote, type, class) label values of a session."""
    return (seat, _flag(remote), label_value(type), label_value(klass))


@dataclass
class Totals:
    """Everything cumulative since the exporter started. Only the agent thread mutates it."""

    session_starts: Counter[SessionKey] = field(default_factory=Counter)
    session_ends: Counter[SessionKey] = field(default_factory=Counter)
    durations: dict[tuple[str, str, str], Histogram] = field(default_factory=dict)
    machine_starts: Counter[str] = field(default_factory=Counter)
    machine_stops: Counter[str] = field(default_factory=Counter)
    refreshes: Counter[str] = field(default_factory=Counter)
    refresh_duration: Histogram = field(default_factory=lambda: Histogram(REFRESH_BUCKETS))
    wakeups: int = 0
    read_races: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    def observe(self, change: Difference, now: float) -> None:
        """Count the sessions and machines that started and ended in ``change``."""
        for session in change.started:
            self.session_starts[
                session_key(session.seat, session.remote, session.type, session.klass)
            ] += 1
        for session in change.ended:
            key = session_key(session.seat, session.remote, session.type, session.klass)
            self.session_ends[key] += 1
            histogram = self.durations.setdefault(key[1:], Histogram(DURATION_BUCKETS))
            histogram.observe(max(0.0, now - session.started))
        for machine in change.machines_started:
            self.machine_starts[label_value(machine.klass)] += 1
        for machine in change.machines_stopped:
            self.machine_stops[label_value(machine.klass)] += 1


# One gauge per seat, labelled by seat (HELP in SPECS): name -> its value from the seat, the
# live sessions per seat and every session. Tests take the list of seat families from here.
SeatValue = Callable[[Seat, Mapping[str, int], Mapping[str, Session]], float]
SEAT_FAMILIES: dict[str, SeatValue] = {
    "logind_seat_present": lambda seat, live, sessions: 1.0,
    "logind_seat_sessions": lambda seat, live, sessions: float(live.get(seat.name, 0)),
    "logind_seat_active_session":
        lambda seat, live, sessions: float(seat.active_session in sessions),
    "logind_seat_can_graphical": lambda seat, live, sessions: float(seat.can_graphical),
    "logind_seat_can_tty": lambda seat, live, sessions: float(seat.can_tty),
    "logind_seat_can_multi_session":
        lambda seat, live, sessions: float(seat.can_multi_session),
}  # fmt: skip


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class _SessionInfo:
    """logind_session_info, one line per session, each line kept for as long as its session is
    unchanged: at 10,000 sessions a refresh formats only the sessions that changed. A gauge's
    lines read the same in the text format and in OpenMetrics."""

    HEADER = (
        f"# HELP logind_session_info {SPECS['logind_session_info'].help}\n"
        "# TYPE logind_session_info gauge\n"
    ).encode()

    def __init__(self) -> None:
        self._lines: dict[str, tuple[Session, bytes]] = {}
        self._generation = -1
        self._block = self.HEADER

    def render(self, snapshot: Snapshot) -> bytes:
        """Return the family's lines for ``snapshot``'s sessions, HELP and TYPE first. When the
        snapshot was built from the one rendered last by reading named sessions, only those
        are looked at (the join of the lines stays one copy of the block)."""
        sessions = snapshot.sessions
        if snapshot.generation == self._generation and snapshot.generation:
            return self._block  # the same snapshot again (a publish for the bus or liveness)
        if snapshot.touched is not None and snapshot.base == self._generation:
            lines = dict(self._lines)
            for session_id in snapshot.touched:
                session = sessions.get(session_id)
                if session is None:
                    lines.pop(session_id, None)
                else:
                    known = lines.get(session_id)
                    if known is None or known[0] != session:
                        lines[session_id] = (session, self._line(session))
        else:
            lines = {}
            for session_id, session in sessions.items():
                known = self._lines.get(session_id)
                if known is not None and known[0] == session:
                    lines[session_id] = known
                else:
                    lines[session_id] = (session, self._line(session))
        self._lines, self._generation = lines, snapshot.generation
        self._block = self.HEADER + b"".join(line for _, line in lines.values())
        return self._block

    @staticmethod
    def _line(s: Session) -> bytes:
        values = (
            s.id, str(s.uid), s.user or "", s.seat, label_value(s.type), label_value(s.klass),
            label_value(s.state), _flag(s.remote), s.remote_host or "", s.service or "",
            s.tty or "", s.desktop or "",
        )  # fmt: skip
        pairs = zip(SPECS["logind_session_info"].labels, values, strict=True)
        labels = ",".join(f'{name}="{_escape(value)}"' for name, value in pairs)
        return f"logind_session_info{{{labels}}} 1.0\n".encode("utf-8", "surrogateescape")


AttrKey = tuple[str, str, str, str, str]  # seat, remote, type, class, state


def _attrs(s: Session) -> AttrKey:
    return (*session_key(s.seat, s.remote, s.type, s.klass), label_value(s.state))


class _SessionCounts:
    """Sessions counted by their label values and live sessions per seat, kept up to date from
    the sessions a snapshot names as touched when it was built from the one counted last
    (O(touched)); any other snapshot is counted whole."""

    def __init__(self) -> None:
        self.by_attrs: Counter[AttrKey] = Counter()
        self.live: Counter[str] = Counter()
        self._generation = -1
        self._sessions: Mapping[str, Session] = {}

    def update(self, snapshot: Snapshot) -> None:
        """Count ``snapshot``'s sessions (incrementally when it allows)."""
        if snapshot.generation == self._generation and snapshot.sessions is self._sessions:
            return
        old, new = self._sessions, snapshot.sessions
        if snapshot.touched is not None and snapshot.base == self._generation:
            for sid in snapshot.touched:
                before, after = old.get(sid), new.get(sid)
                if before == after:
                    continue
                if before is not None:
                    self._count(before, -1)
                if after is not None:
                    self._count(after, 1)
        else:
            self.by_attrs = Counter(_attrs(s) for s in new.values())
            self.live = Counter(s.seat for s in new.values() if s.seat)
        self._generation, self._sessions = snapshot.generation, new

    def _count(self, session: Session, step: int) -> None:
        key = _attrs(session)
        self.by_attrs[key] += step
        if not self.by_attrs[key]:
            del self.by_attrs[key]  # bounded by the label sets alive (sticky keeps the zeros)
        if session.seat:
            self.live[session.seat] += step
            if not self.live[session.seat]:
                del self.live[session.seat]


class LogindCollector:
    """The logind_* families for the snapshot and totals last given to :meth:`update`, as an
    :class:`Exposition` (:meth:`exposition`)."""

    def __init__(
        self,
        options: Options,
        libsystemd_version: str,
        start_time_known: bool,
        library: str = "libsystemd",
    ) -> None:
        self._options = options
        self._sticky = Sticky()
        self._families: list[Metric] = []
        self._session_info = _SessionInfo() if options.session_info else None
        self._session_info_block = b""
        self._counts = _SessionCounts()
        self._build_info = (__version__, sys.version.split()[0], libsystemd_version, library)
        self._start_source = (
            "sd_session_get_start_time" if start_time_known else "the exporter's first sight of the"
            " session (libsystemd and libelogind older than 254 have no sd_session_get_start_time)"
        )

    def update(
        self,
        snapshot: Snapshot,
        totals: Totals,
        liveness: Status = FILES_RULE,
        extra: Iterable[Metric] = (),
    ) -> None:
        """Compute the families for ``snapshot`` and logind's ``liveness`` (called by the agent
        after each refresh and each change of liveness); ``extra`` families (from the bus, see
        presence.py) are exported after them."""
        self._counts.update(snapshot)
        self._families = [*self._build(snapshot, totals, liveness), *extra]
        if self._session_info is not None:
            self._session_info_block = self._session_info.render(snapshot)

    def exposition(self) -> Exposition:
        """Return the last update() as an Exposition, logind_session_info included."""
        return Exposition(self._families, self._session_info_block)

    def _build(self, snapshot: Snapshot, totals: Totals, liveness: Status) -> Iterator[Metric]:
        sticky, options = self._sticky, self._options
        yield gauge("logind_up", {(): 1.0 if liveness.up(snapshot.logind_up) else 0.0})
        yield counter("logind_restarts_total", {(): float(liveness.restarts)})
        counts = self._counts.by_attrs
        by_attrs: dict[tuple[str, ...], float] = {k: float(v) for k, v in counts.items()}
        yield gauge("logind_sessions", sticky.fill("logind_sessions", by_attrs))
        yield from self._seats(snapshot)
        users: dict[tuple[str, ...], float] = {(state,): 0.0 for state in USER_STATES}
        for user in snapshot.users.values():
            users[(label_value(user.state),)] = users.get((label_value(user.state),), 0.0) + 1
        yield gauge("logind_users", sticky.fill("logind_users", users))
        if options.machines:
            yield from self._machines(snapshot, totals)
        yield from self._session_counters(totals)
        yield from self._self_metrics(snapshot, totals, liveness)

    def _seats(self, snapshot: Snapshot) -> Iterator[Metric]:
        # Count live sessions, not the seat file's SESSIONS list: systemd 252 leaves an ended
        # session's id there (and in ACTIVE) until something else rewrites the seat.
        live = self._counts.live
        for name, value in SEAT_FAMILIES.items():
            values: dict[tuple[str, ...], float] = {
                (seat.name,): value(seat, live, snapshot.sessions)
                for seat in snapshot.seats.values()
            }
            yield gauge(name, self._sticky.fill(name, values))

    def _machines(self, snapshot: Snapshot, totals: Totals) -> Iterator[Metric]:
        by_class: Counter[tuple[str, ...]] = Counter(
            (label_value(m.klass),) for m in snapshot.machines.values()
        )
        yield gauge(
            "logind_machines",
            self._sticky.fill("logind_machines", {k: float(v) for k, v in by_class.items()}),
        )
        if self._options.machine_info:
            info: dict[tuple[str, ...], float] = {
                (m.name, label_value(m.klass)): 1.0 for m in snapshot.machines.values()
            }
            yield gauge("logind_machine_info", self._sticky.fill("logind_machine_info", info))
        for name, counts in (
            ("logind_machine_starts_total", totals.machine_starts),
            ("logind_machine_stops_total", totals.machine_stops),
        ):
            yield counter(name, {(k,): float(v) for k, v in counts.items()})

    def _session_counters(self, totals: Totals) -> Iterator[Metric]:
        yield counter("logind_session_starts_total",
                      {k: float(v) for k, v in totals.session_starts.items()})
        yield counter("logind_session_ends_total",
                      {k: float(v) for k, v in totals.session_ends.items()})
        yield histogram(
            "logind_session_duration_seconds",
            ((key, h.buckets(), h.total) for key, h in sorted(totals.durations.items())),
            start_source=self._start_source,
        )

    def _self_metrics(
        self, snapshot: Snapshot, totals: Totals, liveness: Status
    ) -> Iterator[Metric]:
        yield gauge("logind_exporter_build_info", {self._build_info: 1.0})
        yield counter("logind_exporter_refreshes_total",
                      {(r,): float(totals.refreshes[r]) for r in REFRESH_REASONS})
        yield gauge("logind_exporter_liveness_rule",
                    {(rule,): 1.0 if rule == liveness.rule else 0.0 for rule in RULES})
        yield counter("logind_exporter_monitor_wakeups_total", {(): float(totals.wakeups)})
        refresh = totals.refresh_duration
        yield histogram("logind_exporter_refresh_duration_seconds",
                        [((), refresh.buckets(), refresh.total)])
        yield gauge("logind_exporter_last_refresh_timestamp_seconds", {(): snapshot.taken_at})
        yield counter("logind_exporter_read_races_total", {(): float(totals.read_races)})
        yield counter(
            "logind_exporter_errors_total",
            {(k,): float(totals.errors[k]) for k in sorted({*ERROR_KINDS, *totals.errors})},
        )
