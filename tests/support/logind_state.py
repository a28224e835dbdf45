"""Write /run/systemd state files exactly as systemd-logind and systemd-machined do.

Format: first line ``# This is private data. Do not parse.``, then KEY=VALUE lines in the order
systemd 252 writes them (see tests/fixtures/real-252). Files are written to a temporary name and
rename()d into place, which is what wakes an sd-login monitor (inotify IN_MOVED_TO); ``plain=True``
writes in place instead, which wakes nothing (used to prove the resync safety net). With
``link_new_files`` a file that does not exist yet is written as systemd 262 does: an unnamed
O_TMPFILE linked into place (inotify IN_CREATE only, no IN_MOVED_TO).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from login_exporter.sdlogin import MONITOR_DIRECTORIES

HEADER = "# This is private data. Do not parse.\n"
# The state directories under /run/systemd: sessions, seats, users, machines.
CATEGORIES = tuple(Path(directory).name for directory in MONITOR_DIRECTORIES.values())


def _flag(value: bool) -> str:
    return "1" if value else "0"


@dataclass
class LogindState:
    """A writer of logind/machined state under ``root`` (normally a private /run/systemd)."""

    root: Path = Path("/run/systemd")
    link_new_files: bool = False
    _counter: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        for category in CATEGORIES:
            (self.root / category).mkdir(parents=True, exist_ok=True)

    # -- low level ---------------------------------------------------------------------------

    def write_raw(
        self, category: str, name: str, text: str | bytes, *, plain: bool = False
    ) -> Path:
        """Write ``text`` as ``category/name``; atomically via rename unless ``plain``.

        Returns the final path.
        """
        data = text.encode() if isinstance(text, str) else text
        target = self.root / category / name
        if plain:
            with open(target, "wb") as f:
                f.write(data)
            return target
        if self.link_new_files and not os.path.lexists(target):
            directory = os.open(target.parent, os.O_DIRECTORY | os.O_PATH)
            fd = os.open(target.parent, os.O_TMPFILE | os.O_WRONLY, 0o644)
            try:
                os.write(fd, data)
                # A dir_fd makes CPython call linkat(AT_SYMLINK_FOLLOW), which links the file
                # behind /proc/self/fd/N rather than the magic link itself.
                os.link(f"/proc/self/fd/{fd}", target.name, dst_dir_fd=directory)
            finally:
                os.close(fd)
                os.close(directory)
            return target
        self._counter += 1
        tmp = self.root / category / f".#{name}.{os.getpid()}.{self._counter}"
        with open(tmp, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.rename(tmp, target)
        return target

    def write_fields(
        self,
        category: str,
        name: str,
        fields: Iterable[tuple[str, str | int | None]],
        *,
        plain: bool = False,
    ) -> Path:
        """Write KEY=VALUE lines after the header, skipping None values. Returns the path."""
        lines = [HEADER]
        lines += [f"{key}={value}\n" for key, value in fields if value is not None]
        return self.write_raw(category, name, "".join(lines), plain=plain)

    def remove(self, category: str, name: str) -> None:
        """Unlink ``category/name`` (as logind does when an object goes away)."""
        (self.root / category / name).unlink()

    def clear(self) -> None:
        """Remove every state file, keeping the four directories."""
        for category in CATEGORIES:
            for entry in (self.root / category).iterdir():
                entry.unlink()

    def remove_directories(self) -> None:
        """Remove the category directories entirely (logind never ran / /run/systemd wiped)."""
        for category in CATEGORIES:
            shutil.rmtree(self.root / category, ignore_errors=True)

    def copy_tree(self, source: Path) -> None:
        """Copy a captured tree (e.g. tests/fixtures/real-252) into place, symlinks kept."""
        for category in CATEGORIES:
            src = source / category
            if src.is_dir():
                shutil.copytree(src, self.root / category, symlinks=True, dirs_exist_ok=True)

    def invocation(self, unit: str, invocation_id: str | None) -> None:
        """Create or replace ``units/invocation:UNIT`` as systemd does while a unit runs (a
        symlink to the invocation id, renamed into place), or remove it (``None``: stopped)."""
        units = self.root / "units"
        units.mkdir(exist_ok=True)
        link = units / f"invocation:{unit}"
        if invocation_id is None:
            link.unlink(missing_ok=True)
            return
        self._counter += 1
        tmp = units / f".#invocation:{unit}{self._counter}"
        tmp.symlink_to(invocation_id)
        os.rename(tmp, link)

    # -- objects -----------------------------------------------------------------------------

    def session(
        self,
        session_id: str,
        *,
        uid: int,
        user: str | None = None,
        seat: str | None = None,
        type: str = "tty",
        original_type: str | None = None,
        klass: str = "user",
        state: str = "active",
        active: bool = True,
        is_display: bool = False,
        remote: bool = False,
        remote_host: str | None = None,
        remote_user: str | None = None,
        service: str | None = "login",
        tty: str | None = None,
        display: str | None = None,
        desktop: str | None = None,
        vtnr: int | None = None,
        position: int | None = 0,
        leader: int = 1,
        audit: int | None = None,
        realtime: int = 1_795_345_858_635_963,
        monotonic: int = 2_572_222_987,
        plain: bool = False,
    ) -> Path:
        """Write sessions/ID as logind's session_save() does. Returns the path."""
        return self.write_fields(
            "sessions",
            session_id,
            [
                ("UID", uid),
                ("USER", user if user is not None else f"user{uid}"),
                ("ACTIVE", _flag(active)),
                ("IS_DISPLAY", _flag(is_display)),
                ("STATE", state),
                ("REMOTE", _flag(remote)),
                ("TYPE", type),
                ("ORIGINAL_TYPE", original_type or type),
                ("CLASS", klass),
                ("SCOPE", f"session-{session_id}.scope"),
                ("FIFO", f"/run/systemd/sessions/{session_id}.ref"),
                ("SEAT", seat),
                ("TTY", tty),
                ("DISPLAY", display),
                ("REMOTE_HOST", remote_host),
                ("REMOTE_USER", remote_user),
                ("SERVICE", service),
                ("DESKTOP", desktop),
                ("VTNR", vtnr),
                ("POSITION", position if vtnr is None else None),
                ("LEADER", leader),
                ("AUDIT", audit),
                ("REALTIME", realtime),
                ("MONOTONIC", monotonic),
            ],
            plain=plain,
        )

    def seat(
        self,
        name: str,
        *,
        sessions: Sequence[tuple[str, int]] = (),
        active: str | None = None,
        active_uid: int | None = None,
        can_multi_session: bool = True,
        can_tty: bool = True,
        can_graphical: bool = True,
        uids: Sequence[int] | None = None,
        plain: bool = False,
    ) -> Path:
        """Write seats/NAME. ``sessions`` pairs session id and uid; ``uids`` overrides the UIDS
        list (a length mismatch makes sd_seat_get_sessions fail with EUCLEAN). Returns the path."""
        uid_list = [uid for _, uid in sessions] if uids is None else list(uids)
        if active is not None and active_uid is None:
            active_uid = dict(sessions).get(active)
        return self.write_fields(
            "seats",
            name,
            [
                ("IS_SEAT0", _flag(name == "seat0")),
                ("CAN_MULTI_SESSION", _flag(can_multi_session)),
                ("CAN_TTY", _flag(can_tty)),
                ("CAN_GRAPHICAL", _flag(can_graphical)),
                ("ACTIVE", active),
                ("ACTIVE_UID", active_uid),
                ("SESSIONS", " ".join(sid for sid, _ in sessions)),
                ("UIDS", " ".join(str(u) for u in uid_list)),
            ],
            plain=plain,
        )

    def user(
        self,
        uid: int,
        *,
        name: str | None = None,
        state: str = "active",
        sessions: Sequence[str] = (),
        seats: Sequence[str] = (),
        active_sessions: Sequence[str] | None = None,
        display: str | None = None,
        stopping: bool = False,
        realtime: int = 1_795_345_858_634_955,
        monotonic: int = 2_572_221_979,
        plain: bool = False,
    ) -> Path:
        """Write users/UID as logind's user_save() does. Returns the path."""
        active_list = list(sessions) if active_sessions is None else list(active_sessions)
        return self.write_fields(
            "users",
            str(uid),
            [
                ("NAME", name if name is not None else f"user{uid}"),
                ("STATE", state),
                ("STOPPING", "yes" if stopping else "no"),
                ("RUNTIME", f"/run/user/{uid}"),
                ("DISPLAY", display),
                ("REALTIME", realtime),
                ("MONOTONIC", monotonic),
                ("SESSIONS", " ".join(sessions)),
                ("SEATS", " ".join(seats)),
                ("ACTIVE_SESSIONS", " ".join(active_list)),
                ("ONLINE_SESSIONS", " ".join(sessions)),
                ("ACTIVE_SEATS", " ".join(seats) if active_list else ""),
                ("ONLINE_SEATS", " ".join(seats)),
            ],
            plain=plain,
        )

    def machine(
        self,
        name: str,
        *,
        klass: str = "container",
        service: str = "test",
        scope: str | None = None,
        leader: int = 1,
        ifindices: Sequence[int] = (),
        realtime: int = 1_795_345_859_980_846,
        monotonic: int = 2_573_567_869,
        plain: bool = False,
    ) -> Path:
        """Write machines/NAME and its ``unit:<scope>`` symlink (as machined does)."""
        scope = scope or f"{name}-leader.service"
        path = self.write_fields(
            "machines",
            name,
            [
                ("NAME", name),
                ("SCOPE", scope),
                ("SERVICE", service),
                ("ROOT", "/"),
                ("LEADER", leader),
                ("CLASS", klass),
                ("REALTIME", realtime),
                ("MONOTONIC", monotonic),
                ("NETIF", " ".join(str(i) for i in ifindices) if ifindices else None),
            ],
            plain=plain,
        )
        link = self.root / "machines" / f"unit:{scope}"
        if not link.is_symlink():
            link.symlink_to(name)
        return path

    def remove_machine(self, name: str, scope: str | None = None) -> None:
        """Unlink machines/NAME and its ``unit:`` symlink."""
        self.remove("machines", name)
        link = self.root / "machines" / f"unit:{scope or f'{name}-leader.service'}"
        if link.is_symlink():
            link.unlink()

    def seat0(self, **kwargs: object) -> Path:
        """Write an empty seat0: what a running logind always has. Returns the path."""
        return self.seat("seat0", **kwargs)  # type: ignore[arg-type]
