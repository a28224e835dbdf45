"""Real things inside the e2e container, and the truth about them from loginctl / machinectl.

Everything that creates a session goes through the container's own PID 1 (``systemd-run``), so
the processes live in the container's cgroup tree exactly as a login would. Under sysvinit (the
elogind root filesystem) there is no PID 1 to ask: sessions are opened by ``su -l`` and PAM
programs started in the background (``Container.spawn``), as a login on such a host is.
"""

from __future__ import annotations

import itertools
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import requests

from tests.e2e.container import PROJECT, Container, ContainerError
from tests.support.exposition import Exposition as Exposition

# Ports on 127.0.0.1: this suite owns PORT_BASE to PORT_BASE + 99 (19800-19899 by default). The
# containers share this machine's network, so a second run beside the first (a developer's
# beside CI's) sets $LOGIN_EXPORTER_E2E_PORT_BASE to another hundred.
PORT_BASE = int(os.environ.get("LOGIN_EXPORTER_E2E_PORT_BASE", "19800"))
EXPORTER_PORT = PORT_BASE
NODE_EXPORTER_PORT = PORT_BASE + 1
PROMETHEUS_PORT = PORT_BASE + 2
SPARE_EXPORTER_PORT = PORT_BASE + 3
HOST_EXPORTER_PORT = PORT_BASE + 4  # this machine's exporter reading a newer release's /run/systemd
ATTACKED_EXPORTER_PORT = PORT_BASE + 5  # the exporter as its own system user, under attack
EXPORTER_USER = "login-exporter"  # deploy/systemd/login-exporter.sysusers

LABEL_VALUE = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
USER_STATES = ("offline", "lingering", "online", "active", "closing")

_serial = itertools.count(1)
T = TypeVar("T")


def unique(prefix: str) -> str:
    """A name no other object in this test run has (user names: at most 32 chars)."""
    return f"{prefix}{next(_serial)}"


def label(value: str) -> str:
    """A logind value as the exporter exports it (metrics.md label rules)."""
    return value if LABEL_VALUE.match(value) else "other"


# -- metrics -------------------------------------------------------------------------------

def scrape(port: int, path: str = "/metrics", timeout: float = 5.0) -> Exposition:
    """GET the exposition from 127.0.0.1:port. Raises requests exceptions."""
    r = requests.get(f"http://127.0.0.1:{port}{path}", timeout=timeout)
    r.raise_for_status()
    return Exposition.parse(r.text)


class Unknown(AssertionError):
    """loginctl does not list an object (yet, or at that moment: its list and its show-* are two
    calls, and logind may be saving or re-creating the object between them); retried by
    wait_until."""


def wait_until(
    probe: Callable[[], T | None], *, timeout: float, interval: float = 0.05, what: str = ""
) -> T:
    """Call ``probe`` until it returns something not None; raise AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = probe()
            if result is not None:
                return result
        except (requests.RequestException, ContainerError, Unknown) as e:
            last_error = e
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} ({last_error})")
        time.sleep(interval)


# -- truth from loginctl / machinectl (D-Bus) and from the state files (sd-login) ---------


@dataclass(frozen=True)
class SessionTruth:
    id: str
    uid: int
    user: str
    seat: str
    remote: bool
    remote_host: str
    type: str
    session_class: str
    state: str
    service: str
    active: bool

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        """(seat, remote, type, class, state) as the exporter labels it."""
        return (self.seat, "true" if self.remote else "false", label(self.type),
                label(self.session_class), label(self.state))


@dataclass(frozen=True)
class UserTruth:
    uid: int
    name: str
    dbus_state: str  # what loginctl (logind's memory over D-Bus) says
    file_state: str  # what /run/systemd/users/UID says: what sd_uid_get_state() returns
    linger: bool


@dataclass(frozen=True)
class SeatTruth:
    name: str
    active_session: str
    can_tty: bool
    can_graphical: bool
    sessions: tuple[str, ...]


@dataclass(frozen=True)
class MachineTruth:
    name: str
    machine_class: str


def _records(text: str) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for block in text.split("\n---\n"):
        rec: dict[str, str] = {}
        for line in block.splitlines():
            k, sep, v = line.partition("=")
            if sep and k and k != "---":
                rec[k] = v
        if rec:
            out.append(rec)
    return out


# A session listed and gone before show-session asks is skipped: the loop's status was that of
# the last show-session, and a session ending at that moment failed the whole truth (CI, 252).
_SESSIONS_SCRIPT = r"""
for s in $(loginctl list-sessions --no-legend | awk '{print $1}'); do
  echo ---
  loginctl show-session "$s" -p Id -p User -p Name -p Seat -p Remote -p RemoteHost -p Type \
    -p Class -p State -p Service -p Active 2>/dev/null || true
done
"""


class Truth:
    """What the container's logind and machined say right now."""

    def __init__(self, c: Container) -> None:
        self.c = c

    def sessions(self) -> list[SessionTruth]:
        out = []
        for r in _records(self.c.sh(_SESSIONS_SCRIPT)):
            if "Id" not in r or "Class" not in r:
                continue  # vanished between list and show
            out.append(SessionTruth(
                id=r["Id"], uid=int(r["User"]), user=r["Name"], seat=r["Seat"],
                remote=r["Remote"] == "yes", remote_host=r["RemoteHost"], type=r["Type"],
                session_class=r["Class"], state=r["State"], service=r["Service"],
                active=r["Active"] == "yes",
            ))
        return out

    def session_count(self) -> int:
        """How many sessions logind has: one ``loginctl list-sessions``, cheap enough to poll
        with hundreds open (``sessions()`` asks about each)."""
        out = self.c.run(["loginctl", "list-sessions", "--no-legend"]).stdout
        return sum(1 for line in out.splitlines() if line.strip())

    def session(self, session_id: str) -> SessionTruth:
        for s in self.sessions():
            if s.id == session_id:
                return s
        raise Unknown(f"loginctl does not know session {session_id}")

    def session_counts(self) -> Counter[tuple[str, ...]]:
        """(seat, remote, type, class, state) -> sessions, as logind_sessions should say."""
        return Counter(s.key for s in self.sessions())

    def users(self) -> list[UserTruth]:
        script = r"""
for u in $(loginctl list-users --no-legend | awk '{print $1}'); do
  echo ---
  loginctl show-user "$u" -p UID -p Name -p State -p Linger 2>/dev/null
  printf 'FILE_STATE=%s\n' "$(sed -n 's/^STATE=//p' /run/systemd/users/$u 2>/dev/null)"
done
"""
        out = []
        for r in _records(self.c.sh(script)):
            if "UID" not in r:
                continue
            out.append(UserTruth(uid=int(r["UID"]), name=r["Name"], dbus_state=r["State"],
                                 file_state=r.get("FILE_STATE", ""),
                                 linger=r.get("Linger") == "yes"))
        return out

    def user(self, name: str) -> UserTruth:
        for u in self.users():
            if u.name == name:
                return u
        raise Unknown(f"loginctl does not know user {name}")

    def user_file_states(self) -> Counter[str]:
        """Users by the STATE in /run/systemd/users/*: exactly what sd_uid_get_state() reads."""
        out: Counter[str] = Counter()
        for line in self.c.sh(
            "for f in /run/systemd/users/*; do [ -f \"$f\" ] && sed -n 's/^STATE=//p' \"$f\"; "
            "done; true"
        ).split():
            out[line] += 1
        return out

    def seats(self) -> list[SeatTruth]:
        script = r"""
for s in $(loginctl list-seats --no-legend | awk '{print $1}'); do
  echo ---
  loginctl show-seat "$s" -p Id -p ActiveSession -p CanTTY -p CanGraphical -p Sessions
done
"""
        return [
            SeatTruth(name=r["Id"], active_session=r.get("ActiveSession", ""),
                      can_tty=r.get("CanTTY") == "yes",
                      can_graphical=r.get("CanGraphical") == "yes",
                      sessions=tuple(r.get("Sessions", "").split()))
            for r in _records(self.c.sh(script)) if "Id" in r
        ]

    def machines(self) -> list[MachineTruth]:
        if self.c.init == "sysvinit":
            return []  # no machined (elogind has none): no machines, no machinectl
        out = []
        for line in self.c.sh("machinectl list --no-legend --no-pager").splitlines():
            parts = line.split()
            if len(parts) >= 2:
                out.append(MachineTruth(parts[0], parts[1]))
        return out


# -- creating real things inside -------------------------------------------------------------


# Seats beyond seat0 (notes/multi-seat.md): a booted container has no udev daemon, and logind
# builds its seats from udev's database at start-up, which is plain files. Each extra seat is a
# tty device that exists in the container's /sys (/sys/class/tty/ttyN), tagged master-of-seat with
# ID_SEAT; logind picks it up when it restarts. tty0-tty4 are left alone.
SEAT_TTYS = range(5, 64)
_UDEV_TAGS = ("seat", "master-of-seat")
_UDEV_RECORD = "I:1\nE:ID_SEAT={seat}\nG:seat\nG:master-of-seat\nQ:seat\nQ:master-of-seat\nV:1\n"

# A command run as a session's own user from inside the session: the shell moves itself into the
# session's scope (in each cgroup hierarchy the container has: the named systemd one and the
# unified one on a hybrid host, the root of a unified one), then becomes the user. logind then
# resolves /org/freedesktop/login1/session/auto to that session, as for a program in it.
_IN_SESSION = r"""
cg=$(systemctl show -p ControlGroup --value "session-$1.scope")
[ -n "$cg" ] || { echo "session $1 has no scope" >&2; exit 1; }
for root in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified /sys/fs/cgroup; do
  [ -e "$root$cg/cgroup.procs" ] && echo $$ > "$root$cg/cgroup.procs"
done
grep -q "session-$1.scope" /proc/self/cgroup || { echo "not in session-$1.scope" >&2; exit 1; }
user=$2; shift 2
exec setpriv --reuid="$user" --regid="$user" --init-groups "$@"
"""

_SYSV_LOGOUT = r"""
leader=$(sed -n 's/^LEADER=//p' /run/systemd/sessions/SESSION)
procs=$(cat /sys/fs/cgroup/user.slice/user-*.slice/session-SESSION.scope/cgroup.procs \
        | grep -vx "$leader")
kill ${procs:-$leader} 2>/dev/null || true  # none left: a session elogind keeps "closing"
"""


class Scene:
    """Creates real users, sessions, seats and machines in the container, and removes them."""

    def __init__(self, c: Container) -> None:
        self.c = c
        self.truth = Truth(c)
        self._seat_devices: dict[str, str] = {}  # seat -> udev device id ("c4:5")
        self.leaders: dict[int, str] = {}  # under sysvinit: sessions' leader pids -> names

    def add_user(self, prefix: str = "u") -> str:
        name = unique(f"e2e{prefix}")
        self.c.run(["useradd", "-m", name])
        return name

    def _session_by_leader_unit(self, unit: str, timeout: float = 10.0) -> str:
        # The unit's main process opened the session, so pam_systemd moved it into the
        # session's scope: its cgroup names the session.
        def probe() -> str | None:
            out = self.c.sh(
                f"pid=$(systemctl show -p MainPID --value {unit}); "
                f"[ \"$pid\" != 0 ] && sed -n 's/.*session-\\(.*\\)\\.scope$/\\1/p' "
                f"/proc/$pid/cgroup | head -1; true"
            ).strip()
            if out and (self.c.run(["test", "-f", f"/run/systemd/sessions/{out}"],
                                   check=False).returncode == 0):
                return out
            return None

        return wait_until(probe, timeout=timeout, what=f"a session for {unit}")

    def _session_led_by(self, pid: int, what: str, timeout: float = 10.0) -> str:
        """The id of the session whose leader is ``pid`` (its state file's LEADER=)."""
        script = (f"for f in /run/systemd/sessions/*; do case $f in *.ref) continue;; esac; "
                  f"grep -qx 'LEADER={pid}' \"$f\" 2>/dev/null && basename \"$f\"; done; true")
        return wait_until(lambda: self.c.sh(script).strip() or None, timeout=timeout,
                          what=f"a session for {what}")

    def _sysv_pam_session(self, user: str, rhost: str, service: str,
                          env: dict[str, str]) -> str:
        name = unique("e2e-pam-")
        pid = self.c.spawn([self.c.python, f"{PROJECT}/tests/e2e/pam_session.py", user, rhost,
                            "--service", service], name=name, env=env)
        self.leaders[pid] = name
        return self._session_led_by(pid, name)

    def pam_session(
        self,
        user: str,
        *,
        session_type: str | None = None,
        session_class: str | None = None,
        seat: str | None = None,
        vtnr: int | None = None,
        service: str = "login",
    ) -> str:
        """A PAM session opened by PID 1 for ``user`` (systemd-run -p PAMName=...);
        pam_systemd takes XDG_SESSION_TYPE, XDG_SESSION_CLASS, XDG_SEAT and XDG_VTNR from the
        unit's environment (it ignores a VT number on a seat other than seat0).

        Returns the session id; raises ContainerError when systemd-run fails and
        AssertionError when no session appears. Under sysvinit: pam_session.py opens it (no
        PID 1 to ask).
        """
        if self.c.init == "sysvinit":
            env = {k: v for k, v in (("XDG_SESSION_TYPE", session_type),
                                     ("XDG_SESSION_CLASS", session_class),
                                     ("XDG_SEAT", seat)) if v}
            return self._sysv_pam_session(user, "", service, env)
        unit = unique("e2e-pam-")
        cmd = ["systemd-run", "--quiet", f"--unit={unit}", "-p", f"PAMName={service}",
               "-p", f"User={user}"]
        if session_type:
            cmd += ["-E", f"XDG_SESSION_TYPE={session_type}"]
        if session_class:
            cmd += ["-E", f"XDG_SESSION_CLASS={session_class}"]
        if seat:
            cmd += ["-E", f"XDG_SEAT={seat}"]
        if vtnr is not None:
            cmd += ["-E", f"XDG_VTNR={vtnr}"]
        self.c.run([*cmd, "sleep", "3600"])
        return self._session_by_leader_unit(unit)

    def graphical_session(self, user: str, seat: str, session_type: str = "x11",
                          session_class: str = "user", vtnr: int | None = None) -> str:
        """A graphical login of ``user`` on ``seat`` as a display manager opens it (type x11 or
        wayland, class user or greeter). Returns the session id (see pam_session())."""
        return self.pam_session(user, session_type=session_type, session_class=session_class,
                                seat=seat, vtnr=vtnr)

    # -- seats -------------------------------------------------------------------------------

    def seat_names(self) -> list[str]:
        """The seats logind has (``loginctl list-seats``), sorted."""
        out = self.c.run(["loginctl", "list-seats", "--no-legend"]).stdout
        return sorted(line.split()[0] for line in out.splitlines() if line.strip())

    def restart_logind(self) -> float:
        """``systemctl restart systemd-logind`` (Container.systemctl), then wait until the new
        one answers on the bus.

        Returns time.monotonic() when it answered; raises ContainerError when the restart
        fails or hangs, AssertionError when the new logind does not answer within 10 s.
        """
        self.c.systemctl("restart", "systemd-logind")
        wait_until(lambda: self.c.run(["loginctl", "list-seats", "--no-legend"],
                                      check=False).returncode == 0 or None,
                   timeout=10, what="logind answering after its restart")
        return time.monotonic()

    def _free_seat_device(self) -> str:
        used = set(self._seat_devices.values())
        for n in SEAT_TTYS:
            dev = self.c.run(["cat", f"/sys/class/tty/tty{n}/dev"], check=False).stdout.strip()
            if dev and f"c{dev}" not in used:
                return f"c{dev}"
        raise ContainerError("no tty device left in /sys/class/tty to make a seat of")

    def add_seats(self, *seats: str) -> float:
        """Give logind the seats ``seats``: each a tty device that exists in /sys, written into
        udev's database as master-of-seat with ID_SEAT, then logind restarted (it reads the
        database at start-up only). A seat already given keeps its device.

        Returns time.monotonic() when the restarted logind had them all; raises AssertionError
        when it does not list them within 10 s.
        """
        script = ["mkdir -p /run/udev/data " + " ".join(f"/run/udev/tags/{t}"
                                                        for t in _UDEV_TAGS)]
        for seat in seats:
            if not LABEL_VALUE.match(seat) or not seat.startswith("seat"):
                raise ValueError(f"not a seat name logind accepts plainly: {seat!r}")
            dev = self._seat_devices.get(seat) or self._free_seat_device()
            self._seat_devices[seat] = dev
            record = _UDEV_RECORD.format(seat=seat)
            script.append(f"printf '{record}' > /run/udev/data/{dev}")
            script += [f": > /run/udev/tags/{t}/{dev}" for t in _UDEV_TAGS]
        self.c.sh("\n".join(script))
        self.restart_logind()
        want = set(seats)
        wait_until(lambda: want <= set(self.seat_names()) or None, timeout=10,
                   what=f"logind listing {sorted(want)}")
        return time.monotonic()

    def remove_seats(self, *seats: str) -> float:
        """Take the seats away: their udev records removed, logind restarted. A session on a
        removed seat stays, with no seat.

        Returns time.monotonic() when the restarted logind no longer had them; raises
        AssertionError when it still lists one after 10 s, KeyError for a seat this Scene did
        not add.
        """
        devices = [self._seat_devices.pop(seat) for seat in seats]
        self.c.sh("; ".join(f"rm -f /run/udev/data/{dev} " + " ".join(
            f"/run/udev/tags/{t}/{dev}" for t in _UDEV_TAGS) for dev in devices))
        self.restart_logind()
        gone = set(seats)
        wait_until(lambda: not gone & set(self.seat_names()) or None, timeout=10,
                   what=f"logind without {sorted(gone)}")
        return time.monotonic()

    def added_seats(self) -> list[str]:
        """The seats this Scene has given logind and not taken back, sorted."""
        return sorted(self._seat_devices)

    def activate(self, session_id: str, timeout: float = 10.0) -> float:
        """Make ``session_id`` the active session of its seat (``loginctl activate``: on a seat
        without VTs logind switches itself).

        Returns time.monotonic() once the seat names it active; raises ContainerError when
        logind refuses, AssertionError when the switch is not seen within ``timeout``.
        """
        seat = self.truth.session(session_id).seat
        if not seat:
            raise ContainerError(f"session {session_id} has no seat to be active on")
        self.c.run(["loginctl", "activate", session_id])
        wait_until(lambda: self.c.run(
            ["loginctl", "show-seat", seat, "-p", "ActiveSession", "--value"]
        ).stdout.strip() == session_id or None, timeout=timeout,
            what=f"session {session_id} active on {seat}")
        return time.monotonic()

    # -- what a session's own user does inside it --------------------------------------------

    def in_session(self, session_id: str, argv: Sequence[str]) -> str:
        """Run ``argv`` as the session's user from inside the session (its scope's cgroup),
        as a program the user started in it would. Returns its stdout; raises ContainerError
        when it fails."""
        user = self.c.run(["loginctl", "show-session", session_id, "-p", "Name", "--value"]
                          ).stdout.strip()
        return self.c.run(["sh", "-c", _IN_SESSION, "sh", session_id, user, *argv]).stdout

    def _own_hint(self, session_id: str, method: str, value: bool) -> float:
        self.in_session(session_id, [
            "busctl", "call", "org.freedesktop.login1", "/org/freedesktop/login1/session/auto",
            "org.freedesktop.login1.Session", method, "b", "true" if value else "false"])
        return time.monotonic()

    def set_idle_hint(self, session_id: str, idle: bool) -> float:
        """The session's user sets its IdleHint from inside it (SetIdleHint on session/auto).
        Returns time.monotonic() when busctl returned; raises ContainerError when refused."""
        return self._own_hint(session_id, "SetIdleHint", idle)

    def set_locked_hint(self, session_id: str, locked: bool) -> float:
        """The session's user sets its LockedHint from inside it (SetLockedHint, as a screen
        locker does). Returns time.monotonic() when busctl returned; raises ContainerError."""
        return self._own_hint(session_id, "SetLockedHint", locked)

    def fill_sessions(self, user: str, target: int, timeout: float = 120.0) -> int:
        """PAM sessions for ``user``, as pam_session() opens them but without waiting for each,
        until logind has ``target`` sessions in all (on systemd 256 and newer, the user's service
        manager's session counts too).

        Returns how many it has then; raises AssertionError when they are not all open within
        ``timeout``.
        """
        for _ in range(target - self.truth.session_count()):
            self.c.run(["systemd-run", "--quiet", "--no-block", f"--unit={unique('e2e-pam-')}",
                        "-p", "PAMName=login", "-p", f"User={user}", "sleep", "86400"])

        def enough() -> int | None:
            have = self.truth.session_count()
            return have if have >= target else None

        return wait_until(enough, timeout=timeout, interval=0.3, what=f"{target} sessions")

    def su_session(self, user: str) -> str:
        """A ``su -l user`` session started by root (service su-l, REMOTE_USER=root)."""
        if self.c.init == "sysvinit":
            name = unique("e2e-su-")
            pid = self.c.spawn(["su", "-l", user, "-c", "exec sleep 3600"], name=name)
            self.leaders[pid] = name
            return self._session_led_by(pid, f"su -l {user}")
        unit = unique("e2e-su-")
        self.c.run(["systemd-run", "--quiet", f"--unit={unit}", "su", "-l", user, "-c",
                    "exec sleep 3600"])

        def probe() -> str | None:
            out = self.c.sh(
                f"for p in $(systemctl show -p MainPID --value {unit}) "
                f"$(pgrep -P $(systemctl show -p MainPID --value {unit}) 2>/dev/null); do "
                f"sed -n 's/.*session-\\(.*\\)\\.scope$/\\1/p' /proc/$p/cgroup; done; true"
            ).split()
            return out[0] if out else None

        return wait_until(probe, timeout=10, what=f"su session of {user}")

    def remote_session(self, user: str, rhost: str = "203.0.113.9") -> str:
        """A session with PAM_RHOST set to a non-local host, held open by pam_session.py."""
        if self.c.init == "sysvinit":
            return self._sysv_pam_session(user, rhost, "login", {})
        unit = unique("e2e-remote-")
        self.c.run(["systemd-run", "--quiet", f"--unit={unit}", self.c.python,
                    f"{PROJECT}/tests/e2e/pam_session.py", user, rhost])
        return self._session_by_leader_unit(unit)

    def closing_session(self, user: str) -> str:
        """A session whose PAM side ended while a process stays behind: state 'closing'.

        (KillUserProcesses=no, the default, leaves the scope running.)
        """
        unit = unique("e2e-closing-")
        self.c.run(["systemd-run", "--quiet", f"--unit={unit}", "-p", "PAMName=login",
                    "-p", f"User={user}", "sh", "-c", "sleep 3600 & exec sleep 0.5"])

        def probe() -> str | None:
            for s in self.truth.sessions():
                if s.user == user and s.state == "closing":
                    return s.id
            return None

        return wait_until(probe, timeout=10, what=f"a closing session of {user}")

    def terminate(self, session_id: str) -> None:
        """End a session: ``loginctl terminate-session`` (stops its scope)."""
        self.c.run(["loginctl", "terminate-session", session_id])

    def stop_scope(self, session_id: str) -> None:
        """End a session for good, also one already closing (terminate-session leaves those).

        Under sysvinit elogind kills nothing (terminate-session and kill-session leave the
        processes running, the session "closing"): the user logs out, as on such a host. Every
        process of the session's cgroup but its leader (su, login) gets SIGTERM, and the leader
        then closes the session and exits; a session of the leader alone (pam_session.py) gets
        it itself.
        """
        if self.c.init == "sysvinit":
            self.c.sh(_SYSV_LOGOUT.replace("SESSION", session_id))
            return
        self.c.systemctl("stop", f"session-{session_id}.scope")

    def wait_session_gone(self, session_id: str, timeout: float = 10.0) -> float:
        """Wait inside the container until the session's state file is gone.

        Returns the wall-clock time (container and host share the clock) it was seen gone.
        """
        out = self.c.sh(
            f"i=0; while [ -e /run/systemd/sessions/{session_id} ]; do sleep 0.005; "
            f"i=$((i+1)); [ $i -gt {int(timeout / 0.005)} ] && exit 1; done; date +%s.%N",
            timeout=timeout + 5,
        )
        return float(out.strip())

    def enable_linger(self, user: str) -> None:
        self.c.run(["loginctl", "enable-linger", user])

    def disable_linger(self, user: str) -> None:
        self.c.run(["loginctl", "disable-linger", user])

    def register_machine(self, name: str, machine_class: str) -> str:
        """Start a leader process in a unit and register it with machined; returns the unit."""
        unit = f"{name}-leader"
        self.c.run(["systemd-run", "--quiet", f"--unit={unit}", "sleep", "3600"])
        pid = wait_until(
            lambda: (self.c.run(["systemctl", "show", "-p", "MainPID", "--value", unit])
                     .stdout.strip() or None),
            timeout=5, what=f"main pid of {unit}",
        )
        self.c.run(["busctl", "call", "org.freedesktop.machine1", "/org/freedesktop/machine1",
                    "org.freedesktop.machine1.Manager", "RegisterMachine", "sayssus", name,
                    "0", "e2e", machine_class, pid, "/"])
        return unit

    def terminate_machine(self, name: str) -> None:
        self.c.run(["machinectl", "terminate", name])


# -- programs running inside the container ---------------------------------------------------


class Service:
    """A long-running program inside the container, run by its PID 1 as a transient unit."""

    def __init__(self, c: Container, unit: str, argv: list[str], *, cwd: str = PROJECT,
                 env: Mapping[str, str] | None = None, properties: Sequence[str] = ()) -> None:
        self.c, self.unit, self.argv, self.cwd = c, unit, argv, cwd
        self.env = dict(env or {})
        self.properties = tuple(properties)  # unit properties (systemd-run -p), e.g. User=

    def start(self) -> None:
        if self.c.init == "sysvinit":
            self._spawn()
            return
        env = [a for k, v in self.env.items() for a in ("-E", f"{k}={v}")]
        props = [a for p in self.properties for a in ("-p", p)]
        self.c.run(["systemd-run", "--quiet", f"--unit={self.unit}", "-p",
                    f"WorkingDirectory={self.cwd}", "-E", "PYTHONUNBUFFERED=1",
                    "-E", "PYTHONDONTWRITEBYTECODE=1", *props, *env, *self.argv])

    def _spawn(self) -> None:
        """Under sysvinit: the program in the background (Container.spawn), as User= says."""
        argv = list(self.argv)
        for prop in self.properties:
            key, _, value = prop.partition("=")
            if key == "User":
                argv = ["runuser", "-u", value, "--", *argv]
            elif key != "Group":
                raise ContainerError(f"unit property {prop} has no sysvinit equivalent here")
        env = {"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1", **self.env}
        self.c.spawn(argv, name=self.unit, cwd=self.cwd, env=env)

    def main_pid(self) -> int:
        """The unit's main process id inside the container (0 when it is not running)."""
        if self.c.init == "sysvinit":
            return int(self.c.sh(f"p=$(cat /run/e2e/{self.unit}.pid 2>/dev/null); "
                                 f"[ -n \"$p\" ] && kill -0 $p 2>/dev/null && echo $p || echo 0"
                                 ).strip())
        return int(self.c.run(["systemctl", "show", "-p", "MainPID", "--value", self.unit])
                   .stdout.strip() or 0)

    def is_active(self) -> bool:
        if self.c.init == "sysvinit":
            return self.main_pid() != 0
        r = self.c.run(["systemctl", "is-active", self.unit], check=False)
        return r.stdout.strip() == "active"

    def journal(self, lines: int = 60) -> str:
        if self.c.init == "sysvinit":
            return self.c.run(["tail", "-n", str(lines), f"/run/e2e/{self.unit}.log"],
                              check=False).stdout
        return self.c.run(["journalctl", "--no-pager", "-o", "cat", "-n", str(lines), "-u",
                           self.unit], check=False).stdout

    def wait_answering(self, port: int, path: str = "/-/ready", timeout: float = 20.0) -> str:
        """Wait until http://127.0.0.1:port/path answers 200. Returns that answer's body.

        Raises AssertionError, with the unit's journal, when the unit stops or ``timeout``
        passes first.
        """
        def answer() -> str | None:
            if not self.is_active():
                raise AssertionError(f"{self.unit} exited")
            r = requests.get(f"http://127.0.0.1:{port}{path}", timeout=2)
            return r.text if r.status_code == 200 else None

        try:
            return wait_until(answer, timeout=timeout, interval=0.1,
                              what=f"{self.unit} on 127.0.0.1:{port}{path}")
        except AssertionError as e:
            raise AssertionError(f"{e}\n--- journal of {self.unit} ---\n{self.journal()}") from None

    def stop(self) -> None:
        if self.c.init == "sysvinit":
            pid = self.main_pid()
            if pid:
                self.c.sh(f"kill {pid}; i=0; while kill -0 {pid} 2>/dev/null && [ $i -lt 500 ]; "
                          f"do sleep 0.01; i=$((i+1)); done; kill -9 {pid} 2>/dev/null; true")
            return
        self.c.run(["systemctl", "stop", self.unit], check=False)
        self.c.run(["systemctl", "reset-failed", self.unit], check=False)


def exporter_service(c: Container, port: int, *extra: str, host: bool = False,
                     user: str | None = None) -> Service:
    """The exporter from the working tree (bound read-only at /project), in the container; with
    ``host``, run by this machine's Python with this machine's libsystemd (a root filesystem's
    container has both bound in); with ``user``, as that user (see :func:`exporter_user`)."""
    python, env = c.python, {}
    if host and c.lower is not None:
        python, env = c.host_python, {"LD_LIBRARY_PATH": c.host_libsystemd}
    properties = [f"User={user}", f"Group={user}"] if user else []
    return Service(c, unique("e2e-login-exporter-"), [
        python, "-m", "login_exporter", f"--web.listen-address=127.0.0.1:{port}",
        "--refresh.debounce=10ms", *extra,
    ], env=env, properties=properties)


def exporter_user(c: Container) -> str:
    """Create the shipped unit's system user inside (systemd-sysusers with the packaged
    deploy/systemd/login-exporter.sysusers; a no-op when it exists) and let it run the
    container's exporter interpreter. Returns the user's name.

    On an overlay of / that interpreter may live under /root (mode 0700 on the host): the
    overlay's /root, not the host's, gets o+x so that the user can reach it.
    """
    c.run(["systemd-sysusers", f"{PROJECT}/deploy/systemd/login-exporter.sysusers"])
    c.run(["id", EXPORTER_USER])
    if c.python.startswith("/root/"):
        c.run(["chmod", "o+x", "/root"])
    c.run(["runuser", "-u", EXPORTER_USER, "--", c.python, "-c",
           "import jeepney, prometheus_client"])
    return EXPORTER_USER

