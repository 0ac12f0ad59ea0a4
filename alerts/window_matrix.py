"""The windows of one metric for many stations in one pair of 2-D arrays, so that a batch of readings can be
appended and queried with a handful of numpy operations instead of one Python call per station.

Row ``r`` holds one station's points, oldest first, in the contiguous columns ``[head[r], head[r] + n[r])``;
pruning advances ``head``, appending writes at ``head + n``. When a row reaches the last column it is moved
back to column 0, or the whole matrix doubles its columns when rows are at least half full, so both cost
O(1) per point amortised. A row that would make the matrix grow while most of it is empty (a station that
reports far more often than its peers) is *spilled* into its own :class:`SeriesWindow` instead: the family
then stays dense, and that row is served one reading at a time.

The content of every row is exactly what a :class:`SeriesWindow` fed the same readings would hold (same
points, same order, same pruning): :class:`RowWindow` gives the scalar path the SeriesWindow interface over
a row, and the vectorised pass in ``alerts.batch`` uses :meth:`SeriesMatrix.append` and
:meth:`SeriesMatrix.bound` on many rows at once.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np

from alerts.windows import HOUR_MS, SeriesWindow
from core.timeutil import to_ms

# A matrix this small (bytes) may always grow; above it, growth must leave it at least 1/8 full.
_SMALL_BYTES = 16 * 2**20
_MIN_FILL_AFTER_GROWTH = 1 / 8


class SeriesMatrix:
    """Windows of ``keep_h`` hours of data time for many rows (stations) of one metric.

    ``running_sums`` keeps ``cs[r, j]``, the running total of the row's values up to column ``j``, so the sum
    of any run of points is a difference of two entries (rain windows); it is an approximation of the exact
    sums (rounding), used only to find the rows that certainly cannot trigger anything.
    """

    def __init__(self, keep_h: float = 24, capacity: int = 64, running_sums: bool = False) -> None:
        self.keep_ms = int(keep_h * HOUR_MS)
        self.cap = capacity
        self.rows = 0
        self.ts = np.zeros((0, capacity), dtype=np.int64)
        self.v = np.zeros((0, capacity), dtype=np.float64)
        self.cs = np.zeros((0, capacity), dtype=np.float64) if running_sums else None
        self.head = np.zeros(0, dtype=np.int64)
        self.n = np.zeros(0, dtype=np.int64)
        self.last = np.zeros(0, dtype=np.int64)  # newest time of each row (valid when n > 0)
        self.is_spilled = np.zeros(0, dtype=bool)
        self.spilled: dict[int, SeriesWindow] = {}
        # One RowWindow per row, handed out again: callers may hold on to it (the engine's per-station plans
        # do), so a spill must reach it (see _spill).
        self._views: dict[int, RowWindow] = {}

    # -- rows ----------------------------------------------------------------------------------------------
    def add_rows(self, k: int) -> int:
        """Append ``k`` empty rows; returns the index of the first."""
        first = self.rows
        need = first + k
        if need > len(self.head):
            size = max(need, 2 * len(self.head), 16)

            def grown(a: np.ndarray) -> np.ndarray:
                out = np.zeros((size,) + a.shape[1:], dtype=a.dtype)
                out[:len(a)] = a
                return out

            self.ts, self.v = grown(self.ts), grown(self.v)
            if self.cs is not None:
                self.cs = grown(self.cs)
            self.head, self.n, self.last = grown(self.head), grown(self.n), grown(self.last)
            self.is_spilled = grown(self.is_spilled)
        self.rows = need
        return first

    def window(self, r: int) -> "RowWindow | SeriesWindow":
        w = self.spilled.get(r)
        if w is not None:
            return w
        v = self._views.get(r)
        if v is None:
            v = self._views[r] = RowWindow(self, r)
        return v

    @property
    def points(self) -> int:
        return int(self.n[:self.rows].sum()) + sum(len(w) for w in self.spilled.values())

    @property
    def nbytes(self) -> int:
        arrays = [self.ts, self.v, self.head, self.n, self.last] + ([self.cs] if self.cs is not None else [])
        return sum(a.nbytes for a in arrays) + sum(w._ts.nbytes + w._v.nbytes for w in self.spilled.values())

    # -- room at the end of rows ------------------------------------------------------------------------------
    def _grow(self) -> None:
        cap = self.cap * 2

        def wider(a: np.ndarray) -> np.ndarray:
            out = np.zeros((a.shape[0], cap), dtype=a.dtype)
            out[:, :self.cap] = a
            return out

        self.ts, self.v = wider(self.ts), wider(self.v)
        if self.cs is not None:
            self.cs = wider(self.cs)
        self.cap = cap

    def _compact(self, rows: np.ndarray) -> None:
        """Move the points of ``rows`` to column 0."""
        cols = np.minimum(self.head[rows][:, None] + np.arange(self.cap), self.cap - 1)
        for a in (self.ts, self.v) + ((self.cs,) if self.cs is not None else ()):
            a[rows] = np.take_along_axis(a[rows], cols, axis=1)
        self.head[rows] = 0

    def _spill(self, r: int) -> None:
        h, n = int(self.head[r]), int(self.n[r])
        w = SeriesWindow(keep_h=self.keep_ms / HOUR_MS, capacity=max(64, 2 * n))
        w.keep_ms = self.keep_ms
        w._ts[:n], w._v[:n], w._n = self.ts[r, h:h + n], self.v[r, h:h + n], n
        if n:
            w._first, w._last = int(self.ts[r, h]), int(self.ts[r, h + n - 1])
        self.spilled[r] = w
        self.is_spilled[r] = True
        view = self._views.get(r)
        if view is not None:
            view.w = w
        self.n[r] = self.head[r] = 0

    def _may_grow(self) -> bool:
        after = self.rows * self.cap * 2
        if after * (24 if self.cs is not None else 16) <= _SMALL_BYTES:
            return True
        return int(self.n[:self.rows].sum()) >= _MIN_FILL_AFTER_GROWTH * after

    def _make_room(self, rows: np.ndarray) -> np.ndarray:
        """Rows whose last column is taken: compact them, grow the matrix, or spill the fullest ones.
        Returns the rows that were spilled."""
        full = self.n[rows] * 2 >= self.cap
        spill = rows[:0]
        if full.any():
            if self._may_grow():
                self._grow()
                return spill
            spill = rows[full]
            for r in spill.tolist():
                self._spill(r)
            rows = rows[~full]
        if len(rows):
            self._compact(rows)
        return spill

    # -- many rows at once --------------------------------------------------------------------------------------
    def append(self, rows: np.ndarray, t: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Append one point to each of ``rows`` (distinct, not spilled, each ``t`` newer than the row's newest)
        and prune what falls out of the window. Returns a mask of the rows spilled meanwhile: their point went
        to their own SeriesWindow, so they must be read one at a time."""
        spilled = np.zeros(len(rows), dtype=bool)
        at_end = self.head[rows] + self.n[rows] >= self.cap
        if at_end.any():
            gone = self._make_room(rows[at_end])
            if len(gone):
                spilled = np.isin(rows, gone)
                for j in np.flatnonzero(spilled).tolist():
                    self.spilled[int(rows[j])].add_ms(int(t[j]), float(values[j]))
                keep = ~spilled
                rows, t, values = rows[keep], t[keep], values[keep]
        head, n = self.head[rows], self.n[rows]
        col = head + n
        self.ts[rows, col] = t
        self.v[rows, col] = values
        if self.cs is not None:
            prev = np.where(n > 0, self.cs[rows, np.maximum(col - 1, 0)], 0.0)
            self.cs[rows, col] = prev + values
        n = n + 1
        self.n[rows] = n
        self.last[rows] = t
        # Prune: usually one point per row (a regular reporter), so step before searching.
        limit = t - self.keep_ms
        for _ in range(3):
            old = self.ts[rows, head] < limit
            if not old.any():
                return spilled
            rows, head, limit = rows[old], head[old] + 1, limit[old]
            self.head[rows] = head
            self.n[rows] -= 1
        k = self.bound(rows, limit, right=False)
        self.head[rows] += k
        self.n[rows] -= k
        return spilled

    def bound(self, rows: np.ndarray, targets: np.ndarray, right: bool) -> np.ndarray:
        """Per row, the count of its points with time < target (``right``: <= target), i.e. searchsorted on
        each row; ``targets`` is (len(rows),) or (len(rows), k). A bisection with the rows side by side."""
        targets = np.asarray(targets, dtype=np.int64)
        shape = targets.shape
        if targets.ndim == 2:
            rows = np.repeat(rows, shape[1])
            targets = targets.ravel()
        base = rows * self.cap + self.head[rows]
        flat = self.ts.reshape(-1)
        lo = np.zeros(len(rows), dtype=np.int64)
        hi = self.n[rows].copy()
        steps = int(hi.max()).bit_length() if len(hi) else 0
        for _ in range(steps):
            live = lo < hi
            mid = (lo + hi) >> 1
            got = flat[base + np.minimum(mid, self.cap - 1)]
            go = (got <= targets) if right else (got < targets)
            go &= live
            lo = np.where(go, mid + 1, lo)
            hi = np.where(live & ~go, mid, hi)
        return lo.reshape(shape)

    def at(self, rows: np.ndarray, k: np.ndarray, array: np.ndarray | None = None) -> np.ndarray:
        """``array`` (default the values) at each row's k-th point (k must be < n)."""
        a = self.v if array is None else array
        return a[rows, self.head[rows] + k]


class RowWindow:
    """One row of a SeriesMatrix behind the SeriesWindow interface (the one-reading-at-a-time path)."""

    __slots__ = ("m", "r", "w")

    def __init__(self, m: SeriesMatrix, r: int) -> None:
        self.m, self.r = m, r
        self.w: SeriesWindow | None = None  # set when the row is spilled under our feet

    def __len__(self) -> int:
        return len(self.w) if self.w is not None else self.m.n.item(self.r)

    def _span(self) -> tuple[np.ndarray, np.ndarray]:
        m, r = self.m, self.r
        h = m.head.item(r)
        e = h + m.n.item(r)
        return m.ts[r, h:e], m.v[r, h:e]

    def add(self, ts: datetime, value: float) -> bool:
        return self.add_ms(to_ms(ts), value)

    # Scalars are read with .item() (a Python int/float, no numpy scalar): this runs once per live reading.
    def add_ms(self, t: int, value: float) -> bool:
        """Insert or replace the value at ``t``; False when it was already there unchanged."""
        if self.w is not None:
            return self.w.add_ms(t, value)
        m, r = self.m, self.r
        n = m.n.item(r)
        h = m.head.item(r)
        if n == 0 or t > m.last.item(r):
            c = h + n
            if c < m.cap:  # in order with room at the end: the common case, written out without slices
                m.ts[r, c] = t
                m.v[r, c] = value
                cs = m.cs
                if cs is not None:
                    cs[r, c] = (cs.item(r, c - 1) if n else 0.0) + value
                m.n[r] = n + 1
                m.last[r] = t
                limit = t - m.keep_ms
                if m.ts.item(r, h) < limit:
                    k = int(m.ts[r, h:c + 1].searchsorted(limit, side="left"))
                    m.head[r] = h + k
                    m.n[r] = n + 1 - k
                return True
            i = n
        else:
            i = int(m.ts[r, h:h + n].searchsorted(t))
            if i < n and m.ts.item(r, h + i) == t:
                changed = m.v.item(r, h + i) != value
                m.v[r, h + i] = value
                self._resum(h + i, h + n)
                return changed
        if h + n >= m.cap:
            if len(m._make_room(np.array([r]))):
                self.w = m.spilled[r]
                return self.w.add_ms(t, value)
        h = m.head.item(r)
        if i < n:
            m.ts[r, h + i + 1:h + n + 1] = m.ts[r, h + i:h + n]
            m.v[r, h + i + 1:h + n + 1] = m.v[r, h + i:h + n]
        m.ts[r, h + i], m.v[r, h + i] = t, value
        m.n[r] = n + 1
        if i == n:
            m.last[r] = t
        self._resum(h + i, h + n + 1)
        limit = m.last.item(r) - m.keep_ms
        if m.ts.item(r, h) < limit:
            k = int(m.ts[r, h:h + n + 1].searchsorted(limit, side="left"))
            m.head[r] = h + k
            m.n[r] = n + 1 - k
        return True

    def _resum(self, start: int, end: int) -> None:
        """Running totals from column ``start`` to the row's end after a change there."""
        cs = self.m.cs
        if cs is None or start >= end:
            return
        r, h = self.r, self.m.head.item(self.r)
        base = cs[r, start - 1] if start > h else 0.0
        cs[r, start:end] = base + np.cumsum(self.m.v[r, start:end])

    def sums(self, at_ms: int, hours: tuple[int, ...] | list[int]) -> dict[int, float]:
        if self.w is not None:
            return self.w.sums(at_ms, hours)
        return SeriesWindow.sums_of(*self._span(), at_ms, hours)

    def first_since(self, since_ms: int) -> tuple[int, float] | None:
        if self.w is not None:
            return self.w.first_since(since_ms)
        m, r = self.m, self.r
        h = m.head.item(r)
        n = m.n.item(r)
        i = int(m.ts[r, h:h + n].searchsorted(since_ms, side="left"))
        return (m.ts.item(r, h + i), m.v.item(r, h + i)) if i < n else None

    def last(self, n: int = 1) -> np.ndarray:
        if self.w is not None:
            return self.w.last(n)
        _, v = self._span()
        return v[max(0, len(v) - n):]

    def before(self, t_ms: int) -> tuple[int, float] | None:
        if self.w is not None:
            return self.w.before(t_ms)
        m, r = self.m, self.r
        h = m.head.item(r)
        n = m.n.item(r)
        last = m.last.item(r) if n else None
        # Times in a row are distinct and sorted: the reading just appended (last == t) or a time past the
        # newest needs no search.
        if last is not None and last < t_ms:
            i = n
        elif last == t_ms:
            i = n - 1
        else:
            i = int(m.ts[r, h:h + n].searchsorted(t_ms, side="left"))
        return (m.ts.item(r, h + i - 1), m.v.item(r, h + i - 1)) if i > 0 else None

    @property
    def latest(self) -> int | None:
        if self.w is not None:
            return self.w.latest
        m, r = self.m, self.r
        n = m.n.item(r)
        return m.ts.item(r, m.head.item(r) + n - 1) if n else None
