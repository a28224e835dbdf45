"""Capture tests/fixtures/real-262-multiseat from a booted Debian unstable (systemd 262).

    flock /tmp/login-exporter-e2e.lock python3 -m tests.capture_multiseat [--release sid]

Boots the release's cached root filesystem in systemd-nspawn (tests/e2e/container.py), gives
its logind seat1, seat2 and seat3 (tests/e2e/scenario.py: Scene.add_seats), opens real PAM
sessions on them (tests/fixtures/README.md lists them), then writes
/run/systemd/{seats,sessions,users} as that logind wrote them to tests/fixtures/real-262-multiseat/
(the ``*.ref`` FIFOs left out) and what loginctl said of the same state, at the same moment, to
tests/fixtures/real-262-multiseat-loginctl.json. Needs root, like the e2e suite.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from tests.e2e.container import Container, rootfs
from tests.e2e.scenario import Scene
from tests.support.golden import REAL_262_MULTISEAT, REAL_262_MULTISEAT_LOGINCTL

CATEGORIES = ("seats", "sessions", "users")
SESSION_PROPERTIES = ("Active", "Class", "Name", "Remote", "RemoteHost", "Seat", "Service",
                      "State", "Type")
SEAT_PROPERTIES = ("Id", "ActiveSession", "CanGraphical", "CanTTY", "Sessions")

# Run inside by the release's own python3: every regular state file, by path, as text.
_DUMP = r"""
import json, os, stat, sys
out = {}
for category in sys.argv[1:]:
    top = os.path.join("/run/systemd", category)
    for name in sorted(os.listdir(top)):
        path = os.path.join(top, name)
        if stat.S_ISREG(os.lstat(path).st_mode):
            with open(path) as f:
                out[category + "/" + name] = f.read()
print(json.dumps(out))
"""


def _properties(c: Container, kind: str, name: str, props: tuple[str, ...]) -> dict[str, str]:
    out = c.run(["loginctl", f"show-{kind}", name, *(a for p in props for a in ("-p", p))]).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def stage(scene: Scene) -> None:
    """Open the captured sessions: on seat1 a greeter (x11) and k1's x11 login in front; on
    seat2 k2's wayland login in front of k3's (k3 logged in last, then k2 switched back); seat3
    with none; b1's background session with no seat."""
    scene.add_seats("seat1", "seat2", "seat3")
    k1, k2, k3, g1, b1 = (scene.add_user(p) for p in ("k", "k", "k", "g", "b"))
    scene.graphical_session(g1, "seat1", "x11", "greeter")
    scene.graphical_session(k1, "seat1", "x11", "user")
    front = scene.graphical_session(k2, "seat2", "wayland", "user")
    scene.graphical_session(k3, "seat2", "wayland", "user")
    scene.activate(front)
    scene.pam_session(b1, session_class="background")


def capture(c: Container) -> tuple[dict[str, str], dict[str, Any]]:
    """The state files (path under /run/systemd -> text) and loginctl's answers, taken back to
    back once two takes a second apart are the same (each user's service manager opens its own
    session a moment after the login). Raises RuntimeError when they never settle."""
    last: tuple[dict[str, str], dict[str, Any]] | None = None
    for _ in range(20):
        took = _take(c)
        listed = {f"sessions/{s['session']}" for s in took[1]["sessions"]}
        if last == took and listed == {p for p in took[0] if p.startswith("sessions/")}:
            return took
        last = took
        time.sleep(1)
    raise RuntimeError("logind's state did not settle")


def _take(c: Container) -> tuple[dict[str, str], dict[str, Any]]:
    files: dict[str, str] = json.loads(c.run([c.python, "-c", _DUMP, *CATEGORIES]).stdout)
    sessions = json.loads(c.run(["loginctl", "--json=short", "list-sessions"]).stdout)
    users = json.loads(c.run(["loginctl", "--json=short", "list-users"]).stdout)
    seats = json.loads(c.run(["loginctl", "--json=short", "list-seats"]).stdout)
    said: dict[str, Any] = {
        "systemd": c.systemd_version(),
        "sessions": sessions,
        "session_properties": {s["session"]: _properties(c, "session", s["session"],
                                                         SESSION_PROPERTIES) for s in sessions},
        "users": users,
        "user_states": {u["user"]: _properties(c, "user", u["user"], ("State",))["State"]
                        for u in users},
        "seats": seats,
        "seat_properties": {s["seat"]: _properties(c, "seat", s["seat"], SEAT_PROPERTIES)
                            for s in seats},
    }
    return files, said


def write(files: dict[str, str], said: dict[str, Any], tree: Path, answers: Path) -> None:
    """Replace ``tree`` with the captured files and ``answers`` with loginctl's answers."""
    shutil.rmtree(tree, ignore_errors=True)
    for category in CATEGORIES:
        (tree / category).mkdir(parents=True)
    for path, text in files.items():
        (tree / path).write_text(text)
    answers.write_text(json.dumps(said, indent=1, sort_keys=True) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Boot, stage, capture, write; returns the exit status (raises ContainerError on a
    failure inside)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--release", default="sid")
    args = parser.parse_args(argv)
    c = Container(lower=rootfs(args.release))
    c.boot()
    try:
        stage(Scene(c))
        files, said = capture(c)
    finally:
        c.close()
    write(files, said, REAL_262_MULTISEAT, REAL_262_MULTISEAT_LOGINCTL)
    print(f"systemd {said['systemd']}: {len(files)} files, {len(said['sessions'])} sessions, "
          f"seats {[s['seat'] for s in said['seats']]}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
