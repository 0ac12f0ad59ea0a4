"""Bucketed series with prefix sums: the total over any [a, b) in O(log n), so reports over a year of hourly or
daily buckets stay linear in the number of periods instead of periods × buckets."""

from __future__ import annotations

import bisect
from datetime import datetime
from itertools import accumulate
from typing import Sequence


class Prefix:
    """Sorted (time, value) buckets; ``between(a, b)`` sums the buckets whose time lies in [a, b)."""

    __slots__ = ("times", "values", "_cum")

    def __init__(self, rows: Sequence[tuple[datetime, float]]) -> None:
        rows = sorted(rows)
        self.times = [t for t, _ in rows]
        self.values = [v for _, v in rows]
        self._cum = [0.0, *accumulate(self.values)]

    def span(self, a: datetime, b: datetime) -> tuple[int, int]:
        return bisect.bisect_left(self.times, a), bisect.bisect_left(self.times, b)

    def between(self, a: datetime, b: datetime) -> float:
        i, j = self.span(a, b)
        return self._cum[j] - self._cum[i]

    def count_between(self, a: datetime, b: datetime) -> int:
        i, j = self.span(a, b)
        return j - i

    def rows(self, a: datetime, b: datetime) -> list[tuple[datetime, float]]:
        i, j = self.span(a, b)
        return list(zip(self.times[i:j], self.values[i:j]))
