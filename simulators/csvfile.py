"""Reading operators' CSV files (stations, chiefs) with errors that name the row a spreadsheet shows."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Collection, Iterator

from pydantic import ValidationError

from core.csvcell import unquote_cell


def csv_records(path: str | Path, fields: Collection[str], required: Collection[str], *,
                lower: bool = False) -> Iterator[tuple[int, list[str], list[str]]]:
    """Yield ``(row number, header, cells)`` for each non-blank record after checking the header.

    Row numbers count the header as row 1 and follow records, not lines (a quoted cell may span lines),
    so they match what a spreadsheet shows. utf-8-sig: spreadsheets save Chinese CSV with a byte-order mark.
    """
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = [h.strip().lower() if lower else h.strip() for h in next(reader, [])]
        missing = [h for h in required if h not in header]
        unknown = [h for h in header if h not in fields]
        if missing or unknown:
            raise ValueError(f"{path}: row 1 (header): " + "; ".join(
                x for x in (missing and f"missing columns {missing}", unknown and f"unknown columns {unknown}") if x))
        for n, cells in enumerate(reader, start=2):
            if not any(c.strip() for c in cells):
                continue
            if len(cells) > len(header):
                raise ValueError(f"{path}: row {n}: {len(cells)} cells for {len(header)} header columns")
            yield n, header, [unquote_cell(c) for c in cells]  # as written by core.csvcell.safe_row


def validation_detail(exc: ValidationError, top: str = "") -> str:
    """A pydantic error on one line for an operator, ``field.sub: reason; …``; ``top`` names an error of the
    whole object (empty location)."""
    return "; ".join(f"{'.'.join(str(x) for x in e['loc']) or top}: {e['msg']}" for e in exc.errors())
