"""UTC inside, ISO 8601 with offset at the edges."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

UTC = timezone.utc


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_ts(value: object) -> datetime:
    """Parse an ISO 8601 string (offset required) or epoch seconds into an aware UTC datetime.

    Raises ValueError with a message fit for a dead-letter reason.
    """
    if isinstance(value, bool):
        raise ValueError("timestamp must be an ISO 8601 string or epoch seconds, not a boolean")
    if isinstance(value, (int, float)):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("timestamp is not finite")
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise ValueError(f"epoch timestamp out of range: {value}") from exc
    if not isinstance(value, str):
        raise ValueError(f"timestamp must be an ISO 8601 string, got {type(value).__name__}")
    try:
        ts = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"not an ISO 8601 timestamp: {value[:64]!r}") from exc
    if ts.tzinfo is None:
        raise ValueError(f"timestamp has no UTC offset: {value[:64]!r}")
    try:
        return ts.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"timestamp out of range in UTC: {value[:64]!r}") from None


def iso(ts: datetime | None) -> str | None:
    if ts is None:
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.isoformat()


def to_ms(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


@lru_cache
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def month_bounds(year: int, month: int, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """A calendar month in ``tz``: [its first day 00:00, the next month's first day 00:00), aware datetimes."""
    start = datetime(year, month, 1, tzinfo=tz)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=tz)
    return start, end


def month_of(ts: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The calendar month in ``tz`` that holds ``ts``."""
    local = ts.astimezone(tz)
    return month_bounds(local.year, local.month, tz)


def last_complete_month(now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The last calendar month in ``tz`` that is wholly over at ``now`` (on 1 December 00:20: November)."""
    this_month_start = month_of(now, tz)[0]
    return month_of(this_month_start - timedelta(seconds=1), tz)
