"""Collector logic on hand-built snapshots: label values, histograms, totals, sticky series."""

from __future__ import annotations

import gzip
from collections.abc import Iterable
from dataclasses import replace

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text

from login_exporter.collector import (
    DURATION_BUCKETS,
    SEAT_FAMILIES,
    USER_STATES,
    Histogram,
    LogindCollector,
    Options,
    Totals,
    label_value,
    session_key,
)
from login_exporter.exposition import Exposition, Publisher
from login_exporter.state import Difference, Machine, Seat, Snapshot, User
from tests.support.exposition import Samples, parse_samples
from tests.support.snapshots import session, snapshot


def seat(name: str, sessions: int = 0, active: str | None = None) -> Seat:
    return Seat(name, active, sessions, True, True, True)


DEFAULT = Options()


class Harness:
    """A LogindCollector rendered the way the agent renders it."""

    def __init__(self, options: Options = DEFAULT) -> None:
        self.collector = LogindCollector(options, "252", start_time_known=False)
        self.totals = Totals()

    def exposition(self, snap: Snapshot) -> Exposition:
        self.collector.update(snap, self.totals)
        return self.collector.exposition()

    def show(self, snap: Snapshot) -> Samples:
        return parse_samples(self.exposition(snap).get(openmetrics=False, gzip=False).decode())


def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return (name, frozenset(labels.items()))


def sessions_key(seat: str, remote: str, type: str, klass: str, state: str) -> tuple[
    str, frozenset[tuple[str, str]]
]:
    return key("logind_sessions", seat=seat, remote=remote, type=type, **{"class": klass},
               state=state)  # fmt: skip


# -- label_value ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "user", "greeter", "lock-screen", "background", "user-early", "user-light",
        "background-light", "manager", "manager-early", "none", "tty", "x11", "wayland", "mir",
        "unspecified", "web", "closing", "lingering", "vm", "container", "a", "0",
        "a" * 32, "some-class-systemd-adds-in-2030",
    ],
)  # fmt: skip
def test_label_value_passes_any_enum_looking_value_through(value: str) -> None:
    assert label_value(value) == value


@pytest.mark.parametrize(
    "value",
    [
        None, "", "Bad Value", "User", "a" * 33, "x" * 40, "-leading-dash", "with_underscore",
        "dotted.name", "spa ce", "new\nline", "ünïcode", 'quo"te', "slash/ed",
    ],
)  # fmt: skip
def test_label_value_folds_odd_values_into_other(value: str | None) -> None:
    assert label_value(value) == "other"


def test_session_key_is_seat_remote_type_class() -> None:
    assert session_key("seat0", True, "x11", "Bad Class") == ("seat0", "true", "x11", "other")
    assert session_key("", False, None, "user") == ("", "false", "other", "user")


# -- Histogram ------------------------------------------------------------------------------------


def test_histogram_buckets_are_cumulative_and_inclusive() -> None:
    h = Histogram((1.0, 10.0, 60.0))
    for value in (0.0, 1.0, 1.5, 10.0, 59.0, 61.0, 1e9):
        h.observe(value)
    assert h.buckets() == [("1.0", 2.0), ("10.0", 4.0), ("60.0", 5.0), ("+Inf", 7.0)]
    assert h.total == pytest.approx(0 + 1 + 1.5 + 10 + 59 + 61 + 1e9)


def test_empty_histogram_has_zero_buckets_up_to_inf() -> None:
    h = Histogram(DURATION_BUCKETS)
    buckets = h.buckets()
    assert len(buckets) == len(DURATION_BUCKETS) + 1
    assert buckets[-1] == ("+Inf", 0.0)
    assert all(count == 0.0 for _, count in buckets)


def test_duration_buckets_are_strictly_increasing() -> None:
    assert list(DURATION_BUCKETS) == sorted(set(DURATION_BUCKETS))


# -- Totals.observe -------------------------------------------------------------------------------


def test_totals_count_starts_and_ends_by_seat_remote_type_class() -> None:
    totals = Totals()
    started = (session("1", seat="seat0", type="x11"), session("2", remote=True),
               session("3", remote=True))  # fmt: skip
    totals.observe(Difference(started, (), (), ()), now=500.0)
    assert totals.session_starts == {
        ("seat0", "false", "x11", "user"): 1,
        ("", "true", "tty", "user"): 2,
    }
    assert not totals.session_ends
    assert not totals.durations


def test_totals_record_duration_of_ended_sessions_keyed_without_seat() -> None:
    totals = Totals()
    ended = (
        session("1", seat="seat0", remote=True, first_seen=100.0),
        session("2", seat="seat1", remote=True, first_seen=400.0),
        session("3", remote=False, klass="background", start_time=440.0, first_seen=499.0),
    )
    totals.observe(Difference((), ended, (), ()), now=500.0)
    assert totals.session_ends == {
        ("seat0", "true", "tty", "user"): 1,
        ("seat1", "true", "tty", "user"): 1,
        ("", "false", "tty", "background"): 1,
    }
    assert set(totals.durations) == {("true", "tty", "user"), ("false", "tty", "background")}
    remote = totals.durations[("true", "tty", "user")]
    assert remote.total == pytest.approx(400.0 + 100.0)
    assert dict(remote.buckets())["300.0"] == 1.0 and dict(remote.buckets())["900.0"] == 2.0
    # libsystemd's start time wins over first sight: 60 s, not 1 s.
    assert totals.durations[("false", "tty", "background")].total == pytest.approx(60.0)


def test_totals_clamp_negative_durations_to_zero() -> None:
    totals = Totals()
    totals.observe(Difference((), (session("1", start_time=900.0),), (), ()), now=500.0)
    assert totals.durations[("false", "tty", "user")].total == 0.0


def test_totals_count_machines_by_class() -> None:
    totals = Totals()
    totals.observe(
        Difference((), (), (Machine("a", "vm"), Machine("b", "vm"), Machine("c", "Weird!")),
                   (Machine("d", "container"),)),
        now=1.0,
    )  # fmt: skip
    assert totals.machine_starts == {"vm": 2, "other": 1}
    assert totals.machine_stops == {"container": 1}


# -- the exposition -------------------------------------------------------------------------------


def test_sessions_are_grouped_by_seat_remote_type_class_state() -> None:
    h = Harness()
    samples = h.show(snapshot((
        session("1", seat="seat0", type="x11", state="online"),
        session("2", remote=True), session("3", remote=True),
        session("4", klass="background-light", type="unspecified"),
        session("5", klass="Bad Value"),
    )))  # fmt: skip
    assert samples[sessions_key("seat0", "false", "x11", "user", "online")] == 1
    assert samples[sessions_key("", "true", "tty", "user", "active")] == 2
    assert samples[sessions_key("", "false", "unspecified", "background-light", "active")] == 1
    assert samples[sessions_key("", "false", "tty", "other", "active")] == 1
    assert samples[key("logind_up")] == 1


def test_logind_down_is_exported_as_zero() -> None:
    assert Harness().show(snapshot(up=False))[key("logind_up")] == 0


def test_users_always_export_all_five_states() -> None:
    h = Harness()
    samples = h.show(snapshot(users=(User(1, "active"), User(2, "active"), User(3, "lingering"))))
    users = {dict(labels)["state"]: v for (name, labels), v in samples.items()
             if name == "logind_users"}  # fmt: skip
    assert users == {"offline": 0, "lingering": 1, "online": 0, "active": 2, "closing": 0}
    empty = h.show(snapshot())
    assert {dict(k[1])["state"] for k in empty if k[0] == "logind_users"} == set(USER_STATES)


def test_unknown_user_state_passes_through_beside_the_five() -> None:
    samples = Harness().show(snapshot(users=(User(1, "hibernating"), User(2, None))))
    assert samples[key("logind_users", state="hibernating")] == 1
    assert samples[key("logind_users", state="other")] == 1
    assert samples[key("logind_users", state="active")] == 0


def test_seat_gauges() -> None:
    samples = Harness().show(snapshot(
        sessions=(session("5", seat="seat0"), session("6", seat="seat0", state="online"),
                  session("7")),
        seats=(
            Seat("seat0", "5", 2, can_graphical=True, can_tty=False, can_multi_session=True),
            Seat("seat-kiosk1", None, 0, can_graphical=False, can_tty=True,
                 can_multi_session=False),
        ),
    ))  # fmt: skip
    expect = {
        "logind_seat_present": (1, 1),
        "logind_seat_sessions": (2, 0),
        "logind_seat_active_session": (1, 0),
        "logind_seat_can_graphical": (1, 0),
        "logind_seat_can_tty": (0, 1),
        "logind_seat_can_multi_session": (1, 0),
    }
    for name, (seat0, kiosk) in expect.items():
        assert samples[key(name, seat="seat0")] == seat0, name
        assert samples[key(name, seat="seat-kiosk1")] == kiosk, name


def test_seat_counts_live_sessions_not_the_seat_files_list() -> None:
    """systemd 252 leaves an ended session's id in the seat file's SESSIONS and ACTIVE."""
    samples = Harness().show(snapshot(
        sessions=(session("4", seat="seat0"),),
        seats=(seat("seat0", sessions=2, active="3"),),  # session 3 has ended
    ))  # fmt: skip
    assert samples[key("logind_seat_sessions", seat="seat0")] == 1
    assert samples[key("logind_seat_active_session", seat="seat0")] == 0


def test_vanished_seat_stays_exported_with_zero() -> None:
    h = Harness()
    first = h.show(snapshot(
        sessions=(session("3", seat="seat1"),),
        seats=(seat("seat0"), seat("seat1", sessions=1, active="3")),
    ))  # fmt: skip
    assert first[key("logind_seat_sessions", seat="seat1")] == 1
    assert first[key("logind_seat_active_session", seat="seat1")] == 1
    samples = h.show(snapshot(seats=(seat("seat0"),)))
    for name in SEAT_FAMILIES:
        assert samples[key(name, seat="seat1")] == 0, name
    assert samples[key("logind_seat_present", seat="seat0")] == 1


def test_emptied_session_class_stays_exported_with_zero() -> None:
    h = Harness()
    h.show(snapshot((session("1", klass="greeter", seat="seat0"), session("2"))))
    samples = h.show(snapshot((session("2"),)))
    assert samples[sessions_key("seat0", "false", "tty", "greeter", "active")] == 0
    assert samples[sessions_key("", "false", "tty", "user", "active")] == 1
    # Still there after further refreshes.
    samples = h.show(snapshot())
    assert samples[sessions_key("seat0", "false", "tty", "greeter", "active")] == 0
    assert samples[sessions_key("", "false", "tty", "user", "active")] == 0


def test_state_change_leaves_old_state_series_at_zero() -> None:
    h = Harness()
    h.show(snapshot((session("1", state="online"),)))
    samples = h.show(snapshot((session("1", state="active"),)))
    assert samples[sessions_key("", "false", "tty", "user", "online")] == 0
    assert samples[sessions_key("", "false", "tty", "user", "active")] == 1


def test_stopped_machine_class_and_info_stay_at_zero() -> None:
    h = Harness()
    samples = h.show(snapshot(machines=(Machine("vm1", "vm"), Machine("ct1", "container"))))
    assert samples[key("logind_machines", **{"class": "vm"})] == 1
    assert samples[key("logind_machine_info", machine="vm1", **{"class": "vm"})] == 1
    samples = h.show(snapshot(machines=(Machine("ct1", "container"),)))
    assert samples[key("logind_machines", **{"class": "vm"})] == 0
    assert samples[key("logind_machine_info", machine="vm1", **{"class": "vm"})] == 0
    assert samples[key("logind_machine_info", machine="ct1", **{"class": "container"})] == 1


def test_machine_collectors_can_be_turned_off() -> None:
    machines = (Machine("vm1", "vm"),)
    no_info = Harness(Options(machine_info=False)).show(snapshot(machines=machines))
    assert key("logind_machines", **{"class": "vm"}) in no_info
    assert not any(name == "logind_machine_info" for name, _ in no_info)
    off = Harness(Options(machines=False)).show(snapshot(machines=machines))
    assert not any(name.startswith("logind_machine") for name, _ in off)


def test_counters_and_histogram_follow_totals() -> None:
    h = Harness()
    h.totals.observe(
        Difference((session("1", remote=True),), (session("2", remote=True, first_seen=970.0),),
                   (Machine("vm1", "vm"),), (Machine("ct1", "container"),)),
        now=1000.0,
    )  # fmt: skip
    samples = h.show(snapshot())
    labels = {"seat": "", "remote": "true", "type": "tty", "class": "user"}
    assert samples[key("logind_session_starts_total", **labels)] == 1
    assert samples[key("logind_session_ends_total", **labels)] == 1
    hist = {"remote": "true", "type": "tty", "class": "user"}
    assert samples[key("logind_session_duration_seconds_count", **hist)] == 1
    assert samples[key("logind_session_duration_seconds_sum", **hist)] == pytest.approx(30.0)
    assert samples[key("logind_session_duration_seconds_bucket", le="10.0", **hist)] == 0
    assert samples[key("logind_session_duration_seconds_bucket", le="60.0", **hist)] == 1
    assert samples[key("logind_machine_starts_total", **{"class": "vm"})] == 1
    assert samples[key("logind_machine_stops_total", **{"class": "container"})] == 1


def test_self_metrics_are_always_there() -> None:
    h = Harness()
    h.totals.refreshes["event"] += 3
    h.totals.errors["monitor"] += 1
    samples = h.show(snapshot(taken_at=1234.5))
    assert samples[key("logind_exporter_refreshes_total", reason="event")] == 3
    assert samples[key("logind_exporter_refreshes_total", reason="startup")] == 0
    assert samples[key("logind_exporter_refreshes_total", reason="resync")] == 0
    assert samples[key("logind_exporter_errors_total", kind="monitor")] == 1
    assert samples[key("logind_exporter_errors_total", kind="read")] == 0
    assert samples[key("logind_exporter_last_refresh_timestamp_seconds")] == 1234.5
    assert samples[key("logind_exporter_monitor_wakeups_total")] == 0
    assert samples[key("logind_exporter_read_races_total")] == 0
    build = [k for k in samples if k[0] == "logind_exporter_build_info"]
    assert len(build) == 1 and dict(build[0][1])["libsystemd_version"] == "252"


def test_session_info_is_opt_in_and_carries_identifying_labels() -> None:
    snap = snapshot((session("c7", seat="seat0", remote=True),))
    default = Harness().show(snap)
    assert not any(name == "logind_session_info" for name, _ in default)
    forbidden = {"user", "uid", "session", "remote_host"}
    for _, labels in default:
        assert not forbidden & {name for name, _ in labels}
    samples = Harness(Options(session_info=True)).show(snap)
    (info,) = [dict(labels) for name, labels in samples if name == "logind_session_info"]
    assert info["session"] == "c7" and info["user"] == "alice" and info["uid"] == "1002"
    assert info["remote_host"] == "203.0.113.9" and info["seat"] == "seat0"
    assert info["service"] == "sshd" and info["tty"] == "pts/1" and info["desktop"] == ""


def test_duration_help_names_where_the_start_comes_from() -> None:
    for known, needle in ((True, b"sd_session_get_start_time"), (False, b"first sight")):
        collector = LogindCollector(Options(), "254", start_time_known=known)
        collector.update(snapshot(), Totals())
        text = collector.exposition().get(openmetrics=False, gzip=False)
        (help_line,) = [line for line in text.splitlines()
                        if line.startswith(b"# HELP logind_session_duration_seconds")]  # fmt: skip
        assert needle in help_line


# -- Publisher ------------------------------------------------------------------------------------


def test_publisher_is_not_ready_before_the_first_publish() -> None:
    publisher = Publisher(None)
    assert not publisher.ready()
    with pytest.raises(LookupError):
        publisher.exposition(openmetrics=False)


def test_publisher_serves_both_formats_plain_and_gzipped() -> None:
    publisher = Publisher(None)
    publisher.publish(Harness().exposition(snapshot()))
    assert publisher.ready()
    text = publisher.exposition(openmetrics=False)
    assert b"logind_up 1.0" in text and not text.endswith(b"# EOF\n")
    om = publisher.exposition(openmetrics=True)
    assert om.endswith(b"# EOF\n") and om.count(b"# EOF") == 1
    assert gzip.decompress(publisher.exposition(openmetrics=False, gzip=True)) == text
    assert gzip.decompress(publisher.exposition(openmetrics=True, gzip=True)) == om


def test_publisher_appends_live_process_metrics_once() -> None:
    from prometheus_client import PROCESS_COLLECTOR

    live = CollectorRegistry(auto_describe=False)
    live.register(PROCESS_COLLECTOR)
    publisher = Publisher(live)
    publisher.publish(Harness().exposition(snapshot()))
    om = publisher.exposition(openmetrics=True)
    assert b"process_cpu_seconds" in om and om.endswith(b"# EOF\n") and om.count(b"# EOF") == 1
    text = gzip.decompress(publisher.exposition(openmetrics=False, gzip=True)).decode()
    assert ("process_cpu_seconds_total", frozenset()) in parse_samples(text)


def _info(families: Iterable[Metric]) -> dict[str, dict[str, str]]:
    return {
        sample.labels["session"]: sample.labels
        for family in families if family.name == "logind_session_info"
        for sample in family.samples
    }  # fmt: skip


def test_session_info_lines_parse_in_both_formats_and_follow_changes() -> None:
    odd = replace(session("c7", seat="seat0"), desktop='Plas"ma\\ 6\nbeta', state="online")
    plain = session("c8", remote=True)
    harness = Harness(Options(session_info=True))
    exposition = harness.exposition(snapshot((odd, plain)))
    text = exposition.get(openmetrics=False, gzip=False).decode()
    om = exposition.get(openmetrics=True, gzip=False).decode() + "# EOF\n"
    for parsed in (_info(parse_text(text)), _info(parse_openmetrics(om))):  # type: ignore[no-untyped-call]
        assert parsed["c7"]["desktop"] == 'Plas"ma\\ 6\nbeta'
        assert parsed["c7"]["state"] == "online" and parsed["c8"]["remote"] == "true"
    # The next refresh carries c8 over unchanged and changes c7's state: its line follows.
    again = harness.exposition(snapshot((replace(odd, state="active"), plain)))
    changed = _info(parse_text(again.get(openmetrics=False, gzip=False).decode()))
    assert changed["c7"]["state"] == "active" and set(changed) == {"c7", "c8"}


def test_counts_kept_from_touched_sessions_equal_a_full_count() -> None:
    # A snapshot built from the previous one by reading named sessions says which it touched;
    # the collector updates its counts from those alone and must end where a fresh one counts.
    seats = [seat("seat0"), seat("seat1")]
    first = replace(
        snapshot([session("1", seat="seat0"), session("2", state="online"),
                  session("3", seat="seat1", remote=True)], seats),
        generation=10,
    )  # fmt: skip
    sessions = dict(first.sessions)
    sessions["2"] = session("2", state="active")  # changed
    del sessions["3"]  # ended
    sessions["4"] = session("4", seat="seat0", type="x11")  # started
    second = replace(
        first, sessions=sessions, generation=11, base=10, touched=frozenset({"2", "3", "4", "5"})
    )
    kept, whole = Harness(), Harness()  # both saw ``first`` (the same sticky label sets)
    kept.show(first)
    whole.show(first)
    incremental = kept.show(second)
    assert incremental == whole.show(replace(second, touched=None))
    assert incremental[sessions_key("seat1", "true", "tty", "user", "active")] == 0.0
    assert incremental[key("logind_seat_sessions", seat="seat0")] == 2.0
    # A snapshot not built from the one counted last is counted whole, even if it names a base.
    third = replace(second, sessions={"1": sessions["1"]}, generation=12, base=99,
                    touched=frozenset())  # fmt: skip
    assert kept.show(third) == whole.show(replace(third, touched=None))


def test_session_info_kept_from_touched_sessions_equals_a_full_render() -> None:
    info = Options(session_info=True)
    first = replace(snapshot([session("1"), session("2", state="online"), session("3")]),
                    generation=20)  # fmt: skip
    sessions = dict(first.sessions)
    sessions["2"] = session("2", state="active")
    del sessions["3"]
    sessions["4"] = session("4", remote=True)
    second = replace(first, sessions=sessions, generation=21, base=20,
                     touched=frozenset({"2", "3", "4"}))  # fmt: skip
    kept, whole = Harness(info), Harness(info)
    kept.show(first)
    whole.show(first)
    incremental = kept.show(second)
    assert incremental == whole.show(replace(second, touched=None))
    assert sorted(k for k in incremental if k[0] == "logind_session_info") == sorted(
        k for k in Harness(info).show(second) if k[0] == "logind_session_info"
    )
    assert kept.show(second) == incremental  # the same snapshot again
