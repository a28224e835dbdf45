"""Facts kept in one place: every family is exported by one source only, exactly as its entry in
login_exporter/specs.py says, and no module of login_exporter imports another module's private
names."""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

import pytest
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    generate_latest,
)
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families

from login_exporter.bus.view import Inhibitor, Power, Presence, SeatIdle, SessionHints
from login_exporter.collector import LogindCollector, Options, Totals
from login_exporter.exposition import Exposition
from login_exporter.families import counter, gauge
from login_exporter.presence import PresenceFamilies
from login_exporter.specs import SPECS
from login_exporter.state import Difference, Machine, Seat, User
from tests.support.snapshots import session, snapshot

PACKAGE = Path(__file__).resolve().parents[2] / "login_exporter"


def _names(exposition: bytes) -> list[str]:
    return re.findall(r"^# TYPE (\S+) ", exposition.decode(), re.MULTILINE)


def _bus_families() -> list[Metric]:
    """The presence families with every option on and every value known."""
    every_power = Power(True, 5.0, False, False, ("reboot", 9.0), False, False, True)
    presence = Presence(
        connected=True, logind_owner=":1.1", power=every_power,
        seats={"seat0": SeatIdle(True, 5.0)},
        sessions={"/s/1": SessionHints("seat0", False, "x11", "user", True, True)},
        inhibitors=(Inhibitor("sleep", "apt", "why", "block", 0, 1, 5.0),),
    )  # fmt: skip
    return PresenceFamilies(inhibitor_info=True).build(presence, 3, {"sender": 1})


def _collector_exposition() -> bytes:
    """The collector's exposition with every option on and every kind of object seen."""
    collector = LogindCollector(Options(True, True, True), "252", start_time_known=True)
    totals = Totals()
    ended = session("2", seat="seat0")
    machine = Machine("vm1", "vm")
    totals.observe(Difference(started=(ended,), ended=(ended,), machines_started=(machine,),
                              machines_stopped=(machine,)), now=200.0)  # fmt: skip
    collector.update(
        snapshot((session("1", seat="seat0"),), (Seat("seat0", "1", 1, True, True, True),),
                 (User(1000, "active"),), (machine,)),
        totals,
    )  # fmt: skip
    return collector.exposition().get(openmetrics=False, gzip=False)


def family_names_by_source() -> dict[str, list[str]]:
    """Every family each source exports with every option on and every kind of object seen."""
    bus = _bus_families()
    live = CollectorRegistry(auto_describe=False)
    for each in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        live.register(each)
    return {
        "collector": _names(_collector_exposition()),
        "presence": _names(Exposition(bus).get(openmetrics=False, gzip=False)),
        "process and python": _names(generate_latest(live)),
    }


def test_family_names_are_unique_across_every_source() -> None:
    sources = family_names_by_source()
    assert "logind_session_info" in sources["collector"]
    assert "logind_inhibitor_info" in sources["presence"]
    counts = Counter(name for names in sources.values() for name in names)
    assert [name for name, count in counts.items() if count > 1] == []


def _private(name: str) -> bool:
    return name.startswith("_") and not name.endswith("__")


def private_imports(path: Path, root: Path = PACKAGE) -> list[str]:
    """Imports in ``path`` of another package's private module, or of a private name (a leading
    underscore; dunders are public) from anything but a private module of its own package (the
    binding's modules share their plumbing through login_exporter.sdlogin._call)."""
    parts = path.relative_to(root.parent).with_suffix("").parts
    package = ".".join(parts[:-1])
    module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ImportFrom) or node.module is None:
            continue
        source = node.module
        source_package, _, last = source.rpartition(".")
        own_private_module = source_package == package and _private(last)
        if any(map(_private, source.split("."))) and not own_private_module:
            found.append(f"{module}: from {source} import ...")
            continue
        names = [a.name for a in node.names if _private(a.name)]
        if names and not own_private_module and source != package:
            found.append(f"{module}: from {source} import {', '.join(names)}")
    return found


def test_no_module_imports_another_modules_private_names() -> None:
    found = [line for path in sorted(PACKAGE.rglob("*.py")) for line in private_imports(path)]
    assert found == []


def test_the_private_import_check_finds_them(tmp_path: Path) -> None:
    (tmp_path / "login_exporter").mkdir()
    module = tmp_path / "login_exporter" / "presence.py"
    module.write_text("from login_exporter.collector import _Sticky, label_value\n"
                      "from login_exporter.sdlogin._ffi import ffi\n"
                      "from login_exporter import __version__\n")  # fmt: skip
    assert private_imports(module, tmp_path / "login_exporter") == [
        "login_exporter.presence: from login_exporter.collector import _Sticky",
        "login_exporter.presence: from login_exporter.sdlogin._ffi import ...",
    ]


def test_counters_are_written_with_total() -> None:
    counters = [name for name, spec in SPECS.items() if spec.type == "counter"]
    assert "logind_restarts_total" in counters
    assert [name for name in counters if not name.endswith("_total")] == []
    assert counter("logind_restarts_total", {(): 1.0}).name == "logind_restarts"  # + _total


def test_a_family_is_built_only_as_its_spec_says() -> None:
    assert gauge("logind_seat_idle", {("seat0",): 1.0}).documentation == "The seat's IdleHint."
    with pytest.raises(KeyError):
        gauge("logind_not_in_specs", {(): 1.0})
    with pytest.raises(TypeError, match="logind_up is a gauge in SPECS, built as a counter"):
        counter("logind_up", {(): 1.0})


def exported_families() -> dict[str, tuple[str, str, set[str]]]:
    """What the collector and the presence code export with every option on: name as exposed
    (counters with _total) -> (type, HELP, label names seen on its samples)."""
    text = _collector_exposition().decode()
    text += Exposition(_bus_families()).get(openmetrics=False, gzip=False).decode()
    return {
        f.name + ("_total" if f.type == "counter" else ""):
            (f.type, f.documentation, {k for s in f.samples for k in s.labels} - {"le"})
        for f in text_string_to_metric_families(text)
    }  # fmt: skip


def test_every_exported_family_is_its_spec() -> None:
    exported = exported_families()
    assert exported.keys() == SPECS.keys()
    for name, (kind, doc, labels) in exported.items():
        spec = SPECS[name]
        assert (kind, labels) == (spec.type, set(spec.labels)), name
        pattern = re.escape(spec.help).replace(re.escape("{start_source}"), ".+")
        assert re.fullmatch(pattern, doc), name
