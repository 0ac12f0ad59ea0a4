"""Parsing and checking of query parameters that need more than a type: times, durations, station ids."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from api.errors import echo, invalid

UTC = timezone.utc

# The id pattern of core.domain.Station: anything else cannot name a station, so it is a 404 without a query.
STATION_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

# An unencoded "+08:00" in a query string arrives as " 08:00" ('+' means space in form encoding).
_LOST_PLUS = re.compile(r"^(?P<head>.*\d:\d{2}(?::\d{2}(?:\.\d+)?)?) (?P<off>\d{2}(?::?\d{2})?)$")

_DURATION = re.compile(r"^\s*(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>s|sec|m|min|h|d|w)?\s*$", re.IGNORECASE)
_UNIT_S = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

# What every back-end can store: InfluxDB keeps nanoseconds since the epoch in an int64 (1677-09-21 .. 2262-04-11).
MIN_TIME = datetime(1678, 1, 1, tzinfo=UTC)
MAX_TIME = datetime(2262, 1, 1, tzinfo=UTC)

TIME_HELP = "ISO 8601 with a UTC offset, e.g. 2026-06-28T14:05:00+08:00 or 2026-06-28T06:05:00Z"


def parse_time(name: str, value: str | None) -> datetime | None:
    """An ISO 8601 query parameter with an offset, as aware UTC; None when absent. 422 otherwise."""
    if value is None:
        return None
    text = value.strip()
    m = _LOST_PLUS.match(text)
    if m:
        text = f"{m['head']}+{m['off']}"
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        invalid("query", name, f"{name} must be {TIME_HELP}; got {echo(value)}", value)
    if ts.tzinfo is None:
        invalid("query", name, f"{name} has no UTC offset; use {TIME_HELP}; got {echo(value)}", value)
    try:
        ts = ts.astimezone(UTC)
    except OverflowError:
        ts = MIN_TIME - timedelta(days=1)  # reported just below
    if not MIN_TIME <= ts < MAX_TIME:
        invalid("query", name, f"{name} must be between {MIN_TIME.year} and {MAX_TIME.year - 1}; got {echo(value)}",
                value)
    return ts


def parse_every(value: str, max_s: int) -> int:
    """A bucket length: seconds ("300") or a number with a unit (30s, 5m, 1h, 1d, 1w). 422 otherwise."""
    m = _DURATION.match(value)
    if not m:
        invalid("query", "every", f"every must be seconds or a duration like 30s, 5m, 1h, 1d; got {echo(value)}",
                value)
    seconds = float(m["n"]) * _UNIT_S[(m["unit"] or "s").lower()]
    if seconds < 1:
        invalid("query", "every", f"every must be at least 1 second; got {echo(value)}", value)
    if seconds > max_s:
        invalid("query", "every", f"every must be at most {max_s // 86400} days; got {echo(value)}", value)
    if seconds != int(seconds):
        invalid("query", "every", f"every must be a whole number of seconds; got {echo(value)}", value)
    return int(seconds)
