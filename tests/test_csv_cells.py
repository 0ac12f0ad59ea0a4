"""CSV formula injection: every CSV the project writes neutralises cells a spreadsheet would run (core/csvcell.py)."""

from __future__ import annotations

import csv
import io
import warnings

import pytest

from core.csvcell import safe_cell, safe_row, unquote_cell

ATTACKS = ["=HYPERLINK(\"http://evil\",\"x\")", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A2)", "\tx", "\rx"]


@pytest.mark.parametrize("text", ATTACKS)
def test_formula_cells_are_quoted_and_read_back(text):
    assert safe_cell(text) == "'" + text
    assert unquote_cell(safe_cell(text)) == text


def test_numbers_and_plain_text_stay_as_they_are():
    assert safe_row([-3.5, "-3.5", "+8", "1e-3", 0, None, "王村", "a=b", "'quoted"]) == \
        [-3.5, "-3.5", "+8", "1e-3", 0, None, "王村", "a=b", "'quoted"]
    assert unquote_cell("'quoted") == "'quoted"


def test_bulletin_csv_neutralises_a_chief_named_like_a_formula(tmp_path):
    from api import create_app
    from core.patrols.models import Chief
    from core.patrols.repo import PatrolRepo
    from core.registry import open_registry
    from core.settings import Settings
    from simulators.rivers import RiverNetwork, generate_river_network, store_network

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Using `httpx` with `starlette.testclient` is deprecated")
        from fastapi.testclient import TestClient

    settings = Settings(_env_file=None, data_dir=tmp_path)
    registry = open_registry(settings.db_url)
    registry.create_schema()
    try:
        repo = PatrolRepo(registry.engine, settings)
        network = generate_river_network(seed=7, n_rivers=10, n_chiefs=30)
        chiefs = [Chief(**{**c.model_dump(), "name": ATTACKS[i]}) if i < len(ATTACKS) else c
                  for i, c in enumerate(network.chiefs)]
        store_network(repo, RiverNetwork(network.rivers, network.segments, chiefs))
        with TestClient(create_app(settings, registry=registry, stream=False)) as c:
            resp = c.get("/api/v1/bulletin", params={"format": "csv"})
        assert resp.status_code == 200, resp.text
        table = list(csv.reader(io.StringIO(resp.content.decode("utf-8-sig"))))
        rows = table[table.index(["chief_id", "name", "level", "town", "frequency", "periods_due", "periods_met",
                                  "required", "valid", "total", "rate"]) + 1:]
        names = {r[1] for r in rows if len(r) > 1}
        assert {"'" + a for a in ATTACKS} <= names
        assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for r in table for cell in r)
    finally:
        registry.close()


def test_chiefs_csv_round_trips_a_quoted_name(tmp_path):
    from core.importers import load_chiefs_csv, write_chiefs_csv
    from simulators.rivers import generate_river_network
    from core.patrols.models import Chief

    network = generate_river_network(seed=7, n_rivers=10, n_chiefs=30)
    chief = Chief(**{**network.chiefs[0].model_dump(), "name": "=cmd()"})
    path = tmp_path / "chiefs.csv"
    write_chiefs_csv([chief], path)
    assert "'=cmd()" in path.read_text(encoding="utf-8")
    (back,) = load_chiefs_csv(path)
    assert back.name == "=cmd()"
