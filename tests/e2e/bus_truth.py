"""What the container's logind says on its bus (busctl), and the exporter's bus families
compared with it."""

from __future__ import annotations

import json
import shlex
import time
from collections import Counter
from dataclasses import dataclass

from tests.e2e.checks import gone_seat_differences
from tests.e2e.container import Container
from tests.e2e.scenario import Exposition, label, scrape

LOGIN1 = "org.freedesktop.login1"
MANAGER = "/org/freedesktop/login1"
SESSION_KEYS = ("seat", "remote", "type", "class")
BUS_SEAT_FAMILIES = ("logind_seat_idle", "logind_seat_idle_since_seconds")  # presence.py

_SESSIONS = r"""
for id in $(loginctl list-sessions --no-legend | awk '{print $1}'); do
  p=$(busctl call org.freedesktop.login1 /org/freedesktop/login1 \
      org.freedesktop.login1.Manager GetSession s "$id" 2>/dev/null | cut -d'"' -f2)
  [ -n "$p" ] || continue
  v=$(busctl get-property org.freedesktop.login1 "$p" org.freedesktop.login1.Session \
      Seat Remote Type Class IdleHint LockedHint 2>/dev/null | tr '\n' ' ')
  [ -n "$v" ] && echo "$v"
done; true
"""

_SEATS = r"""
for s in $(loginctl list-seats --no-legend | awk '{print $1}'); do
  echo "$s $(busctl get-property org.freedesktop.login1 /org/freedesktop/login1/seat/$s \
      org.freedesktop.login1.Seat IdleHint IdleSinceHint | tr '\n' ' ')"
done
"""


def session_path(c: Container, session_id: str) -> str:
    """The session's object path (GetSession)."""
    out = c.run(["busctl", "call", LOGIN1, MANAGER, f"{LOGIN1}.Manager", "GetSession", "s",
                 session_id]).stdout
    return out.split('"')[1]


def as_user(c: Container, user: str, path: str, method: str, value: bool) -> None:
    """Call a Session method taking one boolean as ``user`` (SetIdleHint, SetLockedHint)."""
    c.run(["runuser", "-u", user, "--", "busctl", "call", LOGIN1, path, f"{LOGIN1}.Session",
           method, "b", "true" if value else "false"])


class BusTruth:
    """busctl's answers inside the container: the figures the exporter must show."""

    def __init__(self, c: Container) -> None:
        self.c = c

    def manager(self) -> dict[str, list[str]]:
        names = ["IdleHint", "IdleSinceHint", "PreparingForShutdown", "PreparingForSleep",
                 "ScheduledShutdown", "LidClosed", "Docked", "OnExternalPower"]
        out = self.c.run(["busctl", "get-property", LOGIN1, MANAGER, f"{LOGIN1}.Manager",
                          *names]).stdout
        # "b true", "(st) \"poweroff\" 1796...": the values after the signature
        return {name: shlex.split(line)[1:] for name, line in zip(names, out.splitlines(),
                                                                   strict=True)}

    def session_hints(self) -> tuple[Counter[tuple[str, ...]], Counter[tuple[str, ...]],
                                     set[tuple[str, ...]]]:
        """(idle sessions, locked sessions) by (seat, remote, type, class), and every key."""
        idle: Counter[tuple[str, ...]] = Counter()
        locked: Counter[tuple[str, ...]] = Counter()
        keys: set[tuple[str, ...]] = set()
        for line in self.c.sh(_SESSIONS).splitlines():
            t = shlex.split(line)
            # (so) SEAT PATH b REMOTE s TYPE s CLASS b IDLE b LOCKED
            if len(t) < 13:
                continue  # the session went while busctl read it: no longer logind's answer
            key = (t[1], t[4], label(t[6]), label(t[8]))
            keys.add(key)
            idle[key] += t[10] == "true"
            locked[key] += t[12] == "true"
        return idle, locked, keys

    def seats(self) -> dict[str, tuple[float, float]]:
        """seat -> (idle, idle since in seconds, 0 while not idle)."""
        out = {}
        for line in self.c.sh(_SEATS).splitlines():
            t = line.split()
            idle = t[2] == "true"
            out[t[0]] = (float(idle), int(t[4]) / 1e6 if idle else 0.0)
        return out

    def inhibitors(self) -> Counter[tuple[str, str]]:
        """(operation, mode) -> locks (ListInhibitors)."""
        out = self.c.run(["busctl", "--json=short", "call", LOGIN1, MANAGER,
                          f"{LOGIN1}.Manager", "ListInhibitors"]).stdout
        counts: Counter[tuple[str, str]] = Counter()
        for what, _who, _why, mode, _uid, _pid in json.loads(out)["data"][0]:
            for op in what.split(":"):
                counts[(op, mode)] += 1
        return counts


@dataclass(frozen=True)
class Answers:
    """busctl's answers at one moment."""

    manager: dict[str, list[str]]
    seats: dict[str, tuple[float, float]]
    idle: Counter[tuple[str, ...]]
    locked: Counter[tuple[str, ...]]
    session_keys: set[tuple[str, ...]]
    inhibitors: Counter[tuple[str, str]]

    @classmethod
    def collect(cls, truth: BusTruth) -> Answers:
        idle, locked, keys = truth.session_hints()
        return cls(truth.manager(), truth.seats(), idle, locked, keys, truth.inhibitors())


def bus_differences(want: Answers, exp: Exposition) -> list[str]:
    """Every way the exporter's bus families disagree with busctl's answers."""
    out = []
    if exp.get("logind_dbus_up") != 1.0:
        return [f"logind_dbus_up = {exp.get('logind_dbus_up')}, want 1"]
    m = want.manager
    idle = m["IdleHint"][0] == "true"
    flags = {
        "logind_idle": float(idle),
        "logind_idle_since_seconds": int(m["IdleSinceHint"][0]) / 1e6 if idle else 0.0,
        "logind_preparing_for_shutdown": float(m["PreparingForShutdown"][0] == "true"),
        "logind_preparing_for_sleep": float(m["PreparingForSleep"][0] == "true"),
        "logind_lid_closed": float(m["LidClosed"][0] == "true"),
        "logind_docked": float(m["Docked"][0] == "true"),
        "logind_on_external_power": float(m["OnExternalPower"][0] == "true"),
    }
    for name, value in flags.items():
        if exp.get(name) != value:
            out.append(f"{name} = {exp.get(name)}, busctl says {value}")
    kind, usec = m["ScheduledShutdown"][0], int(m["ScheduledShutdown"][1])
    shutdown_series = exp.series("logind_scheduled_shutdown_timestamp_seconds")
    got_when = {dict(k)["type"]: v for k, v in shutdown_series.items() if v}
    want_when = {label(kind): usec / 1e6} if kind and usec else {}
    if got_when != want_when:
        out.append(f"scheduled shutdown {got_when}, busctl says {want_when}")
    for seat, (seat_idle, since) in want.seats.items():
        if exp.get("logind_seat_idle", seat=seat) != seat_idle:
            out.append(f"logind_seat_idle{{seat={seat}}} = "
                       f"{exp.get('logind_seat_idle', seat=seat)}, busctl says {seat_idle}")
        if exp.get("logind_seat_idle_since_seconds", seat=seat) != since:
            out.append(f"logind_seat_idle_since_seconds{{seat={seat}}} = "
                       f"{exp.get('logind_seat_idle_since_seconds', seat=seat)}, busctl {since}")
    out += gone_seat_differences(exp, set(want.seats), BUS_SEAT_FAMILIES)
    for name, counts in (("logind_sessions_idle", want.idle),
                         ("logind_sessions_locked", want.locked)):
        got = exp.nonzero(name, SESSION_KEYS)
        if got != +counts:
            out.append(f"{name} {dict(got)} != busctl {dict(+counts)}")
        for key in want.session_keys:  # every session was read: its label set is exported
            if exp.get(name, **dict(zip(SESSION_KEYS, key, strict=True))) is None:
                out.append(f"{name} has no series for {key}")
    got_inh = Counter({(k[0], k[1]): int(v) for k, v in
                       exp.nonzero("logind_inhibitors", ("what", "mode")).items()})
    if got_inh != want.inhibitors:
        out.append(f"logind_inhibitors {dict(got_inh)} != ListInhibitors {dict(want.inhibitors)}")
    return out


def assert_bus_agrees(truth: BusTruth, port: int, since: float | None = None,
                      within: float = 1.0) -> Exposition:
    """Collect busctl's answers once, then scrape until the exporter shows the same; the
    exporter has until ``within`` seconds after ``since`` (time.monotonic() when the step
    ended; default now), or one scrape when busctl took longer than that. Returns the scrape
    that agreed; raises AssertionError with the differences."""
    since = time.monotonic() if since is None else since
    want = Answers.collect(truth)
    deadline = since + within
    while True:
        exp = scrape(port)
        diffs = bus_differences(want, exp)
        if not diffs:
            return exp
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"exporter disagrees with busctl {time.monotonic() - since:.2f} s after the "
                "step:\n  " + "\n  ".join(diffs))
        time.sleep(0.02)
