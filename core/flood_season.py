"""The flood season (汛期) and its main season (主汛期), set per province and configured per district.

Shandong's runs from 1 June to 30 September, the main season July–August (docs/domain.md, "Flood season").
Dates are month-day in the bureau's local time; a season lies within one calendar year.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo

from core.domain import FloodLimitPeriod, Station


def parse_month_day(text: str, what: str) -> str:
    """'MM-DD' (or 'MMDD') → 'MMDD'; a readable ValueError naming ``what`` otherwise."""
    raw = text.strip()
    digits = raw.replace("-", "")
    if len(digits) != 4 or not digits.isdigit():
        raise ValueError(f"{what}: {text!r} is not a month and day as MM-DD (e.g. 06-01)")
    try:
        date(2000, int(digits[:2]), int(digits[2:]))  # a leap year: 02-29 is a real day
    except ValueError:
        raise ValueError(f"{what}: {text!r} is not a day of the year") from None
    return digits


def _shift(mmdd: str, days: int) -> str:
    return (date(2001, int(mmdd[:2]), int(mmdd[2:])) + timedelta(days=days)).strftime("%m%d")


@dataclass(frozen=True, slots=True)
class FloodSeason:
    start: str = "0601"  # MMDD, inclusive
    end: str = "0930"
    main_start: str = "0701"
    main_end: str = "0831"

    @classmethod
    def parse(cls, start: str, end: str, main: str) -> "FloodSeason":
        """From settings text: start and end as MM-DD, the main season as MM-DD..MM-DD. Validated whole."""
        s = parse_month_day(start, "flood season start")
        e = parse_month_day(end, "flood season end")
        if e < s:
            raise ValueError(f"flood season end {end!r} is before its start {start!r} (a season lies within a year)")
        first, sep, last = main.partition("..")
        if not sep:
            raise ValueError(f"main flood season: {main!r} is not MM-DD..MM-DD (e.g. 07-01..08-31)")
        ms, me = parse_month_day(first, "main flood season start"), parse_month_day(last, "main flood season end")
        if me < ms:
            raise ValueError(f"main flood season {main!r} ends before it starts")
        if ms < s or me > e:
            raise ValueError(f"main flood season {main!r} is not inside the flood season {start}..{end}")
        return cls(s, e, ms, me)

    @staticmethod
    def _mmdd(ts: datetime, tz: tzinfo | None) -> str:
        return (ts.astimezone(tz) if tz is not None else ts).strftime("%m%d")

    def contains(self, ts: datetime, tz: tzinfo | None) -> bool:
        """Whether the reading's local date is in the flood season."""
        return self.start <= self._mmdd(ts, tz) <= self.end

    def is_main(self, ts: datetime, tz: tzinfo | None) -> bool:
        return self.main_start <= self._mmdd(ts, tz) <= self.main_end

    def flood_limit_periods(self, flood_limit_m: float, normal_m: float, late_m: float | None = None) -> list[
            FloodLimitPeriod]:
        """Seasonal flood-limit periods (SL 323 ST_RSVRFSR_B) over this season: the flood-limit level from the
        season's start through the main season (the reservoir is drawn down before the floods come), ``late_m``
        (default: the flood-limit level) after it, the normal pool outside the season."""
        periods = []
        if self.start != self.main_start:
            periods.append(FloodLimitPeriod(start=self.start, end=_shift(self.main_start, -1), level_m=flood_limit_m,
                                            type="transition"))
        periods.append(FloodLimitPeriod(start=self.main_start, end=self.main_end, level_m=flood_limit_m, type="main"))
        if self.main_end != self.end:
            periods.append(FloodLimitPeriod(start=_shift(self.main_end, 1), end=self.end,
                                            level_m=flood_limit_m if late_m is None else late_m, type="late"))
        if (self.start, self.end) != ("0101", "1231"):
            periods.append(FloodLimitPeriod(start=_shift(self.end, 1), end=_shift(self.start, -1), level_m=normal_m,
                                            type="non_flood"))
        return periods


def flood_limit_in_force(st: Station, ts: datetime, tz: tzinfo, season: FloodSeason | None) -> tuple[
        float | None, str]:
    """A reservoir's ceiling on the reading's local date and what it is: its own seasonal periods when it has
    them (its plan); else its flood-limit level inside the district's flood season and its normal pool outside
    it. The name is "normal_pool" for a non-flood period or outside the season, else "flood_limit"."""
    if st.flood_limit_periods:
        local = ts.astimezone(tz).strftime("%m%d")
        for period in st.flood_limit_periods:
            if period.contains(local):
                return period.level_m, "normal_pool" if period.type == "non_flood" else "flood_limit"
        return st.flood_limit_level_m, "flood_limit"
    if season is not None and not season.contains(ts, tz) and st.normal_level_m is not None:
        return st.normal_level_m, "normal_pool"
    return st.flood_limit_level_m, "flood_limit"
