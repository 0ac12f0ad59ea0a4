"""Stations from and to CSV: the registry's station fields, one row per station (docs/data-model.md)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Iterable

from pydantic import ValidationError

from core.domain import FloodLimitPeriod, Station
from core.csvcell import safe_row
from core.importers.problems import Problems, csv_records, validation_detail

STATION_FIELDS: tuple[str, ...] = tuple(Station.model_fields)
_REQUIRED = ("id", "kind", "name", "town", "lat", "lon")


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)  # shortest text that reads back as the same float
    if hasattr(value, "value"):  # enums
        return str(value.value)
    return str(value)


def _fmt_curve(curve: Iterable[tuple[float, float]] | None) -> str:
    return "" if not curve else ";".join(f"{float(l)!r}:{float(s)!r}" for l, s in curve)


def _fmt_periods(periods: Iterable[FloodLimitPeriod] | None) -> str:
    return "" if not periods else ";".join(f"{p.start}-{p.end}:{p.level_m!r}:{p.type}" for p in periods)


def _parse_curve(text: str) -> list[tuple[float, float]]:
    points = []
    for part in text.split(";"):
        level, _, storage = part.strip().partition(":")
        if not storage:
            raise ValueError(f"level_storage point {part!r} is not level:storage")
        points.append((float(level), float(storage)))
    levels = [p[0] for p in points]
    if any(b <= a for a, b in zip(levels, levels[1:])):
        raise ValueError("level_storage levels must be strictly ascending")
    return points


def _parse_periods(text: str) -> list[FloodLimitPeriod]:
    periods = []
    for part in text.split(";"):
        bits = part.strip().split(":")
        if len(bits) not in (2, 3) or "-" not in bits[0]:
            raise ValueError(f"flood_limit_periods entry {part!r} is not MMDD-MMDD:level[:type]")
        start, end = bits[0].split("-", 1)
        periods.append(FloodLimitPeriod(start=start, end=end, level_m=float(bits[1]),
                                        type=bits[2] if len(bits) == 3 else "main"))
    return periods


def write_stations_csv(stations: Iterable[Station], path: str | Path) -> None:
    """One header row of Station field names, one row per station; empty cell = None."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(STATION_FIELDS)
        for s in stations:
            row = []
            for f in STATION_FIELDS:
                v = getattr(s, f)
                row.append(_fmt_curve(v) if f == "level_storage" else
                           _fmt_periods(v) if f == "flood_limit_periods" else _fmt(v))
            writer.writerow(safe_row(row))  # a name must not run as a spreadsheet formula


def _station_from_row(row: dict[str, str]) -> Station:
    data: dict[str, Any] = {}
    for key, cell in row.items():
        cell = (cell or "").strip()
        if cell == "":
            continue  # None (or the model default)
        if key == "level_storage":
            data[key] = _parse_curve(cell)
        elif key == "flood_limit_periods":
            data[key] = _parse_periods(cell)
        else:
            data[key] = cell  # pydantic coerces numbers and the kind
    return Station.model_validate(data)


def load_stations_csv(path: str | Path) -> list[Station]:
    """Stations from CSV: one header row of Station field names (as ``write_stations_csv`` writes), one row per
    station, an empty cell for none. Validated whole: ``InvalidFile`` lists every bad row, by row number."""
    path = Path(path)
    problems = Problems()
    stations: list[Station] = []
    seen: dict[str, int] = {}
    for n, header, cells in csv_records(path, STATION_FIELDS, _REQUIRED, problems):
        row = dict(zip(header, cells))
        try:
            station = _station_from_row(row)
        except ValidationError as exc:
            problems.add(f"{path}: row {n} (station {row.get('id')!r}): {validation_detail(exc)}")
            continue
        except ValueError as exc:
            problems.add(f"{path}: row {n} (station {row.get('id')!r}): {exc}")
            continue
        if station.id in seen:
            problems.add(f"{path}: row {n}: duplicate station id {station.id!r} (first in row {seen[station.id]})")
            continue
        seen[station.id] = n
        stations.append(station)
    problems.check()
    return stations
