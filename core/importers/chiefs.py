"""River chiefs from CSV (and back): who patrols which segments."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path
from typing import Any, Iterable

from pydantic import ValidationError

from core.csvcell import safe_row
from core.importers.problems import Problems, csv_records, validation_detail
from core.patrols.models import Chief, Level

CHIEF_FIELDS = ("id", "name", "level", "town", "village", "segment_ids")
_CHIEF_REQUIRED = ("name", "level", "town", "village", "segment_ids")


def chief_id_for(level: str, town: str | None, village: str | None, name: str) -> str:
    """A stable id for a chief imported without one (same person, same place → same id on re-import)."""
    key = "|".join((level, town or "", village or "", name))
    return "CH-" + hashlib.sha1(key.encode("utf-8")).hexdigest()[:12]


def write_chiefs_csv(chiefs: Iterable[Chief], path: str | Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(CHIEF_FIELDS)
        for c in chiefs:
            w.writerow(safe_row([c.id, c.name, c.level.value, c.town or "", c.village or "",
                                 ";".join(c.segment_ids)]))  # a name must not run as a spreadsheet formula


def load_chiefs_csv(path: str | Path, segment_ids: Iterable[str] | None = None) -> list[Chief]:
    """Chiefs from CSV: name, level (county|town|village|grid), town, village, segment_ids (separated by ';'),
    optional id (a login links to its chief from the account: ``smartwater user add --chief-id``). With
    ``segment_ids`` given, unknown segments are problems too. Validated whole: ``InvalidFile`` lists every bad
    row; row numbers count the header as row 1."""
    path = Path(path)
    known = set(segment_ids) if segment_ids is not None else None
    problems = Problems()
    chiefs: list[Chief] = []
    seen: dict[str, int] = {}
    for n, header, cells in csv_records(path, CHIEF_FIELDS, _CHIEF_REQUIRED, problems, lower=True):
        row = {k: (v or "").strip() for k, v in zip(header, cells)}
        label = f"{path}: row {n} (chief {row.get('name')!r})"
        segs = [s.strip() for s in row.get("segment_ids", "").split(";") if s.strip()]
        if known is not None:
            bad = [s for s in segs if s not in known]
            if bad:
                problems.add(f"{label}: unknown segment(s) {bad}")
                continue
        data: dict[str, Any] = {"name": row.get("name", ""), "level": row.get("level", "").lower(),
                                "town": row.get("town") or None, "village": row.get("village") or None,
                                "segment_ids": segs}
        if data["level"] not in {lv.value for lv in Level}:
            problems.add(f"{label}: level {row.get('level')!r} is not one of county, town, village, grid")
            continue
        data["id"] = row.get("id") or chief_id_for(data["level"], data["town"], data["village"], data["name"])
        try:
            chief = Chief.model_validate(data)
        except ValidationError as exc:
            problems.add(f"{label}: {validation_detail(exc, top='row')}")
            continue
        if chief.id in seen:
            problems.add(f"{label}: duplicate chief {chief.id!r} (first in row {seen[chief.id]})")
            continue
        seen[chief.id] = n
        chiefs.append(chief)
    problems.check()
    return chiefs
