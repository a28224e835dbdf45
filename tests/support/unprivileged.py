"""Run a command as an unprivileged user (uid/gid 65534, no groups), for tests."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path


def _inaccessible_ancestor(path: Path) -> Path | None:
    """The first ancestor of path that others cannot search (e.g. /root, mode 0700)."""
    for parent in reversed(path.parents):
        if parent != Path("/") and not os.stat(parent).st_mode & 0o001:
            return parent
    return None


def as_nobody(*command: str) -> list[str]:
    """Return an argv that runs ``command`` as uid/gid 65534 with no groups (run it as root).

    When the interpreter lives under a directory others cannot enter (pyenv under /root), a
    child mount namespace shows just that installation through a tmpfs: nothing is chmodded.
    """
    unprivileged = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    prefix = Path(sys.base_prefix).resolve()
    blocked = _inaccessible_ancestor(prefix)
    if blocked is None:
        return unprivileged
    inside = prefix.relative_to(blocked).parts[0]
    stage = tempfile.mkdtemp(prefix="le-stage-")
    script = (
        f'mount --bind "{blocked}/{inside}" "{stage}" && '
        f'mount -t tmpfs -o mode=0755 tmpfs "{blocked}" && mkdir "{blocked}/{inside}" && '
        f'mount --move "{stage}" "{blocked}/{inside}" && exec "$@"'
    )
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
            *unprivileged]  # fmt: skip
