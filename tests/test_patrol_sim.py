"""The patrol scenario against a real API (uvicorn on a free port, a SQLite registry holding the generated river
network): what the simulated chiefs and supervisors did is checked through the API, as the bureau would see it."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from typer.testing import CliRunner

from api import ApiServer
from core.registry import open_registry
from core.settings import Settings, get_settings
from core.tsdb import open_store
from simulators.patrols import PatrolMix, PatrolSimError, photo_png, prepare
from smartwater.cli import app
from smartwater.demo import ensure_river_network
from tests.auth_util import auth_headers

SHANGHAI = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 6, 1, tzinfo=SHANGHAI)  # a Monday: three whole weeks in the period
DAYS = 21
# A small run has to show every behaviour, so the rare ones are made common.
MIX = PatrolMix(too_short=0.2, off_segment=0.2, issue=0.7, late_rectify=0.35, review_fail=0.3, late_batch=0.3,
                out_of_order=0.5, resend=0.5)
V1 = "/api/v1"


@pytest.fixture()
def served(tmp_path):
    """The generated network in a fresh registry and the API serving it on a free port: (settings, registry, url)."""
    settings = Settings(_env_file=None, data_dir=tmp_path, auth_user_cache_s=0)
    registry = open_registry(settings.db_url)
    registry.create_schema()
    ensure_river_network(registry, settings)
    store = open_store(settings.tsdb_url)
    server = ApiServer(settings, registry=registry, store=store, host="127.0.0.1", port=0, stream=False)
    server.start()
    try:
        yield settings, registry, server.url
    finally:
        server.stop()
        store.close()
        registry.close()


def _get(url: str, path: str, headers: dict | None = None, **params) -> httpx.Response:
    r = httpx.get(url + V1 + path, headers=headers, params=params, timeout=30)
    assert r.status_code == 200, r.text
    return r


def test_patrol_scenario_drives_the_api_like_chiefs_and_supervisors(served):
    settings, registry, url = served
    summary = prepare(settings, url, n_chiefs=8, days=DAYS, seed=2, start=START, mix=MIX).run()
    assert summary.errors == []
    assert summary.unexpected == 0  # every planned-valid patrol counted, every spoiled one did not
    admin = auth_headers(settings, registry)
    period = {"from": START.isoformat(), "to": (START + timedelta(days=DAYS)).isoformat()}

    patrols = _get(url, "/patrols", admin, limit=1000, **period).json()
    assert len(patrols) == summary.patrols >= 15
    assert len({p["chief_id"] for p in patrols}) == 8
    valid = [p for p in patrols if p["valid"]]
    invalid = [p for p in patrols if p["valid"] is False]
    assert len(valid) == summary.valid and len(invalid) == summary.invalid and valid and invalid
    codes = {c for p in invalid for c in p["invalid_codes"]}
    assert {"short_duration", "off_segment"} <= codes
    assert all(p["status"] == "finished" and p["point_count"] > 1 for p in patrols)
    assert all(p["coverage"] >= settings.patrol_min_coverage for p in valid)
    assert any(p["coverage"] < 0.2 and p["invalid_codes"] == ["off_segment"] for p in invalid)
    assert summary.late_batches > 0  # fixes sent after the finish were taken and the patrol judged again

    issues = _get(url, "/issues", admin, limit=1000).json()
    assert len(issues) == sum(summary.issues.values()) >= 5
    states = {i["state"] for i in issues}
    assert "closed" in states and len(states) >= 2, states
    late = [i for i in issues if i["state"] == "closed"
            and datetime.fromisoformat(i["closed_at"]) > datetime.fromisoformat(i["first_deadline"])]
    assert len(late) == summary.closed_late >= 1
    assert any(i["reopened"] for i in issues) and summary.reviews_failed >= 1
    closed = next(i for i in issues if i["state"] == "closed")
    detail = _get(url, f"/issues/{closed['id']}", admin).json()
    assert [e["event"] for e in detail["history"]][:3] == ["found", "assigned", "rectified"]
    assert detail["history"][-1]["event"] == "review_passed" and len(detail["photos"]) >= 2
    photo = _get(url, f"/photos/{closed['rectify_photo_id']}", admin)
    assert photo.headers["content-type"] == "image/png" and photo.content.startswith(b"\x89PNG")

    compliance = _get(url, "/compliance", admin, **period).json()
    mine = {c["chief_id"]: c for c in compliance["chiefs"] if c["patrols"]}
    assert set(mine) == {p["chief_id"] for p in patrols}
    for chief_id, c in mine.items():
        assert c["patrols"] == sum(p["chief_id"] == chief_id for p in patrols)
        assert c["valid"] == sum(p["chief_id"] == chief_id for p in valid)
    assert compliance["total"]["valid"] == len(valid) and compliance["issues"]["total"]["found"] == len(issues)
    assert compliance["issues"]["total"]["closed"] == summary.issues["closed"]
    assert compliance["issues"]["total"]["closed_on_time"] == summary.issues["closed"] - len(late)

    rows = {r["chief_id"]: r for r in _get(url, "/bulletin", None, **period).json()["rows"]}  # public
    for chief_id, c in mine.items():
        assert (rows[chief_id]["total"], rows[chief_id]["valid"]) == (c["patrols"], c["valid"])

    again = prepare(settings, url, n_chiefs=8, days=DAYS, seed=2, start=START, mix=MIX)  # logins exist: reused
    assert sorted(again.chief_tokens) == sorted({p["chief_id"] for p in patrols})


def test_the_simulate_command_runs_patrols_and_refuses_a_future_period(served, monkeypatch):
    settings, _, url = served
    monkeypatch.setenv("SMARTWATER_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    try:
        ok = CliRunner().invoke(app, ["simulate", "--scenario", "patrols", "--chiefs", "2", "--days", "8",
                                      "--api-url", url, "--seed", "3"])
        assert ok.exit_code == 0, ok.output
        assert "\x1b" not in ok.output  # no progress bar off a terminal
        assert "2 chiefs" in ok.output and '"patrols": {"total": ' in ok.output.splitlines()[-1]
        future = CliRunner().invoke(app, ["simulate", "--scenario", "patrols", "--days", "3", "--api-url", url,
                                          "--start", datetime.now(SHANGHAI).isoformat()])
        assert future.exit_code == 1 and "must lie in the past" in future.output
        monkeypatch.setenv("SMARTWATER_AUTH_SECRET", "5e2b8d1f4a7c0e93b6d2f8a1c5e7b3d9f0a4c6e8")  # not the API's key
        get_settings.cache_clear()
        refused = CliRunner().invoke(app, ["simulate", "--scenario", "patrols", "--chiefs", "1", "--days", "7",
                                           "--api-url", url])
        assert refused.exit_code == 1 and "refused the simulator's token" in refused.output
    finally:
        get_settings.cache_clear()
    with pytest.raises(PatrolSimError, match="must start with http"):
        prepare(settings, "127.0.0.1:8000")
    with pytest.raises(PatrolSimError, match="does not answer"):
        prepare(settings, "http://127.0.0.1:9", n_chiefs=1, days=7).run()


def test_generated_photos_are_distinct_valid_pngs():
    import random

    from core.patrols.photos import check_photo

    a, b = photo_png(random.Random(1)), photo_png(random.Random(2))
    assert a != b and check_photo(a) == check_photo(b) == "image/png"
