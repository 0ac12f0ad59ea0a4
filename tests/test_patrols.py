"""River chiefs: geometry, patrol validity, storage, the issue loop, photos, compliance, generation."""

from __future__ import annotations

import json
import random
import struct
import time
import zlib
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from sqlalchemy import insert

from core.patrols import tables as pt
from core.clock import FixedClock
from core.patrols.compliance import (DEFAULT_FREQUENCIES, Frequency, PatrolStarts, build_compliance, due_periods,
                                     full_periods, issue_stats)
from core.patrols.geometry import (EARTH_RADIUS_M, Projection, Track, coverage, distance_to_polyline,
                                   feature_collection, issue_feature, polyline_length_m, segment_feature,
                                   track_feature)
from core.patrols.models import Chief, IssueReport, Level, River, Segment
from core.patrols.photos import PhotoRejected, check_photo, sniff_image
from core.patrols.repo import (InvalidTransition, NotAssigned, NotFound, OutOfTimeWindow, PatrolClosed, PatrolError,
                               PatrolImport, PatrolRepo, PhotoRequired, TooManyPoints, UnknownReference)
from core.patrols.validity import PatrolRules, evaluate_track
from core.settings import Settings
from simulators.patrol_history import load_patrol_history
from core.importers import load_chiefs_csv, load_rivers_geojson, rivers_to_geojson, write_chiefs_csv
from simulators.rivers import (BENCHMARK_CHIEFS, LAT_MAX, LAT_MIN, LON_MAX, LON_MIN, RiverNetwork, assign_chiefs,
                               generate_river_network, generate_rivers, store_network, walk_segment)

UTC = timezone.utc
SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 6, 2, 1, 0, tzinfo=UTC)


def straight(lat: float, lon0: float, length_m: float, n: int = 20) -> list[list[float]]:
    """An east-west polyline of ``length_m`` starting at (lat, lon0)."""
    proj = Projection(lat, lon0)
    return proj.to_lonlat(np.column_stack((np.linspace(0, length_m, n), np.zeros(n)))).tolist()


SEG_A = straight(36.40, 120.50, 2000)  # 2 km
SEG_LONG = straight(36.45, 120.60, 5000)  # 5 km


def tiny_png(width: int = 1, height: int = 1) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


# --------------------------------------------------------------------------- geometry

def test_track_distance_of_a_known_track_within_one_percent():
    # Along a meridian one degree is πR/180; along a parallel it is that times cos(lat).
    lats = np.linspace(36.30, 36.40, 11)
    north = Track.from_arrays(np.arange(11) * 60.0, lats, np.full(11, 120.5))
    expected = 0.1 * np.pi / 180 * EARTH_RADIUS_M  # 11,119.5 m
    assert north.distance_m() == pytest.approx(expected, rel=0.01)
    assert north.duration_s() == 600
    lons = np.linspace(120.40, 120.50, 11)
    east = Track.from_arrays(np.arange(11) * 60.0, np.full(11, 36.4), lons)
    assert east.distance_m() == pytest.approx(expected * np.cos(np.radians(36.4)), rel=0.01)
    # Qingdao's Jimo centre to Jiaozhou's (≈ 36.39 N 120.45 E → 36.26 N 120.03 E): ≈ 40.0 km great circle.
    assert polyline_length_m([[120.45, 36.39], [120.03, 36.26]]) == pytest.approx(39_960, rel=0.01)


def test_coverage_along_off_and_half_the_segment():
    along = walk_segment(SEG_A, T0, jitter_m=5, rng=random.Random(1))
    lonlat = [[p["lon"], p["lat"]] for p in along]
    assert coverage(SEG_A, lonlat) >= 0.99
    off = walk_segment(SEG_A, T0, offset_m=400)
    assert coverage(SEG_A, [[p["lon"], p["lat"]] for p in off]) == 0.0
    # Half of a 5 km segment: 0.5 plus the 100 m buffer past the turning point.
    half = walk_segment(SEG_LONG, T0, fraction=0.5)
    c = coverage(SEG_LONG, [[p["lon"], p["lat"]] for p in half])
    assert abs(c - 0.5) <= 100 / 5000 + 0.01
    # A single fix covers the 200 m around it; sparse fixes are joined by straight legs.
    assert coverage(SEG_A, [SEG_A[0]]) == pytest.approx(100 / 2000, abs=0.01)
    assert coverage(SEG_A, [SEG_A[0], SEG_A[-1]]) == 1.0


def test_point_to_polyline_distance_is_exact_for_simple_cases():
    line = np.array([[0.0, 0.0], [100.0, 0.0], [100.0, 100.0]])
    pts = np.array([[50.0, 30.0], [-30.0, -40.0], [130.0, 50.0], [100.0, 200.0]])
    assert distance_to_polyline(pts, line) == pytest.approx([30.0, 50.0, 30.0, 100.0])


def test_out_of_order_and_duplicate_points_give_the_same_result():
    pts = walk_segment(SEG_A, T0, jitter_m=5, rng=random.Random(2))
    rng = random.Random(3)
    messy = pts + rng.sample(pts, 60)  # a batch uploaded twice
    rng.shuffle(messy)
    a, b = Track.from_points(pts), Track.from_points(messy)
    assert len(b) == len(pts)
    assert (a.distance_m(), a.duration_s()) == (b.distance_m(), b.duration_s())
    assert evaluate_track(pts, SEG_A) == evaluate_track(messy, SEG_A)


def test_geojson_features():
    seg = Segment(id="R1-001", river_id="R1", town="通济街道", village="东村", geometry=SEG_A)
    assert seg.length_m == pytest.approx(2000, rel=0.005)
    f = segment_feature(seg)
    assert f["geometry"]["type"] == "LineString" and f["properties"]["level"] == "village"
    assert f["geometry"]["coordinates"][0] == pytest.approx(SEG_A[0])
    fc = feature_collection([f])
    assert fc["type"] == "FeatureCollection" and json.loads(json.dumps(fc)) == fc


# --------------------------------------------------------------------------- validity

def test_a_proper_walk_is_valid():
    check = evaluate_track(walk_segment(SEG_A, T0, jitter_m=3), SEG_A)
    assert check.valid and check.invalid_reason is None
    assert check.coverage >= 0.99 and check.duration_s == pytest.approx(30 * 60, abs=15)


def test_too_short():
    check = evaluate_track(walk_segment(SEG_A, T0, fraction=0.1), SEG_A)
    assert not check.valid
    assert check.codes == ["short_duration", "short_distance", "off_segment"]
    assert check.invalid_reason.startswith("short_duration: 3.0 min < 5 min")
    assert evaluate_track([], SEG_A).codes[0] == "no_track"


def test_off_segment():
    check = evaluate_track(walk_segment(SEG_A, T0, offset_m=400), SEG_A)
    assert check.codes == ["off_segment"]
    assert check.coverage == 0


def test_too_fast_by_car():
    check = evaluate_track(walk_segment(SEG_LONG, T0, speed_kmh=40), SEG_LONG)
    assert check.codes == ["too_fast"] and "average 40" in check.invalid_reason
    # Standing around for 50 minutes, then driving the segment: the average is slow, the ground is not.
    rng = random.Random(4)
    stand = [{"ts": T0 + timedelta(seconds=10 * i), "lat": SEG_LONG[0][1] + rng.gauss(0, 4e-5),
              "lon": SEG_LONG[0][0] + rng.gauss(0, 5e-5)} for i in range(300)]
    drive = walk_segment(SEG_LONG, T0 + timedelta(minutes=50), speed_kmh=40)
    check = evaluate_track(stand + drive, SEG_LONG)
    assert check.distance_m / check.duration_s * 3.6 < 30
    assert check.codes == ["too_fast"] and "of the track faster" in check.invalid_reason
    # A brisk walk with GPS jitter is not "fast".
    assert evaluate_track(walk_segment(SEG_A, T0, speed_kmh=6, jitter_m=15, rng=rng), SEG_A).valid


def test_too_frequent_and_inaccurate_fixes():
    rules = PatrolRules(min_gap_h=96)
    pts = walk_segment(SEG_A, T0)
    assert evaluate_track(pts, SEG_A, rules, started_at=T0, previous_start=T0 - timedelta(hours=24)).codes == [
        "too_frequent"]
    assert evaluate_track(pts, SEG_A, rules, started_at=T0, previous_start=T0 - timedelta(hours=97)).valid
    assert evaluate_track(pts, SEG_A, rules, started_at=T0, self_started=False,
                          previous_start=T0 - timedelta(hours=1)).valid
    # Cell-tower fixes (accuracy 500 m) are ignored: a track made of them is no track.
    bad = [{**p, "accuracy_m": 500.0} for p in pts]
    assert evaluate_track(bad, SEG_A).codes[0] == "no_track"
    # Fixes from long before the patrol started (a replayed track) are not part of it.
    assert evaluate_track(pts, SEG_A, started_at=T0 + timedelta(hours=2)).codes[0] == "no_track"


# --------------------------------------------------------------------------- repository fixtures

@pytest.fixture
def chief_settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path, _env_file=None)


@pytest.fixture
def repo(db_registry, chief_settings):
    """A PatrolRepo on a migrated registry, on SQLite and PostgreSQL in turn (conftest's db_registry), with a
    clock standing an hour after T0 (``repo.clock.set`` moves it)."""
    r = PatrolRepo(db_registry.engine, chief_settings, clock=FixedClock(T0 + timedelta(hours=1)))
    # Registry.create_schema runs the migrations; until one adds these tables, make them here (no-op after).
    r.create_schema()
    return r


@pytest.fixture
def network(repo):
    rivers = [River(id="R1", name="墨水河", geometry=[SEG_A + SEG_LONG[1:2]])]
    segments = [Segment(id="R1-001", river_id="R1", town="通济街道", village="东村", geometry=SEG_A),
                Segment(id="R1-002", river_id="R1", town="通济街道", village="西村", level=Level.village,
                        geometry=SEG_LONG)]
    chiefs = [Chief(id="V1", name="王村长", level="village", town="通济街道", village="东村", segment_ids=["R1-001"]),
              Chief(id="T1", name="李镇长", level="town", town="通济街道", segment_ids=["R1-001", "R1-002"]),
              Chief(id="C1", name="张区长", level="county", segment_ids=["R1-001", "R1-002"])]
    repo.upsert_rivers(rivers)
    repo.upsert_segments(segments)
    repo.upsert_chiefs(chiefs)
    return {"segments": {s.id: s for s in segments}, "chiefs": {c.id: c for c in chiefs}}


def test_network_upserts_and_reads_back(repo, network):
    assert repo.get_chief("T1").segment_ids == ["R1-001", "R1-002"]
    repo.upsert_chiefs([network["chiefs"]["T1"].model_copy(update={"segment_ids": ["R1-002"]})])
    assert repo.get_chief("T1").segment_ids == ["R1-002"]
    assert [s.id for s in repo.list_segments(chief_id="V1")] == ["R1-001"]
    assert repo.get_segment("R1-002").length_m == pytest.approx(5000, rel=0.005)
    with pytest.raises(UnknownReference, match="R9-001"):
        repo.upsert_chiefs([Chief(id="X", name="x", level="grid", town="t", segment_ids=["R9-001"])])
    with pytest.raises(NotFound):
        repo.get_chief("nobody")


def test_patrol_points_are_idempotent_and_finish_computes_validity(repo, network):
    with pytest.raises(NotAssigned):
        repo.start_patrol("V1", "R1-002", T0)
    p = repo.start_patrol("V1", "R1-001", T0)
    pts = walk_segment(SEG_A, T0, jitter_m=3)
    assert repo.add_points(p.id, pts[:100]) == 100
    assert repo.add_points(p.id, pts[:100]) == 0  # the same batch again
    assert repo.add_points(p.id, list(reversed(pts))) == len(pts) - 100  # overlapping, out of order
    done = repo.finish_patrol(p.id, T0 + timedelta(minutes=35))
    assert done.valid and done.status.value == "finished" and done.point_count == len(pts)
    assert done.coverage >= 0.99 and done.duration_s == pytest.approx(30 * 60, abs=15)
    with pytest.raises(PatrolClosed):
        repo.finish_patrol(p.id)
    got = repo.get_patrol(p.id)
    assert len(got.points) == len(pts) and got.points[0].ts == T0
    feat = track_feature(got)
    assert feat["properties"]["valid"] is True and len(feat["geometry"]["coordinates"]) == len(pts)
    assert [x.id for x in repo.list_patrols(chief_id="V1", start=T0 - timedelta(days=1), end=T0 + timedelta(days=1))
            ] == [p.id]
    assert repo.list_patrols(chief_id="V1", start=T0 + timedelta(seconds=1)) == []


def test_a_late_batch_after_finish_recomputes(repo, network):
    p = repo.start_patrol("V1", "R1-001", T0)
    pts = walk_segment(SEG_A, T0)
    repo.add_points(p.id, pts[: len(pts) // 3])
    first = repo.finish_patrol(p.id, pts[-1]["ts"])
    assert not first.valid and "off_segment" in first.invalid_reason
    repo.add_points(p.id, pts[len(pts) // 3:])  # the phone was offline; its last batches arrive now
    again = repo.get_patrol(p.id, with_points=False)
    assert again.valid and again.point_count == len(pts)


def test_minimum_gap_between_self_started_patrols(repo, chief_settings, network):
    repo = PatrolRepo(repo.engine, chief_settings.model_copy(update={"patrol_min_gap_h": 96.0}), clock=repo.clock)

    def patrol(start: datetime, self_started: bool = True):
        repo.clock.set(start + timedelta(hours=1))
        p = repo.start_patrol("V1", "R1-001", start, self_started=self_started)
        repo.add_points(p.id, walk_segment(SEG_A, start))
        return repo.finish_patrol(p.id, start + timedelta(minutes=31))

    assert patrol(T0).valid
    second = patrol(T0 + timedelta(days=1))
    assert not second.valid and second.invalid_reason.startswith("too_frequent")
    assert patrol(T0 + timedelta(days=2), self_started=False).valid  # dispatched patrols are not padding
    assert patrol(T0 + timedelta(days=4, minutes=1)).valid  # 96 h after the last counted one


def test_no_back_filling_a_start_beyond_the_grace_or_fixes_outside_the_patrol(repo, network):
    now = T0 + timedelta(hours=1)
    with pytest.raises(OutOfTimeWindow, match="at most 48 h before it is recorded"):
        repo.start_patrol("V1", "R1-001", datetime(2020, 1, 6, tzinfo=UTC))
    with pytest.raises(OutOfTimeWindow, match="in the future"):
        repo.start_patrol("V1", "R1-001", now + timedelta(hours=1))
    two_days = repo.start_patrol("V1", "R1-001", now - timedelta(hours=47))  # a phone offline for two days
    assert two_days.source == "app" and two_days.recorded_at == now
    p = repo.start_patrol("V1", "R1-001", T0)
    pts = walk_segment(SEG_A, T0)
    far = [{**pts[0], "ts": datetime(2031, 1, 1, tzinfo=UTC)}]
    with pytest.raises(OutOfTimeWindow, match="outside patrol .*2031-01-01T00:00:00"):
        repo.add_points(p.id, pts[:10] + far)
    before = [{**pts[0], "ts": T0 - timedelta(hours=2)}]
    with pytest.raises(OutOfTimeWindow, match="outside patrol"):
        repo.add_points(p.id, before)
    assert repo.get_patrol(p.id, with_points=False).point_count == 0  # nothing of a refused batch is kept
    assert repo.add_points(p.id, pts) == len(pts)
    with pytest.raises(OutOfTimeWindow, match="before its last GPS fix"):
        repo.finish_patrol(p.id, T0 + timedelta(minutes=10))
    done = repo.finish_patrol(p.id, T0 + timedelta(minutes=35))
    late = [{**pts[0], "ts": T0 + timedelta(minutes=50)}]  # after the finish, beyond the 5 min tolerance
    with pytest.raises(OutOfTimeWindow, match="to its finish"):
        repo.add_points(done.id, late)
    # An admin's import of a paper record: back-dated, kept with who and why.
    old = repo.start_patrol("V1", "R1-001", datetime(2026, 3, 2, 9, tzinfo=SHANGHAI), self_started=False,
                            imported=PatrolImport(by="admin", reason="paper patrol log, March"))
    got = repo.get_patrol(old.id, with_points=False)
    assert (got.source, got.recorded_by, got.import_reason, got.recorded_at) == (
        "import", "admin", "paper patrol log, March", now)


def test_points_per_patrol_are_capped(repo, network, chief_settings):
    small = PatrolRepo(repo.engine, chief_settings.model_copy(update={"patrol_max_points": 100}), clock=repo.clock)
    p = small.start_patrol("V1", "R1-001", T0)
    pts = walk_segment(SEG_A, T0)
    assert small.add_points(p.id, pts[:90]) == 90
    with pytest.raises(TooManyPoints, match="limit of 100 fixes"):
        small.add_points(p.id, pts[90:120])
    assert small.add_points(p.id, pts[90:100]) == 10


# --------------------------------------------------------------------------- photos

def test_photo_checks_by_content():
    png = tiny_png()
    assert check_photo(png) == "image/png" and check_photo(png, "image/png") == "image/png"
    assert sniff_image(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00") == "image/jpeg"
    webp = b"RIFF" + struct.pack("<I", 22) + b"WEBPVP8L" + b"\x00" * 14
    assert sniff_image(webp) == "image/webp"
    with pytest.raises(PhotoRejected, match="not a JPEG, PNG or WebP"):
        check_photo(b"hello, I am a text file named photo.png\n", "image/png")
    with pytest.raises(PhotoRejected, match="declared"):
        check_photo(png, "image/jpeg")
    with pytest.raises(PhotoRejected, match="more than"):
        check_photo(png + b"\x00" * 2000, "image/png", max_bytes=1024)
    with pytest.raises(PhotoRejected):
        check_photo(webp[:-5])  # truncated upload
    with pytest.raises(PhotoRejected, match="empty"):
        check_photo(b"")


def test_photos_are_stored_once_by_hash(repo, network, chief_settings):
    issue = repo.report_issue(IssueReport(category="dumping", lat=36.4, lon=120.51, segment_id="R1-001",
                                          found_at=T0), found_by="V1")
    other = repo.report_issue(IssueReport(category="sewage", lat=36.4, lon=120.52, found_at=T0), found_by="V1")
    png = tiny_png()
    a = repo.add_photo("issue", issue.id, png, "image/png")
    assert repo.add_photo("issue", issue.id, png, "image/png").id == a.id  # the retry is the same photo
    b = repo.add_photo("issue", other.id, png)
    assert b.id != a.id and b.path == a.path == f"photos/{a.sha256[:2]}/{a.sha256}.png"
    assert repo.photo_file(a).read_bytes() == png
    assert len(list((chief_settings.data_dir / "photos").rglob("*.png"))) == 1
    with pytest.raises(PhotoRejected):
        repo.add_photo("issue", issue.id, b"GIF89a not accepted", "image/gif")
    small = PatrolRepo(repo.engine, chief_settings.model_copy(update={"photo_max_bytes": 1024}))
    with pytest.raises(PhotoRejected, match="more than"):
        small.add_photo("issue", issue.id, tiny_png(40, 40) + b"\x00" * 1024)
    with pytest.raises(NotFound):
        repo.add_photo("patrol", 999, png)


# --------------------------------------------------------------------------- issues

def test_issue_loop_with_a_failed_review_and_overdue(repo, network):
    issue = repo.report_issue(IssueReport(category="sand_mining", description=" digging at night ", lat=36.4,
                                          lon=120.51, segment_id="R1-002", found_at=T0), found_by="V1")
    assert issue.state.value == "found" and issue.town == "通济街道" and issue.description == "digging at night"
    with pytest.raises(InvalidTransition, match="cannot rectify in state 'found'") as exc:
        repo.rectify_issue(issue.id, 1, at=T0)
    assert isinstance(exc.value, ValueError)
    with pytest.raises(InvalidTransition):
        repo.review_issue(issue.id, True, at=T0)

    a = repo.assign_issue(issue.id, "village", "东村村委", at=T0 + timedelta(hours=1), by="T1")
    assert a.state.value == "assigned" and a.deadline == T0 + timedelta(days=2, hours=1) == a.first_deadline
    with pytest.raises(InvalidTransition):
        repo.assign_issue(issue.id, "town", "通济街道", at=T0 + timedelta(hours=2))
    assert repo.overdue_issues(T0 + timedelta(days=2)) == []
    assert [x.id for x in repo.overdue_issues(T0 + timedelta(days=2, hours=2))] == [issue.id]

    other = repo.report_issue(IssueReport(category="other", lat=36.4, lon=120.5, found_at=T0), found_by="V1")
    other_photo = repo.add_photo("issue", other.id, tiny_png(2, 2))
    with pytest.raises(PhotoRequired):
        repo.rectify_issue(issue.id, other_photo.id, at=T0 + timedelta(days=1))
    with pytest.raises(PhotoRequired):
        repo.rectify_issue(issue.id, 12345, at=T0 + timedelta(days=1))
    photo = repo.add_photo("issue", issue.id, tiny_png())
    r = repo.rectify_issue(issue.id, photo.id, at=T0 + timedelta(days=1), by="东村村委")
    assert r.state.value == "rectified" and r.rectify_photo_id == photo.id
    assert repo.overdue_issues(T0 + timedelta(days=5)) == []  # waiting for review is not the assignee's delay

    fail_at = T0 + timedelta(days=1, hours=5)
    f = repo.review_issue(issue.id, False, at=fail_at, by="T1", note="still there")
    assert f.state.value == "assigned" and f.reopened == 1 and f.review_passed is False
    assert f.deadline == fail_at + timedelta(days=2) and f.first_deadline == T0 + timedelta(days=2, hours=1)
    assert f.rectified_at is None
    assert [x.id for x in repo.overdue_issues(fail_at + timedelta(days=3))] == [issue.id]

    repo.rectify_issue(issue.id, photo.id, at=fail_at + timedelta(days=1))
    c = repo.review_issue(issue.id, True, at=fail_at + timedelta(days=1, hours=2), by="T1")
    assert c.state.value == "closed" and c.closed_at == fail_at + timedelta(days=1, hours=2)
    assert [e.event for e in c.history] == ["found", "assigned", "rectified", "review_failed", "rectified",
                                            "review_passed"]
    assert [(e.from_state and e.from_state.value, e.to_state.value) for e in c.history][3] == ("rectified",
                                                                                               "assigned")
    assert repo.overdue_issues(fail_at + timedelta(days=10)) == []
    with pytest.raises(InvalidTransition):
        repo.review_issue(issue.id, True)
    assert issue_feature(c)["geometry"] == {"type": "Point", "coordinates": [120.51, 36.4]}


def test_scoped_issue_queries_and_overdue_notified_once_per_deadline(repo, network):
    mine = repo.report_issue(IssueReport(category="dumping", lat=36.4, lon=120.51, found_at=T0), found_by="V1")
    theirs = repo.report_issue(IssueReport(category="sewage", lat=36.4, lon=120.51, found_at=T0), found_by="T1")
    repo.assign_issue(theirs.id, "village", "V1", at=T0)  # assigned to chief V1 by id
    repo.report_issue(IssueReport(category="other", lat=36.4, lon=120.51, found_at=T0), found_by="T1")
    assert {i.id for i in repo.list_issues(involving="V1")} == {mine.id, theirs.id}
    assert [i.id for i in repo.list_issues(overdue=True, at=T0 + timedelta(days=3))] == [theirs.id]
    assert theirs.id not in {i.id for i in repo.list_issues(overdue=False, at=T0 + timedelta(days=3))}
    assert repo.list_issues(overdue=True, at=T0 + timedelta(days=1)) == []

    late = T0 + timedelta(days=3)
    [due] = repo.overdue_to_notify(late)
    repo.record_overdue_notified(due, late)
    assert repo.overdue_to_notify(late + timedelta(days=1)) == []
    photo = repo.add_photo("issue", theirs.id, tiny_png())
    repo.rectify_issue(theirs.id, photo.id, at=late)
    repo.review_issue(theirs.id, False, at=late + timedelta(hours=1))  # a new deadline: missing it is news again
    assert [i.id for i in repo.overdue_to_notify(late + timedelta(days=4))] == [theirs.id]
    assert repo.get_issue(theirs.id).history[2].event == "overdue_notified"


def test_deadlines_by_assignee_kind(repo, network):
    for kind, days in (("village", 2), ("town", 3), ("department", 4)):
        i = repo.report_issue(IssueReport(category="floating_waste", lat=36.4, lon=120.5, found_at=T0), found_by="T1")
        assert repo.assign_issue(i.id, kind, "someone", at=T0).deadline == T0 + timedelta(days=days)
    i = repo.report_issue(IssueReport(category="other", lat=36.4, lon=120.5, found_at=T0), found_by="T1")
    with pytest.raises(PatrolError):
        repo.assign_issue(i.id, "village", "   ", at=T0)
    with pytest.raises(ValueError):
        repo.assign_issue(i.id, "ministry", "x", at=T0)
    with pytest.raises(PatrolError, match="before it was found"):
        repo.assign_issue(i.id, "village", "x", at=T0 - timedelta(hours=1))


# --------------------------------------------------------------------------- compliance

def test_due_periods_belong_to_the_report_in_which_they_end():
    june = (datetime(2026, 6, 1, tzinfo=SHANGHAI), datetime(2026, 7, 1, tzinfo=SHANGHAI))
    # 1 June 2026 is a Monday: weeks 1–7, 8–14, 15–21, 22–28 June; 29 June–5 July ends in July: July's.
    assert [len(due_periods(u, *june, SHANGHAI)) for u in ("week", "dekad", "month", "quarter", "year")] == [
        4, 3, 1, 1, 0]  # the second quarter ends with June
    year = (datetime(2026, 1, 1, tzinfo=SHANGHAI), datetime(2027, 1, 1, tzinfo=SHANGHAI))
    # 52 weeks end in 2026 (Mondays 5 January … 28 December); the one from 29 December ends in 2027.
    assert [len(due_periods(u, *year, SHANGHAI)) for u in ("week", "dekad", "month", "quarter", "year")] == [
        52, 36, 12, 4, 1]
    # December 2026: the week 30 November–6 December straddles the boundary and belongs to December.
    dec = due_periods("week", datetime(2026, 12, 1, tzinfo=SHANGHAI), datetime(2027, 1, 1, tzinfo=SHANGHAI),
                      SHANGHAI)
    assert dec[0] == (datetime(2026, 11, 30, tzinfo=SHANGHAI), datetime(2026, 12, 7, tzinfo=SHANGHAI))
    assert dec[-1][1] == datetime(2026, 12, 28, tzinfo=SHANGHAI) and len(dec) == 4
    nov = due_periods("week", datetime(2026, 11, 1, tzinfo=SHANGHAI), datetime(2026, 12, 1, tzinfo=SHANGHAI),
                      SHANGHAI)
    assert nov[-1][1] == datetime(2026, 11, 30, tzinfo=SHANGHAI)  # not the straddling week: no week counted twice
    # As of 1 December 00:20 local nothing of December is over; as of 7 December the first week is.
    assert due_periods("week", *dec_bounds(), SHANGHAI, as_of=datetime(2026, 12, 1, 0, 20, tzinfo=SHANGHAI)) == []
    assert len(due_periods("week", *dec_bounds(), SHANGHAI, as_of=datetime(2026, 12, 7, tzinfo=SHANGHAI))) == 1
    # February's last dekad is 21–28 (29 in a leap year); UTC bounds are read in local time (+08:00).
    feb = full_periods("dekad", datetime(2026, 2, 20, 16, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=SHANGHAI),
                       SHANGHAI)
    assert feb == [(datetime(2026, 2, 21, tzinfo=SHANGHAI), datetime(2026, 3, 1, tzinfo=SHANGHAI))]
    leap = due_periods("dekad", datetime(2028, 2, 1, tzinfo=SHANGHAI), datetime(2028, 3, 1, tzinfo=SHANGHAI),
                       SHANGHAI)
    assert leap[-1] == (datetime(2028, 2, 21, tzinfo=SHANGHAI), datetime(2028, 3, 1, tzinfo=SHANGHAI))
    with pytest.raises(ValueError):
        Frequency.parse("2/fortnight")


def dec_bounds() -> tuple[datetime, datetime]:
    return datetime(2026, 12, 1, tzinfo=SHANGHAI), datetime(2027, 1, 1, tzinfo=SHANGHAI)


def _starts(*rows: tuple[str, datetime, bool]) -> PatrolStarts:
    return PatrolStarts.of(rows)


def test_four_patrols_on_one_day_are_not_a_month_of_weekly_duty():
    chief = Chief(id="C1", name="Li", level=Level.village, town="T", village="V", segment_ids=["S1"])
    nov = (datetime(2026, 11, 1, tzinfo=SHANGHAI), datetime(2026, 12, 1, tzinfo=SHANGHAI))
    one_day = [("C1", datetime(2026, 11, 10, h, tzinfo=SHANGHAI), True) for h in (8, 10, 14, 16)]
    rep = build_compliance([chief], _starts(*one_day), *nov, SHANGHAI, DEFAULT_FREQUENCIES)
    c = rep.chiefs[0]
    # Five weeks end in November (1 November 2026 is a Sunday: 26 Oct–1 Nov, 2–8, … 23–29); one held patrols.
    assert (c.periods_due, c.periods_met, c.required, c.counted, c.valid, c.rate) == (5, 1, 5, 1, 4, 0.2)
    assert [p.met for p in c.periods] == [False, False, True, False, False] and c.periods[2].valid == 4
    # One a week, every week: all met.
    weekly = [("C1", datetime(2026, 10, 28, 9, tzinfo=SHANGHAI), True)]
    weekly += [("C1", datetime(2026, 11, d, 9, tzinfo=SHANGHAI), True) for d in (3, 10, 17, 24)]
    assert build_compliance([chief], _starts(*weekly), *nov, SHANGHAI).chiefs[0].rate == 1.0
    # Invalid patrols never meet a period; a town chief at 3/month who made 2 gets 2/3, not 0.
    town = Chief(id="T1", name="Wu", level=Level.town, town="T", segment_ids=["S1"])
    freqs = {**DEFAULT_FREQUENCIES, "town": Frequency(3, "month")}
    two = _starts(("T1", datetime(2026, 11, 3, tzinfo=SHANGHAI), True), ("T1", datetime(2026, 11, 4, tzinfo=SHANGHAI),
                                                                          True),
                  ("T1", datetime(2026, 11, 5, tzinfo=SHANGHAI), False))
    t = build_compliance([town], two, *nov, SHANGHAI, freqs).chiefs[0]
    assert (t.required, t.counted, t.periods_met, t.patrols, t.valid, t.rate) == (3, 2, 0, 3, 2, round(2 / 3, 4))


def test_a_straddling_week_counts_in_the_month_it_ends_with_its_patrols_before_the_month():
    chief = Chief(id="C1", name="Li", level=Level.village, town="T", village="V", segment_ids=["S1"])
    # Monday 30 November: the week 30 Nov–6 Dec is December's; its patrol on 30 November counts there.
    monday = ("C1", datetime(2026, 11, 30, 9, tzinfo=SHANGHAI), True)
    dec = build_compliance([chief], _starts(monday), *dec_bounds(), SHANGHAI, DEFAULT_FREQUENCIES,
                           as_of=datetime(2027, 1, 5, tzinfo=SHANGHAI)).chiefs[0]
    assert dec.periods[0].start == datetime(2026, 11, 30, tzinfo=SHANGHAI) and dec.periods[0].met
    assert (dec.periods_due, dec.periods_met) == (4, 1)
    assert (dec.patrols, dec.valid) == (0, 0)  # done in November, shown with November's patrols
    nov = build_compliance([chief], _starts(monday), datetime(2026, 11, 1, tzinfo=SHANGHAI),
                           datetime(2026, 12, 1, tzinfo=SHANGHAI), SHANGHAI, DEFAULT_FREQUENCIES).chiefs[0]
    assert (nov.periods_met, nov.valid) == (0, 1)  # it meets no November week
    # The repository reads the patrols of the straddling week too (before the report's start).
    # (test_compliance_for_hand_made_cases checks the same through the registry)


def _patrol_row(chief: str, segment: str, start: datetime, valid: bool | None, status: str = "finished") -> dict:
    return {"chief_id": chief, "segment_id": segment, "self_started": True, "started_at": start.astimezone(UTC),
            "finished_at": start.astimezone(UTC) + timedelta(minutes=40), "status": status, "point_count": 200,
            "distance_m": 2000.0, "duration_s": 2400.0, "coverage": 0.9 if valid else 0.2, "valid": valid,
            "invalid_reason": None if valid else "off_segment: coverage 0.20 < 0.6"}


def test_compliance_for_hand_made_cases(repo, network):
    d = lambda day, hour=9: datetime(2026, 6, day, hour, tzinfo=SHANGHAI)  # noqa: E731
    rows = [_patrol_row("V1", "R1-001", d(x), True) for x in (2, 9, 16)]  # 3 valid
    rows += [_patrol_row("V1", "R1-001", d(23), False)]  # invalid
    rows += [_patrol_row("V1", "R1-001", datetime(2026, 5, 31, 20, tzinfo=SHANGHAI), True)]  # May: outside
    rows += [_patrol_row("T1", "R1-002", d(x), True) for x in (1, 5, 12, 30)]  # 4 valid, 3 required
    rows += [_patrol_row("T1", "R1-002", datetime(2026, 6, 30, 23, 30, tzinfo=SHANGHAI), True)]  # 15:30 UTC: June
    rows += [_patrol_row("C1", "R1-002", d(3), None, status="open")]  # open: not counted
    with repo.engine.begin() as conn:
        conn.execute(insert(pt.patrols), rows)
    repo.clock.set(datetime(2026, 7, 1, 0, 20, tzinfo=SHANGHAI))  # the first minutes of July: June is over
    rep = repo.compliance(datetime(2026, 6, 1, tzinfo=SHANGHAI), datetime(2026, 7, 1, tzinfo=SHANGHAI))
    by_id = {c.chief_id: c for c in rep.chiefs}
    assert (by_id["V1"].required, by_id["V1"].patrols, by_id["V1"].valid, by_id["V1"].rate) == (4, 4, 3, 0.75)
    assert [p.met for p in by_id["V1"].periods] == [True, True, True, False]
    assert (by_id["T1"].required, by_id["T1"].valid, by_id["T1"].counted, by_id["T1"].rate) == (3, 5, 3, 1.0)
    assert (by_id["C1"].required, by_id["C1"].valid, by_id["C1"].rate) == (1, 0, 0.0)
    town = {r.key: r for r in rep.by_town}["通济街道"]
    assert (town.chiefs, town.required, town.valid, town.rate, town.compliant) == (2, 7, 8, round(6 / 7, 4), 1)
    assert town.rank == 1
    assert town.mean_rate == pytest.approx((0.75 + 1) / 2)
    assert {r.key: r.rate for r in rep.by_level} == {"county": 0.0, "town": 1.0, "village": 0.75}
    assert rep.total.rate == 0.75 and rep.total.compliant == 1
    assert rep.required_by_level == {"county": 1, "town": 3, "village": 4, "grid": 4}
    # July's report owns the week 29 June–5 July, with V1's patrol of 30 June 23:30 local (T1's, in fact).
    july = repo.compliance(datetime(2026, 7, 1, tzinfo=SHANGHAI), datetime(2026, 8, 1, tzinfo=SHANGHAI),
                           as_of=datetime(2026, 8, 1, tzinfo=SHANGHAI))
    assert {c.chief_id: c.periods[0].start for c in july.chiefs if c.level == "village"} == {
        "V1": datetime(2026, 6, 29, tzinfo=SHANGHAI)}
    town_only = repo.compliance(datetime(2026, 6, 1, tzinfo=SHANGHAI), datetime(2026, 7, 1, tzinfo=SHANGHAI),
                                town="通济街道")
    assert [c.chief_id for c in town_only.chiefs] == ["T1", "V1"] and town_only.total.valid == 8
    # Shorter than a week: nothing is due yet.
    short = repo.compliance(d(2, 0), d(5, 0))
    assert {c.chief_id: c.rate for c in short.chiefs} == {"C1": None, "T1": None, "V1": None}


def test_issue_statistics(repo, network):
    june = datetime(2026, 6, 1, tzinfo=SHANGHAI)
    png = tiny_png()

    def issue(found: datetime, assign_after_h: float | None, rectify_after_d: float | None, kind: str = "village"):
        i = repo.report_issue(IssueReport(category="dumping", lat=36.4, lon=120.5, segment_id="R1-001",
                                          found_at=found), found_by="V1")
        if assign_after_h is not None:
            at = found + timedelta(hours=assign_after_h)
            repo.assign_issue(i.id, kind, "东村", at=at)
            if rectify_after_d is not None:
                photo = repo.add_photo("issue", i.id, png)
                repo.rectify_issue(i.id, photo.id, at=at + timedelta(days=rectify_after_d))
                repo.review_issue(i.id, True, at=at + timedelta(days=rectify_after_d, hours=1))
        return i

    issue(june + timedelta(days=1), 1, 1)  # responded, closed on time
    issue(june + timedelta(days=2), 5, 3)  # late response, closed late (deadline 2 days)
    issue(june + timedelta(days=3), 2, None)  # responded, still open
    issue(june + timedelta(days=4), None, None)  # never assigned
    issue(june - timedelta(days=1), 1, 1)  # found in May: not in June's figures
    total, per_town = repo.issue_stats(june, june + timedelta(days=30), as_of=june + timedelta(days=40))
    assert (total.found, total.responded, total.closed, total.closed_on_time, total.open) == (4, 2, 2, 1, 2)
    assert (total.response_rate, total.on_time_rate, total.resolution_rate) == (0.5, 0.5, 0.5)
    assert [(s.key, s.found) for s in per_town] == [("通济街道", 4)]
    # As of 2 June 12:00 only the first issue was assigned (and none closed).
    early, _ = repo.issue_stats(june, june + timedelta(days=30), as_of=june + timedelta(days=1, hours=12))
    assert (early.responded, early.closed, early.on_time_rate) == (1, 0, None)
    empty = issue_stats([], [], [], [])
    assert empty.found == 0 and empty.response_rate is None


# --------------------------------------------------------------------------- generation and import

def test_generation_is_deterministic_and_jimo_sized():
    a, b = generate_river_network(seed=11), generate_river_network(seed=11)
    assert [r.model_dump() for r in a.rivers] == [r.model_dump() for r in b.rivers]
    assert [s.model_dump() for s in a.segments] == [s.model_dump() for s in b.segments]
    assert [c.model_dump() for c in a.chiefs] == [c.model_dump() for c in b.chiefs]
    assert generate_rivers(seed=12)[30].geometry != a.rivers[30].geometry
    counts = a.counts()
    assert counts["rivers"] == 150 and counts["chiefs"] == 400
    assert counts["chiefs_by_level"]["county"] == 5 and counts["chiefs_by_level"]["town"] == 17
    assert len({r.name for r in a.rivers}) == 150 and a.rivers[0].name == "大沽河"
    for s in a.segments:
        g = np.array(s.geometry)
        assert (LON_MIN <= g[:, 0]).all() and (g[:, 0] <= LON_MAX).all()
        assert (LAT_MIN <= g[:, 1]).all() and (g[:, 1] <= LAT_MAX).all()
        assert s.level == (Level.village if s.village else Level.town)
    seg_ids = {s.id for s in a.segments}
    covered = {sid for c in a.chiefs for sid in c.segment_ids}
    assert covered == seg_ids  # town chiefs cover every segment of their town
    assert all(c.segment_ids for c in a.chiefs)
    big = RiverNetwork(a.rivers, a.segments, assign_chiefs(a.rivers, a.segments, BENCHMARK_CHIEFS, seed=11))
    assert len(big.chiefs) == 2000 and big.counts()["chiefs_by_level"]["grid"] > 0
    assert len({c.id for c in big.chiefs}) == 2000


def test_geojson_and_csv_importers(tmp_path, repo):
    net = generate_river_network(n_rivers=25, n_chiefs=60)
    path = tmp_path / "rivers.geojson"
    path.write_text(json.dumps(rivers_to_geojson(net.rivers), ensure_ascii=False), encoding="utf-8")
    assert [r.model_dump() for r in load_rivers_geojson(path)] == [r.model_dump() for r in net.rivers]

    fc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"id": "A", "name": "a"},
         "geometry": {"type": "LineString", "coordinates": [[120.5, 36.4], [120.51, 36.41]]}},
        {"type": "Feature", "properties": {"id": "B", "name": "b"},
         "geometry": {"type": "Point", "coordinates": [120.5, 36.4]}}]}
    with pytest.raises(ValueError, match=r"features\[1\] \(id 'B'\): geometry 'Point'"):
        load_rivers_geojson(fc)
    fc["features"][1]["geometry"] = {"type": "LineString", "coordinates": [[120.5, 96.4], [120.51, 36.41]]}
    with pytest.raises(ValueError, match=r"features\[1\] \(id 'B'\).*lon, lat"):
        load_rivers_geojson(fc)
    del fc["features"][1]["properties"]["name"]
    with pytest.raises(ValueError, match=r"features\[1\].*no 'name'"):
        load_rivers_geojson(fc)

    csv_path = tmp_path / "chiefs.csv"
    write_chiefs_csv(net.chiefs, csv_path)
    seg_ids = {s.id for s in net.segments}
    assert [c.model_dump() for c in load_chiefs_csv(csv_path, seg_ids)] == [c.model_dump() for c in net.chiefs]
    store_network(repo, net)
    assert repo.counts()["chiefs"] == 60

    hand = tmp_path / "hand.csv"
    hand.write_text("name,level,town,village,segment_ids\n"
                    f"王五,village,通济街道,东村,{net.segments[0].id};{net.segments[1].id}\n"
                    "赵六,mayor,通济街道,,\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"row 3 \(chief '赵六'\): level 'mayor'"):
        load_chiefs_csv(hand)
    hand.write_text("name,level,town,village,segment_ids\n王五,village,通济街道,,R9-001\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"row 2 .*needs a village"):
        load_chiefs_csv(hand)
    with pytest.raises(ValueError, match=r"row 2 .*unknown segment\(s\) \['R9-001'\]"):
        load_chiefs_csv(hand, seg_ids)
    hand.write_text("name,level,town,village,segment_ids\n王五,town,通济街道,,\n王五,town,通济街道,,\n",
                    encoding="utf-8")
    with pytest.raises(ValueError, match=r"row 3 .*duplicate chief"):
        load_chiefs_csv(hand)
    hand.write_text("name,level\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"row 1 \(header\): missing columns"):
        load_chiefs_csv(hand)


# --------------------------------------------------------------------------- scale

@pytest.mark.timeout(120)
def test_compliance_for_2000_chiefs_and_75000_patrols(repo):
    """The benchmark's data set (benchmarks/patrols.py times it); here only that the figures add up."""
    net = generate_river_network(n_chiefs=BENCHMARK_CHIEFS)
    store_network(repo, net)
    n = 75_000
    year_start = datetime(2026, 1, 1, tzinfo=SHANGHAI)
    t_gen = time.perf_counter()
    loaded = load_patrol_history(repo.engine, net, n, year_start)
    t_load = time.perf_counter() - t_gen

    t = time.perf_counter()
    rep = repo.compliance(year_start, datetime(2027, 1, 1, tzinfo=SHANGHAI))
    elapsed = time.perf_counter() - t
    print(f"\ncompliance on {repo.engine.dialect.name}: {len(rep.chiefs)} chiefs, {rep.total.patrols} patrols over a "
          f"year in {elapsed * 1000:.0f} ms "
          f"(loading the rows took {t_load:.1f} s); district rate {rep.total.rate}")
    assert len(rep.chiefs) == 2000 and rep.total.patrols == n and rep.total.valid == loaded["valid"]
    assert len(rep.by_town) == 18 and [r.key for r in rep.by_level] == ["county", "town", "village", "grid"]


def test_periods_still_running_are_not_due_yet():
    """Asked mid-month, a village chief owes the weeks already over, not the month's."""
    chief = Chief(id="C1", name="Li", level=Level.village, town="T", village="V", segment_ids=["S1"])
    month = (datetime(2026, 11, 1, tzinfo=SHANGHAI), datetime(2026, 12, 1, tzinfo=SHANGHAI))
    three = _starts(*[("C1", datetime(2026, 11, d, 9, tzinfo=SHANGHAI), True) for d in (3, 10, 17)])
    whole = build_compliance([chief], three, *month, SHANGHAI, DEFAULT_FREQUENCIES)
    assert whole.chiefs[0].required == 5 and whole.chiefs[0].rate == 0.6  # weeks Oct 26-Nov 1 … Nov 23-29
    mid = build_compliance([chief], three, *month, SHANGHAI, DEFAULT_FREQUENCIES,
                           as_of=datetime(2026, 11, 23, 12, tzinfo=SHANGHAI))
    assert mid.chiefs[0].required == 4 and mid.chiefs[0].rate == 0.75  # Nov 23-29 is still running
    early = build_compliance([chief], _starts(), *month, SHANGHAI, DEFAULT_FREQUENCIES,
                             as_of=datetime(2026, 10, 1, tzinfo=SHANGHAI))
    assert early.chiefs[0].required == 0 and early.chiefs[0].rate is None
