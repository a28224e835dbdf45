"""The one table the benchmark prints: one row per measured figure, in Markdown and as JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

COLUMNS = ("figure", "N", "value", "x C floor", "target", "met")


@dataclass
class Row:
    """One measured figure.

    ``value`` is the figure in ``unit`` (None when it could not be measured; ``note`` says why),
    ``ratio`` the value over the C floor's full pass measured in the same run at the same N.
    ``met`` is True/False when the row has a target that this value can be checked against.
    """

    figure: str
    n: str
    value: float | None
    unit: str
    ratio: float | None = None
    target: str = ""
    met: bool | None = None
    note: str = ""

    def cells(self) -> tuple[str, ...]:
        """The row as Markdown cells, in COLUMNS order."""
        if self.value is None:
            shown = f"n/a ({self.note})" if self.note else "n/a"
        else:
            shown = f"{format_value(self.value)} {self.unit}".strip()
            if self.note:
                shown += f" ({self.note})"
        ratio = "" if self.ratio is None else f"{self.ratio:.2f}x"
        met = "" if self.met is None else ("yes" if self.met else "**no**")
        return (self.figure, self.n, shown, ratio, self.target, met)


def format_value(value: float) -> str:
    """Three significant digits, thousands separated (1,234 / 12.3 / 0.0123)."""
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def render(rows: list[Row]) -> str:
    """The rows as one Markdown table (header, separator, one line per row)."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        lines.append("| " + " | ".join(c.replace("|", "/") for c in row.cells()) + " |")
    return "\n".join(lines)


def write_json(rows: list[Row], path: Path, meta: dict[str, object]) -> None:
    """Write the rows and run metadata as JSON (what tests and scripts read)."""
    path.write_text(json.dumps({"meta": meta, "rows": [asdict(r) for r in rows]}, indent=1))
