"""Parity with python-systemd's ``systemd.login`` on the same state, both on real libsystemd.

CI installs systemd-python (the `parity` extra, built against libsystemd-dev), so a missing
``systemd.login`` is a failure here, never a skip.
"""

from __future__ import annotations

import copy
import errno
import os
import pickle
import select
import subprocess
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from login_exporter import sdlogin
from tests.support.exporter import ROOT
from tests.support.logind_state import LogindState

try:
    from systemd import login as _reference
except ImportError as exc:  # pragma: no cover - CI installs it
    _reference = None
    _IMPORT_ERROR: ImportError | None = exc
else:
    _IMPORT_ERROR = None


@pytest.fixture
def reference() -> ModuleType:
    if _reference is None:
        pytest.fail(
            f"systemd.login is not importable ({_IMPORT_ERROR}); install systemd-python "
            "(needs libsystemd-dev, pkg-config, gcc)"
        )
    module: ModuleType = _reference
    return module


def _populate(logind: LogindState) -> None:
    logind.session("1", uid=1000, seat="seat0", type="wayland", vtnr=1)
    logind.session("2", uid=1001, seat="seat0", type="x11", vtnr=2, active=False, state="online")
    logind.session("7", uid=1002, seat="seat-kiosk1", type="x11", vtnr=1)
    logind.session("c3", uid=1003, type="unspecified", klass="background")
    logind.session("41", uid=1004, remote=True, remote_host="203.0.113.7", service="sshd")
    logind.seat0(sessions=[("1", 1000), ("2", 1001)], active="1")
    logind.seat("seat-kiosk1", sessions=[("7", 1002)], active="7")
    logind.user(1000, sessions=["1"], seats=["seat0"])
    logind.user(1001, state="online", sessions=["2"], seats=["seat0"], active_sessions=[])
    logind.user(1002, sessions=["7"], seats=["seat-kiosk1"])
    logind.user(1003, sessions=["c3"])
    logind.user(1004, sessions=["41"])
    logind.user(1005, state="lingering")
    logind.machine("vm1", klass="vm")
    logind.machine("ct1")


LISTS = ("machine_names", "seats", "sessions", "uids")


def _lists(module: Any) -> dict[str, list[Any]]:
    return {name: sorted(getattr(module, name)()) for name in LISTS}


def test_lists_match_on_synthetic_state(logind: LogindState, reference: ModuleType) -> None:
    _populate(logind)
    ours = _lists(sdlogin)
    assert ours == _lists(reference)
    assert ours["sessions"] == ["1", "2", "41", "7", "c3"]  # not vacuous
    assert all(isinstance(uid, int) for uid in sdlogin.uids())


def test_lists_match_on_golden_fixture(real_252: LogindState, reference: ModuleType) -> None:
    ours = _lists(sdlogin)
    assert ours == _lists(reference)
    assert len(ours["sessions"]) == 8


def test_lists_match_on_empty_and_missing_state(
    logind: LogindState, reference: ModuleType
) -> None:
    assert _lists(sdlogin) == _lists(reference) == {name: [] for name in LISTS}
    logind.remove_directories()
    assert _lists(sdlogin) == _lists(reference) == {name: [] for name in LISTS}


def _poll(monitor: Any, timeout_ms: int) -> list[tuple[int, int]]:
    poller = select.poll()
    poller.register(monitor, monitor.get_events())
    result: list[tuple[int, int]] = poller.poll(timeout_ms)
    return result


@pytest.mark.parametrize("category", [None, "session", "seat", "uid", "machine"])
def test_monitor_methods_match(
    logind: LogindState, reference: ModuleType, category: str | None
) -> None:
    theirs = reference.Monitor(category) if category is not None else reference.Monitor()
    ours = sdlogin.Monitor(category)
    try:
        assert type(ours.fileno()) is type(theirs.fileno()) is int
        assert ours.get_events() == theirs.get_events()
        assert ours.get_timeout() == theirs.get_timeout()
        assert ours.get_timeout_ms() == theirs.get_timeout_ms()
        ours.flush()
        assert theirs.flush() is None

        _populate(logind)
        ours_events = _poll(ours, 2000)
        theirs_events = _poll(theirs, 2000)
        assert [e for _, e in ours_events] == [e for _, e in theirs_events] == [select.POLLIN]
        ours.flush()
        assert theirs.flush() is None
        assert _poll(ours, 0) == _poll(theirs, 0) == []
        assert ours.get_timeout() == theirs.get_timeout()
        assert ours.get_timeout_ms() == theirs.get_timeout_ms()
    finally:
        ours.close()
        assert theirs.close() is None
        # Both may be closed twice.
        ours.close()
        assert theirs.close() is None


def test_monitor_errors_match(logind: LogindState, reference: ModuleType) -> None:
    errors: list[tuple[Callable[[], Any], Callable[[], Any]]] = [
        (lambda: sdlogin.Monitor("bogus"), lambda: reference.Monitor("bogus")),
    ]
    for ours, theirs in errors:
        with pytest.raises(ValueError):
            ours()
        with pytest.raises(ValueError):
            theirs()
    logind.remove_directories()
    with pytest.raises(OSError) as mine:
        sdlogin.Monitor("session")
    with pytest.raises(OSError) as other:
        reference.Monitor("session")
    assert mine.value.errno == other.value.errno == errno.ENOENT


# -- the corners a differential run found: each compared with the reference directly -------------

CLOSED_RAISING = ("fileno", "get_events", "get_timeout", "get_timeout_ms")


def test_closed_monitor_calls_raise_einval_and_flush_and_close_do_nothing(
    logind: LogindState, reference: ModuleType
) -> None:
    for module in (sdlogin, reference):
        monitor = module.Monitor("session")
        monitor.close()
        for method in CLOSED_RAISING:
            with pytest.raises(OSError) as info:
                getattr(monitor, method)()
            assert info.value.errno == errno.EINVAL, (module.__name__, method)
        assert monitor.flush() is None
        assert monitor.close() is None
    # Ours stays a ValueError too, as it was before closing raised OSError.
    closed = sdlogin.Monitor("session")
    closed.close()
    with pytest.raises(ValueError):
        closed.fileno()


@pytest.mark.parametrize("arguments", [(), (None, None, None), (1, 2, 3, 4)])
def test_exit_takes_positional_arguments_like_the_reference(
    logind: LogindState, reference: ModuleType, arguments: tuple[object, ...]
) -> None:
    for module in (sdlogin, reference):
        monitor = module.Monitor("session")
        assert monitor.__exit__(*arguments) is None
        with pytest.raises(OSError):
            monitor.fileno()  # __exit__ closed it


def test_exit_refuses_keywords_like_the_reference(
    logind: LogindState, reference: ModuleType
) -> None:
    for module in (sdlogin, reference):
        monitor = module.Monitor("session")
        try:
            with pytest.raises(TypeError):
                monitor.__exit__(exc_type=None, exc=None, traceback=None)
        finally:
            monitor.close()


@pytest.mark.parametrize("duplicate", [copy.copy, copy.deepcopy, pickle.dumps])
def test_copying_or_pickling_a_monitor_is_refused(
    logind: LogindState, reference: ModuleType, duplicate: Callable[[Any], Any]
) -> None:
    # A copy would share the C monitor: closing it would free what the original still uses.
    for module in (sdlogin, reference):
        with module.Monitor("session") as monitor:
            fd = monitor.fileno()
            with pytest.raises(TypeError, match="pickle"):
                duplicate(monitor)
            assert monitor.fileno() == fd
            os.fstat(fd)  # still open


def test_version_is_a_string_like_the_reference(reference: ModuleType) -> None:
    assert isinstance(reference.__version__, str)
    assert isinstance(sdlogin.__version__, str) and sdlogin.__version__


def test_a_huge_category_is_not_echoed_whole(logind: LogindState, reference: ModuleType) -> None:
    category = "x" * 65536
    with pytest.raises(ValueError) as theirs:
        reference.Monitor(category)
    with pytest.raises(ValueError) as ours:
        sdlogin.Monitor(category)
    assert len(str(theirs.value)) < 100
    assert len(str(ours.value)) < 200 and "xxxx" in str(ours.value)


OUT_OF_FDS = """
import os, resource, sys
module = sys.argv[1]
if module == "ours":
    from login_exporter import sdlogin as login
else:
    from systemd import login
resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
try:
    while True:
        os.open("/dev/null", os.O_RDONLY)
except OSError:
    pass
for call in (login.sessions, lambda: login.Monitor("session")):
    try:
        call()
    except OSError as exc:
        print(exc.errno)
"""


def test_running_out_of_fds_on_the_first_call_reports_emfile(
    logind: LogindState, reference: ModuleType
) -> None:
    answers = {}
    for module in ("ours", "reference"):
        result = subprocess.run(
            [sys.executable, "-c", OUT_OF_FDS, module], cwd=ROOT, capture_output=True,
            text=True, timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        answers[module] = result.stdout.split()
    assert answers["ours"] == answers["reference"] == [str(errno.EMFILE)] * 2


# -- issue 20: the drop-in corners of Monitor, each against the reference ------------------------


def _open_fds() -> set[int]:
    return {int(name) for name in os.listdir("/proc/self/fd")}


def test_an_uninitialised_monitor_behaves_as_a_closed_one(
    logind: LogindState, reference: ModuleType
) -> None:
    for module in (sdlogin, reference):
        bare = module.Monitor.__new__(module.Monitor)
        for method in CLOSED_RAISING:
            with pytest.raises(OSError) as info:
                getattr(bare, method)()
            assert info.value.errno == errno.EINVAL, (module.__name__, method)
        assert bare.flush() is None
        assert bare.close() is None
        repr(bare)


def test_a_subclass_that_skips_the_base_init_behaves_as_a_closed_monitor(
    logind: LogindState, reference: ModuleType
) -> None:
    for module in (sdlogin, reference):

        class Lazy(module.Monitor):  # type: ignore[name-defined,misc]
            def __init__(self) -> None:
                pass

        lazy = Lazy()
        with pytest.raises(OSError) as info:
            lazy.fileno()
        assert info.value.errno == errno.EINVAL, module.__name__
        assert lazy.flush() is None
        assert lazy.close() is None
        with lazy:
            pass
        del lazy  # __del__ of a monitor that never opened


def test_init_again_with_a_bad_category_keeps_the_monitor_and_leaks_no_fd(
    logind: LogindState, reference: ModuleType
) -> None:
    for module in (sdlogin, reference):
        monitor = module.Monitor("session")
        try:
            fd = monitor.fileno()
            before = _open_fds()
            with pytest.raises(ValueError):
                monitor.__init__("bogus")
            assert monitor.fileno() == fd, module.__name__
            assert _open_fds() == before, module.__name__
            logind.session("5", uid=1000)
            assert [e for _, e in _poll(monitor, 2000)] == [select.POLLIN], module.__name__
            monitor.flush()
        finally:
            monitor.close()


def test_init_again_with_a_good_category_closes_the_old_monitor(logind: LogindState) -> None:
    # The reference leaks the first monitor here; ours frees it (no parity to keep in a leak).
    monitor = sdlogin.Monitor("session")
    try:
        before = _open_fds()
        monitor.__init__("seat")  # type: ignore[misc]
        assert _open_fds() - before <= {monitor.fileno()}
        assert len(_open_fds()) == len(before)
        assert monitor.category == "seat"
    finally:
        monitor.close()


def test_with_and_del_do_not_call_an_overridden_close(
    logind: LogindState, reference: ModuleType
) -> None:
    calls: list[str] = []
    for module in (sdlogin, reference):

        class Counting(module.Monitor):  # type: ignore[name-defined,misc]
            def close(self) -> None:
                calls.append("close")
                super().close()

        before = _open_fds()
        with Counting("session") as monitor:
            monitor.fileno()
        dropped = Counting("session")
        del dropped
        assert calls == [], module.__name__
        assert _open_fds() == before, module.__name__  # both still freed their fds


def test_a_subclass_may_set_closed_and_category(
    logind: LogindState, reference: ModuleType
) -> None:
    seen = {}
    for module in (sdlogin, reference):

        class Own(module.Monitor):  # type: ignore[name-defined,misc]
            def __init__(self, category: str) -> None:
                self.category = "mine"
                super().__init__(category)
                self.closed = "not yet"

        own = Own("session")
        try:
            seen[module.__name__] = (own.category, own.closed)
            assert own.fileno() >= 0
            own.flush()
        finally:
            own.close()
    assert set(seen.values()) == {("mine", "not yet")}, seen


def test_version_is_an_integer_like_string_like_the_reference(reference: ModuleType) -> None:
    assert reference.__version__ == str(int(reference.__version__))
    assert sdlogin.__version__ == str(int(sdlogin.__version__))
    from login_exporter import __version__ as exporter_version

    assert sdlogin.__version__ != exporter_version  # the exporter's own version lives there


@pytest.mark.parametrize("whole", [True, False], ids=["argz+wordfree", "per-string"])
def test_both_ways_of_taking_a_list_match_the_reference(
    logind: LogindState, reference: ModuleType, monkeypatch: pytest.MonkeyPatch, whole: bool
) -> None:
    # glibc: a strv is copied by argz_create and freed by wordfree (four C calls for any length);
    # elsewhere (musl has no argz) string by string. Both must give the reference's lists.
    from login_exporter.sdlogin import _call

    assert _call._whole_strv_calls(sdlogin._ffi.libc()), "this libc has argz_create and wordfree"
    monkeypatch.setattr(_call, "_whole_strv", whole)
    _populate(logind)
    for i in range(200):
        logind.session(f"x{i}", uid=2000 + i)
    assert _lists(sdlogin) == _lists(reference)
    assert sorted(sdlogin.seat_get_sessions("seat0")) == ["1", "2"]
    logind.clear()
    assert _lists(sdlogin) == _lists(reference) == {name: [] for name in LISTS}
