"""libsystemd's sd-daemon calls: readiness and watchdog notifications, socket activation.

The service-manager side of the exporter; the login state is read by login_exporter.sdlogin.
"""

from __future__ import annotations

from login_exporter.sdlogin.plumbing import encode, fail, ffi, function

__all__ = ["listen_fds", "notify", "watchdog_usec"]


def notify(state: str) -> bool:
    """Send a notification ("READY=1", "WATCHDOG=1", ...) to the service manager.

    Returns False when not run by a notify-aware manager (no NOTIFY_SOCKET). Raises OSError.
    """
    result = int(function("sd_notify")(0, encode(state, "state")))
    if result < 0:
        fail(result, "sd_notify", state)
    return result > 0


def watchdog_usec() -> int | None:
    """Return the watchdog interval in microseconds the manager expects, or None when off.

    Raises OSError.
    """
    out = ffi.new("uint64_t *")
    result = function("sd_watchdog_enabled")(0, out)
    if result < 0:
        fail(result, "sd_watchdog_enabled", "")
    return int(out[0]) if result > 0 else None


def listen_fds() -> int:
    """Return how many sockets systemd passed (fds from 3 on). Raises OSError."""
    result = int(function("sd_listen_fds")(0))
    if result < 0:
        fail(result, "sd_listen_fds", "")
    return result
