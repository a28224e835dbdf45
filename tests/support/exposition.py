"""Reading a /metrics answer, for the tests and the benchmarks.

``parse_samples`` goes through prometheus_client's parser, so a malformed exposition fails the
test that reads it. ``samples`` and ``total`` scan the lines of one metric only: about 70 times
faster, for the benchmarks' timed loops, where a full parse would be part of the figure.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_samples(text: str) -> Samples:
    """Return {(sample name, labels): value} for a text exposition. Raises ValueError if bad."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def samples(text: str, name: str) -> Iterator[tuple[dict[str, str], float]]:
    """Yield (labels, value) for every sample of metric ``name`` in a text exposition."""
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        match = _SAMPLE.match(line)
        if match is None or match.group(1) != name:
            continue
        labels = dict(_LABEL.findall(match.group(3) or ""))
        yield labels, float(match.group(4))


def total(text: str, name: str, **want: str) -> float:
    """Return the sum of the samples of ``name`` whose labels include ``want``."""
    return sum(
        value for labels, value in samples(text, name)
        if all(labels.get(k) == v for k, v in want.items())
    )  # fmt: skip
