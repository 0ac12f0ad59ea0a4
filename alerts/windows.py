"""Per-station rolling rain sums keyed by data time, so a redelivered reading is counted once and
out-of-order readings land in the right place."""

from __future__ import annotations

from datetime import datetime

import numpy as np

from core.timeutil import to_ms

HOUR_MS = 3_600_000


class RainWindow:
    """Rain increments of one gauge over the last ``keep_h`` hours (of data time)."""

    __slots__ = ("keep_ms", "_ts", "_mm", "_n")

    def __init__(self, keep_h: int = 24, capacity: int = 512) -> None:
        self.keep_ms = keep_h * HOUR_MS
        self._ts = np.zeros(capacity, dtype=np.int64)
        self._mm = np.zeros(capacity, dtype=np.float64)
        self._n = 0

    def add(self, ts: datetime, mm: float) -> None:
        t = to_ms(ts)
        n = self._n
        ts_arr = self._ts[:n]
        i = int(np.searchsorted(ts_arr, t))
        if i < n and ts_arr[i] == t:
            self._mm[i] = mm  # the same report again: replace, never add twice
            return
        if n == len(self._ts):
            self._grow()
        self._ts[i + 1:n + 1] = self._ts[i:n]
        self._mm[i + 1:n + 1] = self._mm[i:n]
        self._ts[i], self._mm[i] = t, mm
        self._n = n + 1
        self._prune(int(self._ts[self._n - 1]) - self.keep_ms)

    def _grow(self) -> None:
        self._ts = np.concatenate([self._ts, np.zeros_like(self._ts)])
        self._mm = np.concatenate([self._mm, np.zeros_like(self._mm)])

    def _prune(self, older_than: int) -> None:
        k = int(np.searchsorted(self._ts[:self._n], older_than, side="right"))
        if k:
            n = self._n - k
            self._ts[:n] = self._ts[k:self._n]
            self._mm[:n] = self._mm[k:self._n]
            self._n = n

    def sums(self, at: datetime, hours: tuple[int, ...]) -> dict[int, float]:
        """Sum of increments in (at − h, at] for each window h."""
        t = to_ms(at)
        ts = self._ts[:self._n]
        csum = np.concatenate([[0.0], np.cumsum(self._mm[:self._n])])
        hi = int(np.searchsorted(ts, t, side="right"))
        out = {}
        for h in hours:
            lo = int(np.searchsorted(ts, t - h * HOUR_MS, side="right"))
            out[h] = float(csum[hi] - csum[lo])
        return out

    @property
    def latest(self) -> int | None:
        return int(self._ts[self._n - 1]) if self._n else None
