"""Building blocks of metric families, shared by every family source (collector.py for what
sd-login says, presence.py for what the bus says). A family's type, HELP and label names come
from its entry in :data:`login_exporter.specs.SPECS`; the source gives only the values.

Counter names are written with their ``_total`` suffix, as exposed: prometheus_client's
CounterMetricFamily takes the name with or without it and renders the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from login_exporter.specs import SPECS, Spec

LabelValues = tuple[str, ...]
HistogramSample = tuple[LabelValues, Sequence[tuple[str, float]], float]


class Sticky:
    """Remembers every label set a gauge family ever had, so vanished ones export 0."""

    def __init__(self) -> None:
        self._seen: dict[str, set[LabelValues]] = {}

    def fill(self, name: str, values: dict[LabelValues, float]) -> dict[LabelValues, float]:
        """Return ``values`` plus 0 for every label set family ``name`` had before, sorted."""
        seen = self._seen.setdefault(name, set())
        seen.update(values)
        return {labels: values.get(labels, 0.0) for labels in sorted(seen)}


def spec(name: str, kind: str) -> Spec:
    """Return family ``name``'s spec. Raises KeyError for a name SPECS lacks, TypeError when
    SPECS gives it another type than ``kind``."""
    found = SPECS[name]
    if found.type != kind:
        raise TypeError(f"{name} is a {found.type} in SPECS, built as a {kind}")
    return found


_CLASSES: dict[str, type[GaugeMetricFamily | CounterMetricFamily]] = {
    "gauge": GaugeMetricFamily,
    "counter": CounterMetricFamily,
}


def _family(kind: str, name: str, values: dict[LabelValues, float]) -> Metric:
    found = spec(name, kind)
    result = _CLASSES[kind](name, found.help, labels=found.labels)
    for label_values, value in values.items():
        result.add_metric(label_values, value)
    return result


def gauge(name: str, values: dict[LabelValues, float]) -> Metric:
    """Return gauge ``name`` with one sample per entry of ``values`` (label values -> value),
    in their order. Raises as :func:`spec`."""
    return _family("gauge", name, values)


def counter(name: str, values: dict[LabelValues, float]) -> Metric:
    """Return counter ``name`` (see :func:`gauge`). Raises as :func:`spec`."""
    return _family("counter", name, values)


def histogram(name: str, samples: Iterable[HistogramSample], **help_fields: str) -> Metric:
    """Return histogram ``name`` with one series per sample (label values, cumulative buckets
    as (upper bound, count) pairs, sum); ``help_fields`` fill the HELP's ``{placeholders}``.
    Raises as :func:`spec`, KeyError for a placeholder not given."""
    found = spec(name, "histogram")
    result = HistogramMetricFamily(name, found.help.format(**help_fields), labels=found.labels)
    for label_values, buckets, total in samples:
        result.add_metric(list(label_values), buckets, total)
    return result
