"""Reading a /metrics answer, for the tests and the benchmarks.

``parse_samples`` goes through prometheus_client's parser, so a malformed exposition fails the
test that reads it. ``samples`` and ``total`` scan the lines of one metric only: about 70 times
faster, for the benchmarks' timed loops, where a full parse would be part of the figure.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Exposition:
    """One parsed scrape: sample name + labels -> value."""

    samples: Mapping[tuple[str, frozenset[tuple[str, str]]], float]
    text: str

    @classmethod
    def parse(cls, text: str) -> Exposition:
        """Return the parsed text. Raises ValueError when it is no valid exposition."""
        return cls(parse_samples(text), text)

    def get(self, name: str, **labels: str) -> float | None:
        """The sample's value, or None when the series is absent."""
        return self.samples.get((name, frozenset(labels.items())))

    def value(self, name: str, **labels: str) -> float:
        """The sample's value; 0.0 when the series is absent."""
        v = self.samples.get((name, frozenset(labels.items())))
        return 0.0 if v is None else v

    def series(self, name: str) -> dict[frozenset[tuple[str, str]], float]:
        return {labels: v for (n, labels), v in self.samples.items() if n == name}

    def nonzero(self, name: str, keys: Iterable[str]) -> Counter[tuple[str, ...]]:
        """Series of ``name`` with a non-zero value, keyed by the given label names."""
        out: Counter[tuple[str, ...]] = Counter()
        for labels, v in self.series(name).items():
            if v:
                d = dict(labels)
                out[tuple(d.get(k, "") for k in keys)] += int(v)
        return out


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
