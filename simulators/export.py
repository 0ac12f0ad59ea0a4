"""A scenario's readings straight to a replay CSV (``ts,station_id,metric,value``), without a broker.

The same reports the runner would publish (same schedule, values and sensor faults), so a file written here
and replayed with ``smartwater replay`` drives ingest and the alert engine like a live run, but in seconds.
"""

from __future__ import annotations

import csv
import heapq
import math
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterator, Sequence

from core.csvcell import safe_row
from core.domain import Station
from simulators.faults import FaultPlan
from simulators.runner import first_due, report_messages, station_phase
from simulators.scenarios import Scenario
from simulators.spec import ScenarioSpec


def reports(stations: Sequence[Station], spec: ScenarioSpec, seed: int, start: datetime,
            duration_s: float) -> Iterator[tuple[float, Station, list[tuple[float, dict]]]]:
    """Each report due in [start, start + duration_s), in due-time order: (due, station, messages sent)."""
    scenario = Scenario(stations, spec, seed, start, start.tzinfo)
    faults = FaultPlan(spec.sensor_faults, stations, seed, start.timestamp())
    t0 = start.timestamp()
    end = t0 + duration_s
    heap = [(first_due(station_phase(seed, s), s.interval_s, t0), i) for i, s in enumerate(stations)]
    heapq.heapify(heap)
    while heap and heap[0][0] < end:
        due, i = heapq.heappop(heap)
        s = stations[i]
        yield due, s, report_messages(scenario, faults, s, due)
        heapq.heappush(heap, (due + s.interval_s, i))


def count_reports(stations: Sequence[Station], start: datetime, duration_s: float, seed: int) -> int:
    """How many reports ``reports`` will yield (for a progress bar's total)."""
    t0 = start.timestamp()
    end = t0 + duration_s
    n = 0
    for s in stations:
        first = first_due(station_phase(seed, s), s.interval_s, t0)
        if first < end:
            n += math.ceil((end - first) / s.interval_s)  # due times first, first + interval, … before end
    return n


def write_csv(path: str | Path, stations: Sequence[Station], spec: ScenarioSpec, seed: int, start: datetime,
              duration_s: float, progress: Callable[[int], None] | None = None) -> int:
    """Write the readings; returns the number of rows. ``progress(n)`` is called every few hundred reports."""
    tz = start.tzinfo
    rows = 0
    pending = 0
    with open(path, "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(("ts", "station_id", "metric", "value"))
        for _due, station, messages in reports(stations, spec, seed, start, duration_s):
            for ts, values in messages:
                stamp = datetime.fromtimestamp(ts, tz).isoformat()
                for metric, value in values.items():
                    out.writerow(safe_row((stamp, station.id, metric, repr(float(value)))))
                    rows += 1
            pending += 1
            if progress is not None and pending >= 500:
                progress(pending)
                pending = 0
    if progress is not None and pending:
        progress(pending)
    return rows
