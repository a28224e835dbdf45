"""Record what a booted logind answers on its bus, for the golden bus views
(tests/unit/test_golden.py, tests/fixtures/README.md). As root, holding the e2e lock:

    flock /tmp/login-exporter-e2e.lock \
      python3 -m tests.e2e.record_bus_view tests/fixtures/bus-252.json

Boots this machine's systemd, opens sessions of four kinds (an x11 user session on seat0, idle
and locked by its owner; a wayland greeter on seat0, idle; a remote tty session; a ``su -l``
session), takes a delay and a block inhibitor lock and schedules a reboot, then records the
Manager's, each seat's and each session's properties that the exporter reads (GetAll, trimmed to
``PROPERTY_TYPES``), ListInhibitors, and the wall-clock time of the recording (which the
exporter would take as the locks' first sighting). The reboot is cancelled and the container
torn down afterwards.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from login_exporter.bus.logind import MANAGER, MANAGER_PATH, PROPERTY_TYPES, SEAT, SESSION
from tests.e2e.bus_truth import LOGIN1, as_user, session_path
from tests.e2e.container import Container
from tests.e2e.scenario import Scene, unique, wait_until


def busctl(c: Container, path: str, interface: str, method: str, *args: str) -> Any:
    """Return the body of a call to logind, as busctl --json=short gives it."""
    out = c.run(["busctl", "--json=short", "call", LOGIN1, path, interface, method,
                 *args]).stdout
    return json.loads(out)["data"]


def properties(c: Container, path: str, interface: str) -> dict[str, list[Any]]:
    """{name: [signature, value]} of the properties the exporter reads on ``interface``."""
    answered = busctl(c, path, "org.freedesktop.DBus.Properties", "GetAll", "s", interface)[0]
    wanted = PROPERTY_TYPES[interface]
    return {name: [value["type"], value["data"]] for name, value in sorted(answered.items())
            if name in wanted}  # fmt: skip


def stage(c: Container) -> None:
    """The sessions, hints, locks and schedule recorded."""
    scene = Scene(c)
    kiosk, greeter, remote = (scene.add_user(p) for p in ("k", "g", "r"))
    x11 = scene.pam_session(kiosk, session_type="x11", session_class="user", seat="seat0")
    wayland = scene.pam_session(greeter, session_type="wayland", session_class="greeter",
                                seat="seat0")  # fmt: skip
    scene.remote_session(remote, rhost="203.0.113.5")
    scene.su_session(remote)
    as_user(c, kiosk, session_path(c, x11), "SetIdleHint", True)
    as_user(c, kiosk, session_path(c, x11), "SetLockedHint", True)
    as_user(c, greeter, session_path(c, wayland), "SetIdleHint", True)
    for what, mode in (("sleep:shutdown", "delay"), ("handle-lid-switch", "block")):
        c.run(["systemd-run", "--quiet", f"--unit={unique('e2e-inhibit-')}", "systemd-inhibit",
               f"--what={what}", f"--mode={mode}", "--who=e2e recorder",
               f"--why=a {mode} lock for the golden bus view", "sleep", "600"])
    wait_until(lambda: len(busctl(c, MANAGER_PATH, MANAGER, "ListInhibitors")[0]) >= 2 or None,
               timeout=10, what="the inhibitor locks")  # fmt: skip
    c.run(["shutdown", "-r", "+60"])


def record(c: Container) -> dict[str, Any]:
    """The recording, as tests/unit/test_golden.py reads it."""
    seats = {path: properties(c, path, SEAT)
             for _, path in busctl(c, MANAGER_PATH, MANAGER, "ListSeats")[0]}  # fmt: skip
    sessions = {row[4]: properties(c, row[4], SESSION)
                for row in busctl(c, MANAGER_PATH, MANAGER, "ListSessions")[0]}  # fmt: skip
    return {
        "systemd": c.systemd_version(),
        "manager": properties(c, MANAGER_PATH, MANAGER),
        "seats": seats,
        "sessions": sessions,
        "inhibitors": busctl(c, MANAGER_PATH, MANAGER, "ListInhibitors")[0],
        "wall_clock": round(time.time(), 3),
    }


def dump(value: Any, indent: int = 0) -> str:
    """Return ``value`` as JSON for review: one line per property and per inhibitor lock."""
    if isinstance(value, dict):
        pad = " " * (indent + 2)
        items = ",\n".join(f"{pad}{json.dumps(key)}: {dump(item, indent + 2)}"
                           for key, item in sorted(value.items()))  # fmt: skip
        return "{\n" + items + "\n" + " " * indent + "}" + ("\n" if indent == 0 else "")
    if isinstance(value, list) and value and all(isinstance(row, list) for row in value) and (
            not any(isinstance(cell, list) for row in value for cell in row)):
        pad = " " * (indent + 2)
        rows = ",\n".join(pad + json.dumps(row) for row in value)
        return "[\n" + rows + "\n" + " " * indent + "]"
    return json.dumps(value)


def main(argv: list[str] | None = None) -> int:
    """Boot, stage, record into the file named on the command line; always tear down."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path)
    args = parser.parse_args(argv)
    c = Container()
    c.boot()
    try:
        stage(c)
        recorded = record(c)
        c.run(["shutdown", "-c"], check=False)
    finally:
        c.close()
    args.output.write_text(dump(recorded))
    print(f"recorded systemd {recorded['systemd']}: {len(recorded['sessions'])} sessions, "
          f"{len(recorded['inhibitors'])} inhibitor locks -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
