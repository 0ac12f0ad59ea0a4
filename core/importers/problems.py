"""Collecting every problem of an import file, and reading operators' CSV files row by row."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Collection, Iterator

from pydantic import ValidationError

from core.csvcell import unquote_cell

MAX_LISTED = 50  # a file wrong in every row: the first problems say enough


class InvalidFile(ValueError):
    """An import file with problems; ``problems`` lists each one (``"path: row 4 (station 'x'): lat: …"``)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        listed = problems[:MAX_LISTED]
        more = len(problems) - len(listed)
        super().__init__("\n".join(listed + ([f"… and {more} more problems"] if more else [])))


class Problems:
    """The problems found so far in one file; ``check()`` raises them all at the end."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def add(self, text: str) -> None:
        self.found.append(text)

    def __bool__(self) -> bool:
        return bool(self.found)

    def check(self) -> None:
        if self.found:
            raise InvalidFile(self.found)


def csv_records(path: str | Path, fields: Collection[str], required: Collection[str], problems: Problems, *,
                lower: bool = False) -> Iterator[tuple[int, list[str], list[str]]]:
    """Yield ``(row number, header, cells)`` for each non-blank record after checking the header.

    A bad header is fatal (raised at once: no row can be read without it); a row with too many cells is recorded
    in ``problems`` and skipped. Row numbers count the header as row 1 and follow records, not lines (a quoted cell
    may span lines), so they match what a spreadsheet shows. utf-8-sig: spreadsheets save Chinese CSV with a
    byte-order mark.
    """
    try:
        fh = open(path, newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise InvalidFile([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    with fh:
        reader = csv.reader(fh)
        try:
            header = [h.strip().lower() if lower else h.strip() for h in next(reader, [])]
        except (UnicodeDecodeError, csv.Error) as exc:
            raise InvalidFile([f"{path}: row 1 (header): not readable as UTF-8 CSV: {exc}"]) from None
        missing = [h for h in required if h not in header]
        unknown = [h for h in header if h not in fields]
        if missing or unknown:
            raise InvalidFile([f"{path}: row 1 (header): " + "; ".join(
                x for x in (missing and f"missing columns {missing}", unknown and f"unknown columns {unknown}") if x)])
        n = 1
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except (UnicodeDecodeError, csv.Error) as exc:
                problems.add(f"{path}: row {n + 1}: not readable as UTF-8 CSV: {exc}")
                return
            n += 1
            if not any(c.strip() for c in cells):
                continue
            if len(cells) > len(header):
                problems.add(f"{path}: row {n}: {len(cells)} cells for {len(header)} header columns")
                continue
            yield n, header, [unquote_cell(c) for c in cells]  # as written by core.csvcell.safe_row


def validation_detail(exc: ValidationError, top: str = "") -> str:
    """A pydantic error on one line for an operator, ``field.sub: reason; …``; ``top`` names an error of the
    whole object (empty location)."""
    return "; ".join(f"{'.'.join(str(x) for x in e['loc']) or top}: {e['msg']}" for e in exc.errors())
