"""Every metric family the exporter defines, in one table: name as exposed (counters with
``_total``), type, HELP and label names. The collector (collector.py), the bus families
(presence.py) and the session-info block take them from here (families.py looks them up);
tests check README's metric tables and every exposition against it.

prometheus_client's own process_* and python_* families are not listed: they are its.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SESSION_KEY = ("seat", "remote", "type", "class")
SESSION_INFO_LABELS = (
    "session", "uid", "user", "seat", "type", "class", "state", "remote", "remote_host",
    "service", "tty", "desktop",
)  # fmt: skip


@dataclass(frozen=True)
class Spec:
    """One family: its type, HELP (``{start_source}`` in the session-duration HELP is filled in
    by the collector) and label names, in order."""

    type: Literal["gauge", "counter", "histogram"]
    help: str
    labels: tuple[str, ...] = ()


def _gauge(help: str, *labels: str) -> Spec:
    return Spec("gauge", help, labels)


def _counter(help: str, *labels: str) -> Spec:
    return Spec("counter", help, labels)


_SEAT = ("seat",)

SPECS: dict[str, Spec] = {
    # What sd-login says (collector.py).
    "logind_up": _gauge(
        "1 while logind runs (systemd-logind: its invocation link exists; elogind: its pid "
        "file names a live process; where neither can be read: while its state is readable, "
        "seat0 exists) and, while the system bus is connected, owns org.freedesktop.login1; "
        "0 otherwise. logind_exporter_liveness_rule says which rule is in force."),
    "logind_restarts_total": _counter(
        "Starts of logind seen after the exporter's first view (systemd-logind's invocation "
        "id, or elogind's pid, changed)."),
    "logind_sessions": _gauge(
        "Login sessions by seat, remote, type, class and state.", *SESSION_KEY, "state"),
    "logind_seat_present": _gauge("1 while the seat exists, 0 after it has gone.", *_SEAT),
    "logind_seat_sessions": _gauge("Sessions attached to the seat.", *_SEAT),
    "logind_seat_active_session": _gauge(
        "1 if the seat has an active (foreground) session.", *_SEAT),
    "logind_seat_can_graphical": _gauge("1 if the seat can show graphics.", *_SEAT),
    "logind_seat_can_tty": _gauge("1 if the seat has text consoles (sd_seat_can_tty).", *_SEAT),
    "logind_seat_can_multi_session": _gauge(
        "1 if the seat can hold several sessions (sd_seat_can_multi_session).", *_SEAT),
    "logind_users": _gauge("Users (uids with login state) by sd_uid_get_state.", "state"),
    "logind_machines": _gauge(
        "Running machines (VMs and containers registered with machined) by class.", "class"),
    "logind_machine_info": _gauge("1 per running machine.", "machine", "class"),
    "logind_machine_starts_total": _counter("Machines that appeared.", "class"),
    "logind_machine_stops_total": _counter("Machines that went away.", "class"),
    "logind_session_starts_total": _counter(
        "Sessions that appeared since the exporter started (those present at start-up are "
        "not counted).", *SESSION_KEY),
    "logind_session_ends_total": _counter(
        "Sessions that went away since the exporter started.", *SESSION_KEY),
    "logind_session_duration_seconds": Spec(
        "histogram", "Lifetime of each ended session; its start is taken from {start_source}.",
        ("remote", "type", "class")),
    "logind_session_info": _gauge(
        "1 per session with identifying labels (opt-in: --collector.session-info).",
        *SESSION_INFO_LABELS),
    # The exporter itself.
    "logind_exporter_build_info": _gauge(
        "Version of the exporter, Python and the sd-login library (newest LIBSYSTEMD_ symbol "
        "version; elogind's follow systemd's numbering), and which library was loaded "
        "(libsystemd or libelogind).",
        "version", "python_version", "libsystemd_version", "library"),
    "logind_exporter_refreshes_total": _counter("Snapshot recomputations by reason.", "reason"),
    "logind_exporter_liveness_rule": _gauge(
        "The rule logind_up follows: unit (systemd's invocation link of "
        "systemd-logind.service), pidfile (elogind's /run/elogind.pid and its process) or "
        "files (seat0's state file exists), 1 for the one in force.", "rule"),
    "logind_exporter_monitor_wakeups_total": _counter("Wake-ups of the sd-login monitor fds."),
    "logind_exporter_refresh_duration_seconds": Spec(
        "histogram", "Time to read logind state and build a snapshot."),
    "logind_exporter_last_refresh_timestamp_seconds": _gauge(
        "Wall-clock time of the newest snapshot."),
    "logind_exporter_read_races_total": _counter(
        "Objects that vanished between listing and reading (normal, not an error)."),
    "logind_exporter_errors_total": _counter(
        "Failures by kind: list (listing objects failed), read (a state file could not be "
        "parsed), monitor (an sd-login monitor was lost), dbus (the system bus connection "
        "failed or was lost).", "kind"),
    # What only logind's bus knows (presence.py).
    "logind_dbus_up": _gauge(
        "1 while connected to the system bus and org.freedesktop.login1 has an owner."),
    "logind_exporter_dbus_messages_total": _counter(
        "Messages (signals and replies) received from the system bus."),
    "logind_exporter_bus_messages_dropped_total": _counter(
        "Messages from the system bus that were not acted on, by reason: sender (not from "
        "who may send it), unexpected (a call to us, a reply to no pending call), size "
        "(over 16 MiB, skipped unread), signature (not the member's), property (a value of "
        "another type than logind's; counted per property).", "reason"),
    "logind_idle": _gauge("logind's IdleHint: 1 when every session is idle."),
    "logind_preparing_for_shutdown": _gauge("logind's PreparingForShutdown."),
    "logind_preparing_for_sleep": _gauge("logind's PreparingForSleep."),
    "logind_lid_closed": _gauge(
        "logind's LidClosed (read at connect, on sleep/resume and on resync: logind announces "
        "no change)."),
    "logind_docked": _gauge("logind's Docked (read like logind_lid_closed)."),
    "logind_on_external_power": _gauge("logind's OnExternalPower (read like logind_lid_closed)."),
    "logind_idle_since_seconds": _gauge(
        "logind's IdleSinceHint as Unix time, 0 while not idle."),
    "logind_scheduled_shutdown_timestamp_seconds": _gauge(
        "Unix time of the shutdown logind has scheduled, by type (poweroff, reboot, ...); "
        "0 when none.", "type"),
    "logind_seat_idle": _gauge("The seat's IdleHint.", *_SEAT),
    "logind_seat_idle_since_seconds": _gauge(
        "The seat's IdleSinceHint as Unix time, 0 while not idle.", *_SEAT),
    "logind_sessions_idle": _gauge("Sessions whose IdleHint is set.", *SESSION_KEY),
    "logind_sessions_locked": _gauge("Sessions whose LockedHint is set.", *SESSION_KEY),
    "logind_inhibitors": _gauge(
        "Inhibitor locks held, one count per operation they inhibit, by mode.", "what", "mode"),
    "logind_inhibitor_since_seconds": _gauge(
        "Unix time the oldest of these locks was first seen by the exporter (logind does not "
        "say when a lock was taken; locks held at start-up count from then); 0 when none is "
        "held.", "what", "mode"),
    "logind_inhibitor_info": _gauge(
        "Inhibitor locks by operation, mode, holder and reason (opt-in: "
        "--collector.inhibitor-info): 1 per lock.", "what", "mode", "who", "why", "uid"),
}  # fmt: skip
