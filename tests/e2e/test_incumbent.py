"""Side by side with Debian's prometheus-node-exporter (--collector.logind, D-Bus) in the same
container: the same sessions, counted the same way, except where node_exporter's frozen value
lists fold a type or class into "other".

node_exporter 1.5's collector/logind_linux.go knows these values only (facts read from its
source, no code copied): types other, unspecified, tty, x11, wayland, mir, web; classes other,
user, greeter, lock-screen, background. Anything else (user-early, user-light, manager, ...)
becomes "other" there while this exporter passes it through.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest

from tests.e2e.checks import assert_agrees
from tests.e2e.scenario import (
    EXPORTER_PORT,
    NODE_EXPORTER_PORT,
    Exposition,
    Scene,
    Service,
    scrape,
)

pytestmark = pytest.mark.e2e

NODE_TYPES = frozenset({"other", "unspecified", "tty", "x11", "wayland", "mir", "web"})
NODE_CLASSES = frozenset({"other", "user", "greeter", "lock-screen", "background"})


def folded(ours: Exposition) -> Counter[tuple[str, ...]]:
    """Our logind_sessions summed over state, folded the way node_exporter folds."""
    out: Counter[tuple[str, ...]] = Counter()
    for (seat, remote, typ, cls, _state), n in ours.nonzero(
        "logind_sessions", ("seat", "remote", "type", "class", "state")
    ).items():
        out[(seat, remote, typ if typ in NODE_TYPES else "other",
             cls if cls in NODE_CLASSES else "other")] += n
    return out


def test_sessions_match_node_exporter_per_seat_remote_type_class(
    scene: Scene, exporter: Service, node_exporter: Service
) -> None:
    user, greeter = scene.add_user("n"), scene.add_user("ng")
    made = [
        scene.pam_session(user, session_type="x11", session_class="user", seat="seat0"),
        scene.pam_session(greeter, session_type="wayland", session_class="greeter",
                          seat="seat0"),
        scene.pam_session(user, session_type="tty", session_class="user"),
        scene.su_session(user),
        scene.remote_session(user),
        scene.closing_session(scene.add_user("nc")),
    ]
    ours = assert_agrees(scene, EXPORTER_PORT)

    deadline = time.monotonic() + 5
    while True:
        ours = scrape(EXPORTER_PORT)
        theirs = scrape(NODE_EXPORTER_PORT).nonzero(
            "node_logind_sessions", ("seat", "remote", "type", "class"))
        if folded(ours) == theirs or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert folded(ours) == theirs
    assert sum(theirs.values()) == len(scene.truth.sessions())
    # On systemd 252 every type and class is one node_exporter knows, so nothing is folded:
    # the unfolded sums are the same too.
    unfolded = Counter({k[:4]: 0 for k in ours.nonzero("logind_sessions", ("seat", "remote",
                                                                            "type", "class"))})
    for k, n in ours.nonzero("logind_sessions", ("seat", "remote", "type", "class",
                                                 "state")).items():
        unfolded[k[:4]] += n
    assert +unfolded == theirs
    for sid in made:
        scene.stop_scope(sid)
