"""Water-resources and village-supply files (CSV): intake users, their meters, groundwater wells, water sources,
village supplies (docs/data-model.md, "Import files").

Each file is validated whole: every bad row is reported with its row number, and ``InvalidFile`` lists them all.
Rows that name other things (a meter's user and ``intake`` station, a well's ``groundwater`` station, a supply's
``village_water`` station, a source's reservoir and villages) are checked against the ids given (``None``: not
checked), which the caller gathers from the registry and from the other files of the same import.
"""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Collection, Iterable, TypeVar

from pydantic import BaseModel, ValidationError

from core.csvcell import safe_row
from core.importers.problems import Problems, csv_records, validation_detail
from core.supply.models import (GroundwaterWell, IntakeMeter, IntakeUser, VillageSupply, WaterSource,
                                service_head_m)

INTAKE_USER_FIELDS = ("id", "name", "town", "source", "licence_no", "permitted_m3_per_year")
METER_FIELDS = ("id", "user_id", "station_id", "installed_at", "removed_at", "rollover_m3")
WELL_FIELDS = ("station_id", "town", "ground_elevation_m", "aquifer", "well_depth_m")
SOURCE_FIELDS = ("id", "name", "kind", "reservoir_station_id", "village_station_ids", "plant_ids")
SUPPLY_FIELDS = ("station_id", "supply_type", "population", "design_m3_per_day", "plant_id", "disinfectant",
                 "service_head_m", "storeys")

M = TypeVar("M", bound=BaseModel)


def _ids(cell: str) -> list[str]:
    return [p.strip() for p in cell.split(";") if p.strip()]


def _load(path: str | Path, model: type[M], fields: tuple[str, ...], required: tuple[str, ...], key: str,
          what: str, prepare: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
          check: Callable[[M], list[str]] | None = None) -> list[M]:
    path = Path(path)
    problems = Problems()
    out: list[M] = []
    seen: dict[str, int] = {}
    for n, header, cells in csv_records(path, fields, required, problems):
        row = {k: c.strip() for k, c in zip(header, cells) if c.strip() != ""}
        where = f"{path}: row {n} ({what} {row.get(key)!r})"
        try:
            item = model.model_validate(prepare(row) if prepare else row)
        except ValidationError as exc:
            problems.add(f"{where}: {validation_detail(exc)}")
            continue
        except ValueError as exc:
            problems.add(f"{where}: {exc}")
            continue
        ident = getattr(item, key)
        if ident in seen:
            problems.add(f"{path}: row {n}: duplicate {what} {ident!r} (first in row {seen[ident]})")
            continue
        seen[ident] = n
        wrong = check(item) if check else []
        for text in wrong:
            problems.add(f"{where}: {text}")
        if not wrong:
            out.append(item)
    problems.check()
    return out


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return ";".join(value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def write_supply_csv(items: Iterable[BaseModel], fields: tuple[str, ...], path: str | Path) -> None:
    """Any of these files in the layout its loader reads (``fields``: one of the ``*_FIELDS``); a field the model
    lacks (``storeys``) is left out."""
    items = list(items)
    present = [f for f in fields if not items or f in type(items[0]).model_fields]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(present)
        for item in items:
            writer.writerow(safe_row([_cell(getattr(item, f)) for f in present]))


def _unknown(ids: Collection[str] | None, wanted: list[str], what: str) -> list[str]:
    if ids is None:
        return []
    missing = [i for i in wanted if i not in ids]
    return [f"no {what} {', '.join(map(repr, missing))}"] if missing else []


def load_intake_users_csv(path: str | Path) -> list[IntakeUser]:
    return _load(path, IntakeUser, INTAKE_USER_FIELDS, INTAKE_USER_FIELDS, "id", "intake user")


def load_meters_csv(path: str | Path, user_ids: Collection[str] | None = None,
                    intake_station_ids: Collection[str] | None = None) -> list[IntakeMeter]:
    """Meters; each names a known intake user and ``intake`` station, and meters of one station do not overlap in
    time (a replaced meter's ``removed_at`` is at or before its successor's ``installed_at``)."""

    def check(m: IntakeMeter) -> list[str]:
        return (_unknown(user_ids, [m.user_id], "intake user") +
                _unknown(intake_station_ids, [m.station_id], "intake station"))

    meters = _load(path, IntakeMeter, METER_FIELDS, ("id", "user_id", "station_id", "installed_at", "rollover_m3"),
                   "id", "meter", check=check)
    problems = Problems()
    by_station: dict[str, list[IntakeMeter]] = {}
    for m in meters:
        by_station.setdefault(m.station_id, []).append(m)
    for station, ms in sorted(by_station.items()):
        ms.sort(key=lambda m: m.installed_at)
        for a, b in zip(ms, ms[1:]):
            if a.removed_at is None or a.removed_at > b.installed_at:
                problems.add(f"{path}: meters {a.id!r} and {b.id!r} both read station {station!r} from "
                             f"{b.installed_at.isoformat()}: remove the first before the second is installed")
    problems.check()
    return meters


def load_wells_csv(path: str | Path, groundwater_station_ids: Collection[str] | None = None
                   ) -> list[GroundwaterWell]:
    return _load(path, GroundwaterWell, WELL_FIELDS, WELL_FIELDS, "station_id", "well",
                 check=lambda w: _unknown(groundwater_station_ids, [w.station_id], "groundwater station"))


def load_sources_csv(path: str | Path, reservoir_station_ids: Collection[str] | None = None,
                     village_station_ids: Collection[str] | None = None) -> list[WaterSource]:
    """Water sources; ``village_station_ids`` and ``plant_ids`` are ``;``-separated lists."""

    def prepare(row: dict[str, Any]) -> dict[str, Any]:
        return {**row, "village_station_ids": _ids(row.get("village_station_ids", "")),
                "plant_ids": _ids(row.get("plant_ids", ""))}

    def check(s: WaterSource) -> list[str]:
        return (_unknown(reservoir_station_ids, [s.reservoir_station_id] if s.reservoir_station_id else [],
                         "reservoir station") +
                _unknown(village_station_ids, list(s.village_station_ids), "village water-supply station"))

    return _load(path, WaterSource, SOURCE_FIELDS, ("id", "name", "kind"), "id", "water source", prepare, check)


def load_supplies_csv(path: str | Path, village_station_ids: Collection[str] | None = None) -> list[VillageSupply]:
    """Village supplies; the minimum service head is given in metres (``service_head_m``) or by the buildings'
    storeys (``storeys``, GB 50013), not both."""

    def prepare(row: dict[str, Any]) -> dict[str, Any]:
        storeys = row.pop("storeys", None)
        if storeys is not None:
            if "service_head_m" in row:
                raise ValueError("give service_head_m or storeys, not both")
            try:
                row["service_head_m"] = service_head_m(int(storeys))
            except ValueError:
                raise ValueError(f"storeys: a whole number of storeys, at least 1, got {storeys!r}") from None
        elif "service_head_m" not in row:
            raise ValueError("service_head_m or storeys is required")
        return row

    return _load(path, VillageSupply, SUPPLY_FIELDS, ("station_id", "supply_type", "population", "design_m3_per_day",
                                                      "disinfectant"), "station_id", "village supply", prepare,
                 check=lambda s: _unknown(village_station_ids, [s.station_id], "village water-supply station"))
