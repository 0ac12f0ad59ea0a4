"""Replay historical readings (``ts,station_id,metric,value`` CSV) to the broker in data-time order,
so a past storm runs through ingest and the alert engine and alerts at the data times it would have."""

from __future__ import annotations

import csv
import logging
import math
import threading
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterable, Mapping

from core.domain import METRICS, Station
from core.mqtt import Publisher
from core.payload import encode, topic_for
from core.settings import Settings
from core.timeutil import parse_ts

log = logging.getLogger("simulators.replay")

MAX_OUTSTANDING = 20_000


def read_replay_csv(path: str | Path, stations: Mapping[str, Station]) -> list[tuple[datetime, str, dict[str, float]]]:
    """Messages to publish, oldest first: readings of one station at one time share a message.

    Raises ValueError naming the line of the first bad row; nothing is published from a bad file.
    """
    grouped: dict[tuple[datetime, str], dict[str, float]] = defaultdict(dict)
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"ts", "station_id", "metric", "value"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: header must have ts,station_id,metric,value (missing {', '.join(sorted(missing))})")
        for line, row in enumerate(reader, start=2):
            try:
                ts = parse_ts(row["ts"])
                st = stations.get(row["station_id"])
                if st is None:
                    raise ValueError(f"unknown station {row['station_id']!r}")
                if row["metric"] not in METRICS[st.kind.value]:
                    raise ValueError(f"{row['metric']!r} is not a {st.kind.value} metric")
                value = float(row["value"])
                if not math.isfinite(value):
                    raise ValueError("value is not a finite number")
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{path}, line {line}: {exc}") from None
            grouped[(ts, st.id)][row["metric"]] = value
    return [(ts, sid, values) for (ts, sid), values in sorted(grouped.items(), key=lambda kv: kv[0])]


def replay(settings: Settings, stations: Mapping[str, Station], messages: Iterable[tuple[datetime, str, dict]],
           speed: float = 0.0, stop: threading.Event | None = None,
           progress: Callable[[int], None] | None = None) -> int:
    """Publish ``messages`` in order; ``speed`` data seconds per real second (0: as fast as the broker takes).
    Returns how many were published and acknowledged by the broker."""
    stop = stop or threading.Event()
    pub = Publisher(settings, f"{settings.mqtt_client_prefix}-replay-{int(time.time() * 1000) % 10**8}",
                    max_inflight=0).start()
    sent = 0
    try:
        wall0 = time.monotonic()
        data0: datetime | None = None
        for ts, sid, values in messages:
            if stop.is_set():
                break
            if speed > 0:
                data0 = data0 or ts
                due = wall0 + (ts - data0).total_seconds() / speed
                if stop.wait(max(0.0, due - time.monotonic())):
                    break
            if not pub.wait_for_room(MAX_OUTSTANDING, stop):
                break
            pub.publish(topic_for(stations[sid].kind.value, sid), encode(ts, values))
            sent += 1
            if progress:
                progress(1)
        pub.flush(timeout=60)
    finally:
        pub.stop()
    return sent
