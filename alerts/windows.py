"""Per-(station, metric) series keyed by data time, on sorted numpy arrays: a redelivered reading is
counted once, and out-of-order readings land in their place."""

from __future__ import annotations

from datetime import datetime

import numpy as np

from core.timeutil import to_ms

HOUR_MS = 3_600_000


class SeriesWindow:
    """Values of one metric of one station over the last ``keep_h`` hours of data time."""

    __slots__ = ("keep_ms", "_ts", "_v", "_n")

    def __init__(self, keep_h: float = 24, capacity: int = 64) -> None:
        self.keep_ms = int(keep_h * HOUR_MS)
        self._ts = np.zeros(capacity, dtype=np.int64)
        self._v = np.zeros(capacity, dtype=np.float64)
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def add(self, ts: datetime, value: float) -> bool:
        """Insert or replace the value at ``ts``; False when it was already there unchanged."""
        t = to_ms(ts)
        n = self._n
        if n and t > self._ts[n - 1]:
            i = n  # the common case: in order
        else:
            i = int(np.searchsorted(self._ts[:n], t))
            if i < n and self._ts[i] == t:
                changed = self._v[i] != value
                self._v[i] = value
                return bool(changed)
        if n == len(self._ts):
            self._ts = np.concatenate([self._ts, np.zeros_like(self._ts)])
            self._v = np.concatenate([self._v, np.zeros_like(self._v)])
        if i < n:
            self._ts[i + 1:n + 1] = self._ts[i:n]
            self._v[i + 1:n + 1] = self._v[i:n]
        self._ts[i], self._v[i] = t, value
        self._n = n + 1
        self._prune(int(self._ts[self._n - 1]) - self.keep_ms)
        return True

    def _prune(self, older_than: int) -> None:
        if self._ts[0] >= older_than:
            return
        k = int(np.searchsorted(self._ts[:self._n], older_than, side="left"))
        n = self._n - k
        self._ts[:n] = self._ts[k:self._n]
        self._v[:n] = self._v[k:self._n]
        self._n = n

    def sums(self, at_ms: int, hours: tuple[int, ...] | list[int]) -> dict[int, float]:
        """Sum of values in (at − h, at] for each window h (rain increments → rolling rain)."""
        ts = self._ts[:self._n]
        csum = np.concatenate([[0.0], np.cumsum(self._v[:self._n])])
        hi = int(np.searchsorted(ts, at_ms, side="right"))
        return {h: float(csum[hi] - csum[int(np.searchsorted(ts, at_ms - h * HOUR_MS, side="right"))])
                for h in hours}

    def first_since(self, since_ms: int) -> tuple[int, float] | None:
        """The oldest point at or after ``since_ms``."""
        i = int(np.searchsorted(self._ts[:self._n], since_ms, side="left"))
        return (int(self._ts[i]), float(self._v[i])) if i < self._n else None

    def last(self, n: int = 1) -> np.ndarray:
        return self._v[max(0, self._n - n):self._n]

    def before(self, t_ms: int) -> tuple[int, float] | None:
        """The newest point strictly before ``t_ms``."""
        i = int(np.searchsorted(self._ts[:self._n], t_ms, side="left"))
        return (int(self._ts[i - 1]), float(self._v[i - 1])) if i > 0 else None

    @property
    def latest(self) -> int | None:
        return int(self._ts[self._n - 1]) if self._n else None
