"""CSV cells that a spreadsheet cannot run: the OWASP rule against formula injection.

A cell beginning with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is taken for a formula by Excel and
LibreOffice (``=HYPERLINK(...)`` in a chief's name would run on the bureau's desktop when the public bulletin is
opened). Such a text cell is written with a leading ``'``, which the spreadsheet shows as text and hides. Numbers
(``-3.5``, ``+8``) stay numbers. Every CSV the project writes goes through ``safe_row``; readers of the project's
own CSV files take the quote off again with ``unquote_cell``.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def safe_cell(value: Any) -> Any:
    """``value`` unless it is text a spreadsheet would read as a formula; then ``'`` + the text."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def safe_row(values: Iterable[Any]) -> list[Any]:
    return [safe_cell(v) for v in values]


def unquote_cell(text: str) -> str:
    """The text ``safe_cell`` was given (a cell it quoted loses its ``'``; any other is unchanged)."""
    if text.startswith("'") and text[1:].startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(text[1:]):
        return text[1:]
    return text
