"""`smartwater init` gives the demo district its town boundaries; `smartwater reports import-towns` replaces them
(validated whole: a bad file stores nothing); `reports seed-history` writes a daily history."""

from __future__ import annotations

import json

from core.registry import open_registry
from core.reports.towns import TownRepo
from simulators.town_polygons import generate_town_geojson
from tests.test_cli import run


def _towns(tmp_path) -> list[str]:
    reg = open_registry(f"sqlite:///{tmp_path / 'registry.sqlite3'}")
    try:
        return [t.name for t in TownRepo(reg.engine).list()]
    finally:
        reg.close()


def test_init_generates_towns_and_import_replaces_them_or_nothing(tmp_path) -> None:
    first = run(["init", "--demo-data"], tmp_path)  # generated boundaries come with the generated district only
    assert first.returncode == 0, first.stderr
    assert "town boundaries generated" in first.stdout and len(_towns(tmp_path)) == 17

    doc = generate_town_geojson()
    doc["features"] = doc["features"][:2]
    good = tmp_path / "towns.geojson"
    good.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    bad = tmp_path / "bad.geojson"
    broken = json.loads(json.dumps(doc))
    broken["features"][1]["geometry"] = {"type": "Point", "coordinates": [120.5, 36.4]}
    bad.write_text(json.dumps(broken, ensure_ascii=False), encoding="utf-8")

    refused = run(["reports", "import-towns", str(bad)], tmp_path)
    assert refused.returncode == 2 and "feature 2" in refused.stderr and "Traceback" not in refused.stderr
    assert len(_towns(tmp_path)) == 17  # nothing stored
    ok = run(["reports", "import-towns", str(good)], tmp_path)
    assert ok.returncode == 0 and "2 town boundaries stored" in ok.stdout
    assert sorted(_towns(tmp_path)) == sorted(f["properties"]["name"] for f in doc["features"])
    again = run(["init", "--demo-data"], tmp_path)  # never over imported boundaries
    assert again.returncode == 0 and len(_towns(tmp_path)) == 2

    seeded = run(["reports", "seed-history", "--years", "1"], tmp_path)
    assert seeded.returncode == 0, seeded.stderr
    assert int(seeded.stdout.split()[0]) >= 24 * 365
