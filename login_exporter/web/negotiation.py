"""Content negotiation: which exposition format and encoding a scraper's headers ask for."""

from __future__ import annotations

from typing import Final, Protocol

__all__ = [
    "OPENMETRICS_CONTENT_TYPE",
    "TEXT_CONTENT_TYPE",
    "Memo",
    "Negotiator",
    "accepts_gzip",
    "wants_openmetrics",
]

TEXT_CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE: Final = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def _parse_list(header: str) -> list[tuple[str, dict[str, str], float]]:
    """Split an Accept / Accept-Encoding value into (token, params, q) items."""
    items = []
    for part in header.split(","):
        token, *params = part.split(";")
        token = token.strip().lower()
        if not token:
            continue
        q = 1.0
        extra: dict[str, str] = {}
        for param in params:
            name, _, value = param.partition("=")
            name = name.strip().lower()
            value = value.strip().strip('"')
            if name == "q":
                try:
                    q = max(0.0, min(1.0, float(value)))
                except ValueError:
                    q = 0.0
            else:
                extra[name] = value
        items.append((token, extra, q))
    return items


def wants_openmetrics(accept: str) -> bool:
    """True when OpenMetrics 1.0.0 ranks at least as high as text/plain in the Accept header."""
    q_openmetrics = 0.0
    q_text = 0.0
    for token, params, q in _parse_list(accept):
        if token == "application/openmetrics-text":
            version = params.get("version", "1.0.0")
            if version.startswith(("1.", "0.0.1")):
                q_openmetrics = max(q_openmetrics, q)
        elif token in ("text/plain", "text/*", "*/*"):
            q_text = max(q_text, q)
    return q_openmetrics > 0 and q_openmetrics >= q_text


def accepts_gzip(accept_encoding: str) -> bool:
    """True when the Accept-Encoding header allows gzip (by name or by ``*``) with q > 0."""
    gzip_q: float | None = None
    star_q: float | None = None
    for token, _, q in _parse_list(accept_encoding):
        if token in ("gzip", "x-gzip"):
            gzip_q = q if gzip_q is None else max(gzip_q, q)
        elif token == "*":
            star_q = q
    if gzip_q is not None:
        return gzip_q > 0
    return star_q is not None and star_q > 0


class Decider(Protocol):
    """A pure function of one header value."""

    def __call__(self, value: str, /) -> bool: ...


class Negotiator:
    """Chooses the format and encoding of an exposition from a request's headers.

    Scrapers send the same few Accept and Accept-Encoding values every time, so each answer is
    memoized per header value (a bounded cache): the hot path is two dict lookups.
    """

    def __init__(self) -> None:
        self._openmetrics = Memo(wants_openmetrics)
        self._gzip = Memo(accepts_gzip)

    def __call__(self, accept: str | None, accept_encoding: str | None) -> tuple[bool, bool]:
        """Return (OpenMetrics wanted, gzip accepted); a missing header means no."""
        return (
            accept is not None and self._openmetrics(accept),
            accept_encoding is not None and self._gzip(accept_encoding),
        )


class Memo:
    """A bounded header-value -> answer cache; clients send the same few headers every time.

    Plain dict operations are atomic under the GIL, so readers need no lock; a racing clear()
    only costs a recomputation.
    """

    def __init__(self, compute: Decider, limit: int = 256) -> None:
        self._compute = compute
        self._limit = limit
        self._answers: dict[str, bool] = {}

    def __call__(self, value: str) -> bool:
        answer = self._answers.get(value)
        if answer is None:
            answer = self._compute(value)
            if len(self._answers) >= self._limit:
                self._answers.clear()
            self._answers[value] = answer
        return answer

