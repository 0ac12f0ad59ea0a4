"""Comments point into the repository's own docs/, and the pointers hold: every docs file named in the code
exists, and a section named with it (a quoted heading right after the file name) is a heading of that file.
Nothing points outside the repository (no design-notes paragraphs, no issue numbers)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [p for pattern in ("*.py", "*.yaml", "*.yml", "*.conf", "*.md", "*.toml", "Makefile", "*.sh")
           for p in ROOT.rglob(pattern)
           if not ({".venv", "node_modules", ".git", "build", "test-artifacts"} & set(p.relative_to(ROOT).parts))]
POINTER = re.compile(r"docs/([a-z0-9-]+\.md)(?:\W{0,3}\(?\"([^\"\n]+)\")?")


def _headings(doc: Path) -> set[str]:
    return {line.lstrip("#").strip() for line in doc.read_text(encoding="utf-8").splitlines() if line.startswith("#")}


def test_every_docs_pointer_names_a_file_and_section_that_exist():
    seen, bad = 0, []
    for path in SOURCES:
        text = path.read_text(encoding="utf-8", errors="replace")
        for m in POINTER.finditer(text):
            doc = ROOT / "docs" / m.group(1)
            seen += 1
            if not doc.exists():
                bad.append(f"{path.relative_to(ROOT)}: {m.group(0)} (no such file)")
            elif m.group(2) and m.group(2) not in _headings(doc):
                bad.append(f"{path.relative_to(ROOT)}: {m.group(0)} (no such section)")
    assert seen > 20 and bad == [], "\n".join(bad)


@pytest.mark.parametrize("pattern", [r"design\.md", r"§\s?\d", r"\bissue #?\d+\b"])
def test_nothing_points_outside_the_repository(pattern):
    found = [f"{p.relative_to(ROOT)}:{n}" for p in SOURCES if p.name != "test_docs.py"
             for n, line in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
             if re.search(pattern, line, re.IGNORECASE)]
    assert found == [], found
