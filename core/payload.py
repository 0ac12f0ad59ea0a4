"""The wire format (docs/data-model.md, "Readings on the wire") and its validation, shared by every MQTT consumer
and producer. Topics: core.topics.

Topic ``water/{kind}/{station_id}``. Payload, JSON, UTF-8, one of:

* single: ``{"ts": "2026-06-28T14:05:00+08:00", "values": {"water_level_m": 52.31}}``
* batch:  ``{"readings": [{"ts": ..., "values": {...}}, ...]}`` (RTUs send five-minute batches)

An optional top-level ``"station_id"`` must match the topic. A message is accepted or rejected whole:
a rejected message becomes one dead letter carrying its raw bytes, so nothing in it is lost.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from typing import Any, Mapping, Sequence

from core.domain import KINDS, METRICS, Reading, Station
from core.timeutil import UTC, parse_ts
from core.topics import ROOT as TOPIC_ROOT
from core.topics import is_reading_topic, reading

__all__ = ["Rejected", "decode", "encode", "encode_batch", "is_reading_topic", "topic_for"]
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
MAX_BATCH = 10000


class Rejected(ValueError):
    """A message that cannot be accepted; ``reason`` is a short stable code, ``detail`` says why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


topic_for = reading  # the topic of a station's readings (core.topics)


def encode(ts: datetime, values: Mapping[str, float]) -> bytes:
    return json.dumps({"ts": ts.isoformat(), "values": dict(values)}, separators=(",", ":")).encode()


def encode_batch(rows: Sequence[tuple[datetime, Mapping[str, float]]]) -> bytes:
    return json.dumps({"readings": [{"ts": ts.isoformat(), "values": dict(v)} for ts, v in rows]},
                      separators=(",", ":")).encode()


def _reject_constant(name: str) -> float:
    raise ValueError(name)


# NaN/Infinity are not JSON; Python would accept them silently. One decoder for the process:
# json.loads(..., parse_constant=...) builds a new one per call, a third of the cost of a message.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
_WS = " \t\n\r"


def decode(topic: str, payload: bytes, stations: Mapping[str, Station], now: datetime, *,
           max_bytes: int = 256 * 1024, max_future_s: float = 300.0) -> list[Reading]:
    """Validate one message against the station registry; return its readings or raise Rejected."""
    if len(payload) > max_bytes:
        raise Rejected("oversized", f"payload is {len(payload)} bytes, limit {max_bytes}")
    parts = topic.split("/")
    if len(parts) != 3 or parts[0] != TOPIC_ROOT or not parts[2]:
        raise Rejected("bad_topic", f"topic must be {TOPIC_ROOT}/{{kind}}/{{station_id}}, got {topic[:200]!r}")
    _, kind, station_id = parts
    if kind not in KINDS:
        raise Rejected("unknown_kind", f"kind {kind!r} is not one of {', '.join(KINDS)}")
    station = stations.get(station_id)
    if station is None:
        raise Rejected("unknown_station", f"station {station_id!r} is not in the registry")
    if station.kind != kind:  # Kind is a str enum: compares with the topic level directly
        raise Rejected("kind_mismatch", f"station {station_id} is a {station.kind.value} station, topic says {kind}")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected("invalid_utf8", f"payload is not UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        body = text.lstrip(_WS)
        doc, end = _DECODER.raw_decode(body)
        if end != len(body) and body[end:].strip(_WS):
            raise ValueError(f"extra data after the JSON value at char {end}")
    except ValueError as exc:
        if str(exc) in ("NaN", "Infinity", "-Infinity"):
            raise Rejected("not_finite", f"payload contains {exc}") from None
        raise Rejected("invalid_json", f"payload is not JSON: {str(exc)[:200]}") from None
    except RecursionError:
        raise Rejected("invalid_json", "payload nests too deeply") from None
    if not isinstance(doc, dict):
        raise Rejected("bad_schema", f"payload must be a JSON object, got {type(doc).__name__}")
    if "station_id" in doc and doc["station_id"] != station_id:
        raise Rejected("station_mismatch", f"payload station_id {str(doc['station_id'])[:64]!r} != topic {station_id!r}")

    if "readings" in doc:
        rows = doc["readings"]
        if not isinstance(rows, list) or not rows:
            raise Rejected("bad_schema", "'readings' must be a non-empty list")
        if len(rows) > MAX_BATCH:
            raise Rejected("oversized", f"batch has {len(rows)} rows, limit {MAX_BATCH}")
    elif "values" in doc:
        rows = [doc]
    else:
        raise Rejected("bad_schema", "payload needs 'ts' and 'values', or 'readings'")

    specs = METRICS[kind]
    latest_ok = now + timedelta(seconds=max_future_s)
    out: list[Reading] = []
    for row in rows:
        if not isinstance(row, dict):
            raise Rejected("bad_schema", "each reading must be an object with 'ts' and 'values'")
        if "ts" not in row:
            raise Rejected("bad_timestamp", "reading has no 'ts'")
        try:
            ts = parse_ts(row["ts"])
        except ValueError as exc:
            raise Rejected("bad_timestamp", str(exc)) from None
        if ts > latest_ok:
            raise Rejected("future_timestamp", f"{ts.isoformat()} is more than {max_future_s:.0f} s ahead of {now.isoformat()}")
        if ts < EARLIEST:
            raise Rejected("too_old", f"{ts.isoformat()} is before {EARLIEST.date()}")
        values = row.get("values")
        if not isinstance(values, dict) or not values:
            raise Rejected("bad_schema", "'values' must be a non-empty object of metric: number")
        for metric, value in values.items():
            spec = specs.get(metric)
            if spec is None:
                raise Rejected("unknown_metric", f"{metric[:64]!r} is not a {kind} metric ({', '.join(specs)})")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise Rejected("bad_value", f"{metric} must be a number, got {type(value).__name__}")
            # NaN/Infinity literals were refused by the decoder; an inf here is a number too big
            # for a float (1e400, -1e400) and a huge int is beyond any metric's range either way.
            value = float(value) if not isinstance(value, int) or abs(value) < 2**53 else math.inf
            if value != value:
                raise Rejected("not_finite", f"{metric} is not a number")
            if math.isinf(value):
                raise Rejected("out_of_range", f"{metric} is too large to be a measurement")
            if not spec.min <= value <= spec.max:
                raise Rejected("out_of_range", f"{metric}={value:g} outside plausible {spec.min:g}..{spec.max:g} {spec.unit}")
            out.append(Reading(station_id, kind, metric, ts, value))
    return out


def loads_any(payload: bytes) -> Any:
    return json.loads(payload)
