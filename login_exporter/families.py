"""Building blocks of metric families, shared by every family source (collector.py for what
sd-login says, presence.py for what the bus says).

Counter names are written with their ``_total`` suffix, as exposed: prometheus_client's
CounterMetricFamily takes the name with or without it and renders the same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

LabelValues = tuple[str, ...]


class Sticky:
    """Remembers every label set a gauge family ever had, so vanished ones export 0."""

    def __init__(self) -> None:
        self._seen: dict[str, set[LabelValues]] = {}

    def fill(self, name: str, values: dict[LabelValues, float]) -> dict[LabelValues, float]:
        """Return ``values`` plus 0 for every label set family ``name`` had before, sorted."""
        seen = self._seen.setdefault(name, set())
        seen.update(values)
        return {labels: values.get(labels, 0.0) for labels in sorted(seen)}


def family(
    kind: type[GaugeMetricFamily | CounterMetricFamily],
    name: str,
    doc: str,
    labels: Sequence[str],
    values: dict[LabelValues, float],
) -> Metric:
    """Return a family of ``kind`` with one sample per entry of ``values`` (label values ->
    value), in their order."""
    result = kind(name, doc, labels=labels)
    for label_values, value in values.items():
        result.add_metric(label_values, value)
    return result


gauge = partial(family, GaugeMetricFamily)
"""A gauge family: gauge(name, doc, labels, values)."""


def counter(
    name: str, doc: str, labels: Sequence[str], values: dict[LabelValues, float]
) -> Metric:
    """Return a counter family (see :func:`family`). Raises ValueError unless ``name`` ends in
    ``_total``: the name is written as exposed, so grep finds where a counter is defined."""
    if not name.endswith("_total"):
        raise ValueError(f"counter {name!r}: write the name as exposed, with _total")
    return family(CounterMetricFamily, name, doc, labels, values)
