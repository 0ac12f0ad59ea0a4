"""Per-(station, metric) series keyed by data time, on sorted numpy arrays: a redelivered reading is
counted once, and out-of-order readings land in their place."""

from __future__ import annotations

from datetime import datetime

import numpy as np

from core.timeutil import to_ms

HOUR_MS = 3_600_000


class SeriesWindow:
    """Values of one metric of one station over the last ``keep_h`` hours of data time."""

    # _first/_last mirror the ends of _ts as Python ints: the in-order path then needs no numpy scalars.
    __slots__ = ("keep_ms", "_ts", "_v", "_n", "_first", "_last")

    def __init__(self, keep_h: float = 24, capacity: int = 64) -> None:
        self.keep_ms = int(keep_h * HOUR_MS)
        self._ts = np.zeros(capacity, dtype=np.int64)
        self._v = np.zeros(capacity, dtype=np.float64)
        self._n = 0
        self._first = self._last = 0

    def __len__(self) -> int:
        return self._n

    def add(self, ts: datetime, value: float) -> bool:
        """Insert or replace the value at ``ts``; False when it was already there unchanged."""
        return self.add_ms(to_ms(ts), value)

    def add_ms(self, t: int, value: float) -> bool:
        n = self._n
        if n == 0 or t > self._last:
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
        if i == n:
            self._last = t
        if i == 0:
            self._first = t
        if self._first < self._last - self.keep_ms:
            self._prune(self._last - self.keep_ms)
        return True

    def _prune(self, older_than: int) -> None:
        k = int(self._ts[:self._n].searchsorted(older_than, side="left"))
        n = self._n - k
        self._ts[:n] = self._ts[k:self._n]
        self._v[:n] = self._v[k:self._n]
        self._n = n
        self._first = int(self._ts[0])

    def sums(self, at_ms: int, hours: tuple[int, ...] | list[int]) -> dict[int, float]:
        """Sum of values in (at − h, at] for each window h (rain increments → rolling rain).

        One searchsorted for every window edge and one reduceat over the segments between them,
        instead of a cumulative sum of the whole day on every reading.
        """
        return self.sums_of(self._ts[:self._n], self._v[:self._n], at_ms, hours)

    @staticmethod
    def sums_of(ts: np.ndarray, v: np.ndarray, at_ms: int, hours: tuple[int, ...] | list[int]) -> dict[int, float]:
        """``sums`` over sorted times ``ts`` and their values ``v`` (shared with the matrix rows)."""
        longest_first = sorted(hours, reverse=True)
        edges = [at_ms - h * HOUR_MS for h in longest_first]
        edges.append(at_ms)
        idx = ts.searchsorted(edges, side="right").tolist()
        hi = idx.pop()
        lo = idx
        if hi == 0:
            return {h: 0.0 for h in hours}
        # A zero sentinel at hi keeps every index valid; reduceat gives a[i] (not 0) for an empty
        # segment, so segments whose start is not before the next one's are masked out.
        seg = np.add.reduceat(np.append(v[:hi], 0.0), lo).tolist()
        # seg[k] sums from the k-th window's start to the next one's; window k is the tail from k on, added up
        # from the shortest window outwards (as a cumulative sum would, in Python floats: this runs per reading).
        tails = [0.0] * len(lo)
        acc = None
        for k in range(len(lo) - 1, -1, -1):
            s = seg[k] * (1.0 if lo[k] < (lo[k + 1] if k + 1 < len(lo) else hi) else 0.0)
            acc = s if acc is None else acc + s
            tails[k] = acc
        return dict(zip(longest_first, tails))

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
