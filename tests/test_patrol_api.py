"""The river-chief API end to end on a real registry: patrols, photos, issues, scope per chief and town, compliance
and the public bulletin."""

from __future__ import annotations

import csv
import io
import random
import re
import warnings
from datetime import datetime, timedelta, timezone

import pytest

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r"Using `httpx` with `starlette.testclient` is deprecated")
    from fastapi.testclient import TestClient

from api import create_app
from api.auth import route_table
from core.auth import Role
from core.mqtt import wait_for
from core.patrols.models import Chief, Level, River, Segment
from core.patrols.repo import PatrolRepo
from core.registry import open_registry
from core.settings import Settings
from core.clock import FixedClock
from core.tsdb import open_store
from simulators.rivers import walk_segment
from tests.auth_util import token_for
from tests.test_patrols import SEG_A, SEG_LONG, straight, tiny_png

UTC = timezone.utc
CST = timezone(timedelta(hours=8))
# The API's clock in these tests: twenty minutes into a new year in the bureau's zone (still 31 December in UTC),
# the moment that once made the bulletin empty.
NOW = datetime(2027, 1, 1, 0, 20, tzinfo=CST).astimezone(UTC)
TOWN_A, TOWN_B = "通济街道", "龙山街道"
SEG_B = straight(36.30, 120.40, 1500)
V1 = "/api/v1"


@pytest.fixture()
def api_settings(tmp_path, registry_url) -> Settings:
    """On SQLite and on a throwaway PostgreSQL database in turn (tests/conftest.py registry_url)."""
    return Settings(_env_file=None, data_dir=tmp_path, db_url=registry_url, auth_user_cache_s=0,
                    photo_max_bytes=4096)


@pytest.fixture()
def world(api_settings):
    """Two towns, three chiefs, users of every kind, and a client; yields (client, headers by user, repo)."""
    registry = open_registry(api_settings.db_url)
    registry.create_schema()
    clock = FixedClock(NOW)
    repo = PatrolRepo(registry.engine, api_settings, clock=clock)
    repo.upsert_rivers([River(id="R1", name="墨水河", geometry=[SEG_A]), River(id="R2", name="龙泉河", geometry=[SEG_B])])
    repo.upsert_segments([
        Segment(id="R1-001", river_id="R1", town=TOWN_A, village="东村", geometry=SEG_A),
        Segment(id="R1-002", river_id="R1", town=TOWN_A, village="西村", geometry=SEG_LONG),
        Segment(id="R2-001", river_id="R2", town=TOWN_B, village="南村", geometry=SEG_B)])
    repo.upsert_chiefs([
        Chief(id="V1", name="王村长", level=Level.village, town=TOWN_A, village="东村", segment_ids=["R1-001"]),
        Chief(id="T1", name="李镇长", level=Level.town, town=TOWN_A, segment_ids=["R1-001", "R1-002"]),
        Chief(id="V2", name="赵村长", level=Level.village, town=TOWN_B, village="南村", segment_ids=["R2-001"])])
    users = {"admin": (Role.admin, {}), "viewer": (Role.viewer, {}), "duty": (Role.duty, {}),
             "sup_a": (Role.supervisor, {"town": TOWN_A}), "sup_b": (Role.supervisor, {"town": TOWN_B}),
             "v1": (Role.chief, {"town": TOWN_A, "chief_id": "V1"}),
             "v2": (Role.chief, {"town": TOWN_B, "chief_id": "V2"}),
             "nolink": (Role.chief, {"town": TOWN_A})}
    headers = {name: {"Authorization": f"Bearer {token_for(api_settings, registry, name, role, **kw)}"}
               for name, (role, kw) in users.items()}
    store = open_store(api_settings.tsdb_url)
    app = create_app(api_settings, registry=registry, store=store, stream=False, clock=clock)
    with TestClient(app) as client:
        yield client, headers, repo
    store.close()
    registry.close()


def _json_points(points: list[dict]) -> list[dict]:
    return [{**p, "ts": p["ts"].isoformat()} for p in points]


def _walked_patrol(client, h, segment=SEG_A, segment_id="R1-001", minutes_ago=45, fraction=1.0) -> dict:
    start = (NOW - timedelta(minutes=minutes_ago)).replace(microsecond=0)
    p = client.post(f"{V1}/patrols", headers=h, json={"segment_id": segment_id, "started_at": start.isoformat()})
    assert p.status_code == 201, p.text
    pts = _json_points(walk_segment(segment, start, fraction=fraction, jitter_m=3))
    r = client.post(f"{V1}/patrols/{p.json()['id']}/points", headers=h, json={"points": pts})
    assert r.status_code == 200, r.text
    done = client.post(f"{V1}/patrols/{p.json()['id']}/finish", headers=h,
                       json={"finished_at": (start + timedelta(minutes=40)).isoformat()})
    assert done.status_code == 200, done.text
    return done.json()


def _issue(client, h, **kw) -> dict:
    body = {"category": "dumping", "lat": 36.40, "lon": 120.505, "segment_id": "R1-001", **kw}
    r = client.post(f"{V1}/issues", headers=h, json=body)
    assert r.status_code == 201, r.text
    return r.json()


# --------------------------------------------------------------------------- patrols

def test_patrol_loop_with_late_shuffled_and_repeated_batches(world):
    client, h, _ = world
    start = (NOW - timedelta(minutes=50)).replace(microsecond=0)
    p = client.post(f"{V1}/patrols", headers=h["v1"], json={"segment_id": "R1-001",
                                                             "started_at": start.astimezone(
                                                                 timezone(timedelta(hours=8))).isoformat()})
    assert p.status_code == 201, p.text
    patrol = p.json()
    assert (patrol["chief_id"], patrol["status"], patrol["valid"], patrol["self_started"]) == ("V1", "open", None, True)
    assert patrol["started_at"] == start.isoformat()  # +08:00 in, UTC out
    pid = patrol["id"]

    pts = _json_points(walk_segment(SEG_A, start, jitter_m=3, rng=random.Random(5)))
    rng = random.Random(6)
    batches = [pts[i:i + 50] for i in range(0, len(pts), 50)]
    rng.shuffle(batches)
    url = f"{V1}/patrols/{pid}/points"
    first = client.post(url, headers=h["v1"], json={"points": list(reversed(batches[0]))})
    assert first.json()["stored"] == len(batches[0])
    again = client.post(url, headers=h["v1"], json={"points": batches[0]})  # the phone was unsure: sent twice
    assert (again.json()["received"], again.json()["stored"]) == (len(batches[0]), 0)
    for b in batches[1:-1]:
        assert client.post(url, headers=h["v1"], json={"points": b}).status_code == 200
    done = client.post(f"{V1}/patrols/{pid}/finish", headers=h["v1"],
                       json={"finished_at": (start + timedelta(minutes=35)).isoformat()})
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "finished" and done.json()["point_count"] == len(pts) - len(batches[-1])
    # The last batch arrives after finishing (offline phone): stored, and the patrol evaluated again.
    late = client.post(url, headers=h["v1"], json={"points": batches[-1]}).json()
    assert late["stored"] == len(batches[-1]) and late["point_count"] == len(pts) and late["valid"] is True
    got = client.get(f"{V1}/patrols/{pid}", headers=h["v1"]).json()
    assert got["valid"] is True and got["invalid_codes"] == [] and got["coverage"] >= 0.99
    assert got["duration_s"] == pytest.approx(1800, abs=15) and got["distance_m"] == pytest.approx(2000, rel=0.1)
    assert client.post(f"{V1}/patrols/{pid}/finish", headers=h["v1"]).status_code == 409

    track = client.get(f"{V1}/patrols/{pid}/track", headers=h["v1"])
    assert track.status_code == 200 and track.headers["content-type"].startswith("application/geo+json")
    feat = track.json()
    assert feat["geometry"]["type"] == "LineString" and len(feat["geometry"]["coordinates"]) == len(pts)
    assert feat["properties"]["times"] == sorted(feat["properties"]["times"])

    short = _walked_patrol(client, h["v1"], fraction=0.1, minutes_ago=120)
    assert short["valid"] is False
    assert short["invalid_codes"] == ["short_duration", "short_distance", "off_segment"]
    listed = client.get(f"{V1}/patrols", headers=h["v1"], params={"valid": "false"}).json()
    assert [x["id"] for x in listed] == [short["id"]]
    since = client.get(f"{V1}/patrols", headers=h["admin"],
                       params={"from": (start - timedelta(seconds=1)).isoformat(), "chief_id": "V1"}).json()
    assert [x["id"] for x in since] == [pid]


def test_patrol_input_errors_are_clear_4xx(world):
    client, h, _ = world
    not_mine = client.post(f"{V1}/patrols", headers=h["v1"], json={"segment_id": "R1-002"})
    assert not_mine.status_code == 422 and "not responsible for segment 'R1-002'" in not_mine.json()["detail"]
    assert client.post(f"{V1}/patrols", headers=h["v1"], json={"segment_id": "R9-999"}).status_code == 404
    naive = client.post(f"{V1}/patrols", headers=h["v1"], json={"segment_id": "R1-001",
                                                                 "started_at": "2026-06-01T08:00:00"})
    assert naive.status_code == 422 and "started_at" in naive.json()["detail"]
    future = client.post(f"{V1}/patrols", headers=h["v1"], json={
        "segment_id": "R1-001", "started_at": (NOW + timedelta(days=1)).isoformat()})
    assert future.status_code == 422 and "between 2000 and now" in future.json()["detail"]
    assert client.post(f"{V1}/patrols", headers=h["admin"], json={"segment_id": "R1-001"}).status_code == 422
    assert client.post(f"{V1}/patrols", headers=h["nolink"], json={"segment_id": "R1-001"}).status_code == 403
    pid = client.post(f"{V1}/patrols", headers=h["v1"], json={"segment_id": "R1-001"}).json()["id"]
    bad = client.post(f"{V1}/patrols/{pid}/points", headers=h["v1"],
                      json={"points": [{"ts": "2026-06-01T08:00:00+08:00", "lat": 91, "lon": 120.5}]})
    assert bad.status_code == 422 and "points.0.lat" in bad.json()["detail"]
    assert client.post(f"{V1}/patrols/{pid}/points", headers=h["v1"], json={"points": []}).status_code == 422
    assert client.get(f"{V1}/patrols", headers=h["admin"], params={"from": "yesterday"}).status_code == 422
    assert client.get(f"{V1}/patrols/999999", headers=h["admin"]).status_code == 404


def test_dispatched_patrol_by_a_supervisor(world):
    client, h, _ = world
    r = client.post(f"{V1}/patrols", headers=h["sup_a"], json={"segment_id": "R1-002", "chief_id": "T1"})
    assert r.status_code == 201 and r.json()["self_started"] is False
    # Another town's chief is not theirs to dispatch.
    assert client.post(f"{V1}/patrols", headers=h["sup_a"],
                       json={"segment_id": "R2-001", "chief_id": "V2"}).status_code == 404


# --------------------------------------------------------------------------- photos

def test_photo_uploads_checked_by_content_and_size(world, api_settings):
    client, h, _ = world
    pid = client.post(f"{V1}/patrols", headers=h["v1"], json={"segment_id": "R1-001"}).json()["id"]
    url = f"{V1}/patrols/{pid}/photos"
    png = tiny_png()
    ok = client.post(url, headers=h["v1"], files={"file": ("river.png", png, "image/png")})
    assert ok.status_code == 201, ok.text
    photo = ok.json()
    assert (photo["content_type"], photo["size"], photo["owner_kind"]) == ("image/png", len(png), "patrol")
    got = client.get(photo["url"], headers=h["v1"])
    assert got.status_code == 200 and got.content == png and got.headers["content-type"] == "image/png"
    assert (api_settings.data_dir / "photos" / photo["sha256"][:2] / f"{photo['sha256']}.png").read_bytes() == png
    assert [x["id"] for x in client.get(f"{V1}/patrols/{pid}", headers=h["v1"]).json()["photos"]] == [photo["id"]]

    text = client.post(url, headers=h["v1"], files={"file": ("photo.png", b"not an image at all", "image/png")})
    assert text.status_code == 415 and "not a JPEG, PNG or WebP" in text.json()["detail"]
    liar = client.post(url, headers=h["v1"], files={"file": ("photo.jpg", png, "image/jpeg")})
    assert liar.status_code == 415 and "declared 'image/jpeg'" in liar.json()["detail"]
    big = client.post(url, headers=h["v1"], files={"file": ("big.png", png + b"\0" * 5000, "image/png")})
    assert big.status_code == 413 and "4096" in big.json()["detail"]
    assert client.post(url, headers=h["v1"]).status_code == 422  # no file part
    assert client.get(f"{V1}/photos/{photo['id']}", headers=h["v2"]).status_code == 404  # not V2's patrol
    assert client.get(f"{V1}/photos/999999", headers=h["admin"]).status_code == 404


# --------------------------------------------------------------------------- issues

def test_issue_loop_review_fail_reopens_pass_closes(world):
    client, h, _ = world
    issue = _issue(client, h["v1"], description="建筑垃圾", category="dumping")
    iid = issue["id"]
    assert (issue["state"], issue["found_by"], issue["town"], issue["overdue"]) == ("found", "V1", TOWN_A, False)
    assert client.post(f"{V1}/issues/{iid}/review", headers=h["sup_a"], json={"passed": True}).status_code == 409
    a = client.post(f"{V1}/issues/{iid}/assign", headers=h["sup_a"],
                    json={"assignee_kind": "village", "assignee": "东村村委"})
    assert a.status_code == 200, a.text
    assert a.json()["state"] == "assigned" and a.json()["deadline"] is not None
    again = client.post(f"{V1}/issues/{iid}/assign", headers=h["sup_a"],
                        json={"assignee_kind": "town", "assignee": TOWN_A})
    assert again.status_code == 409 and "cannot assign in state 'assigned'" in again.json()["detail"]

    photo = client.post(f"{V1}/issues/{iid}/photos", headers=h["v1"],
                        files={"file": ("after.png", tiny_png(2, 2), "image/png")}).json()
    no_photo = client.post(f"{V1}/issues/{iid}/rectify", headers=h["v1"], json={"photo_id": 999999})
    assert no_photo.status_code == 422 and "needs a photo of this issue" in no_photo.json()["detail"]
    r = client.post(f"{V1}/issues/{iid}/rectify", headers=h["v1"], json={"photo_id": photo["id"], "note": "清理完毕"})
    assert r.status_code == 200 and r.json()["state"] == "rectified"
    f = client.post(f"{V1}/issues/{iid}/review", headers=h["sup_a"], json={"passed": False, "note": "还有残留"})
    assert f.status_code == 200 and (f.json()["state"], f.json()["reopened"]) == ("assigned", 1)
    client.post(f"{V1}/issues/{iid}/rectify", headers=h["v1"], json={"photo_id": photo["id"]})
    c = client.post(f"{V1}/issues/{iid}/review", headers=h["sup_a"], json={"passed": True})
    assert c.status_code == 200 and c.json()["state"] == "closed" and c.json()["closed_at"]
    detail = client.get(f"{V1}/issues/{iid}", headers=h["v1"]).json()
    assert [e["event"] for e in detail["history"]] == ["found", "assigned", "rectified", "review_failed", "rectified",
                                                       "review_passed"]
    assert [p["id"] for p in detail["photos"]] == [photo["id"]]
    gj = client.get(f"{V1}/issues/geojson", headers=h["sup_a"]).json()
    assert gj["type"] == "FeatureCollection" and gj["features"][0]["geometry"]["coordinates"] == [120.505, 36.40]
    # A chief may not assign or review (role), whatever the issue.
    assert client.post(f"{V1}/issues/{iid}/review", headers=h["v1"], json={"passed": True}).status_code == 403


def test_overdue_issues_are_flagged_and_notified_once(world, own_broker, request):
    client, h, repo = world
    now = NOW
    late = _issue(client, h["v1"], found_at=(now - timedelta(days=5)).isoformat())
    client.post(f"{V1}/issues/{late['id']}/assign", headers=h["sup_a"],
                json={"assignee_kind": "village", "assignee": "V1", "at": (now - timedelta(days=4)).isoformat()})
    fresh = _issue(client, h["v1"])
    client.post(f"{V1}/issues/{fresh['id']}/assign", headers=h["sup_a"],
                json={"assignee_kind": "department", "assignee": "区水务局"})
    listed = {i["id"]: i["overdue"] for i in client.get(f"{V1}/issues", headers=h["sup_a"]).json()}
    assert listed == {late["id"]: True, fresh["id"]: False}
    assert [i["id"] for i in client.get(f"{V1}/issues", headers=h["sup_a"],
                                        params={"overdue": "true"}).json()] == [late["id"]]
    assert [i["id"] for i in client.get(f"{V1}/issues", headers=h["sup_a"],
                                        params={"overdue": "false"}).json()] == [fresh["id"]]

    # The alert stage's notifier, publishing to a real broker; a subscriber sees what duty staff would.
    from alerts.notify import AlertNotifier
    from core.patrols.overdue import OVERDUE_TOPIC, notify_overdue
    from tests.test_notify import Listener

    # Its own broker: reports are retained, and another run's report on the topic would arrive too.
    settings = client.app.state.settings.model_copy(update={
        "mqtt_url": own_broker.url, "mqtt_client_prefix": "t" + str(abs(hash(request.node.nodeid)))[:10]})
    listener = Listener(settings, topic=OVERDUE_TOPIC)
    listener.start()
    notifier = AlertNotifier(settings, client.app.state.registry)
    notifier.start()
    try:
        assert listener.wait_connected(10)
        assert notify_overdue(repo, notifier) == [late["id"]]
        assert notify_overdue(repo, notifier) == []  # once
        assert wait_for(lambda: listener.got, 10), "no overdue report reached the broker"
        topic, payload, _ = listener.got[0]
        assert (topic, payload["event"], payload["issue_id"], payload["assignee"], payload["town"]) == (
            OVERDUE_TOPIC, "issue_overdue", late["id"], "V1", TOWN_A)
        assert payload["overdue_h"] > 0 and datetime.fromisoformat(payload["deadline"]).utcoffset() is not None
        assert notifier.drain(10)
        assert len(listener.got) == 1
    finally:
        notifier.stop()
        listener.stop()
    history = client.get(f"{V1}/issues/{late['id']}", headers=h["v1"]).json()["history"]
    assert history[-1]["event"] == "overdue_notified"


# --------------------------------------------------------------------------- scope

def _snapshot(client, h, patrol_id: int, issue_id: int) -> tuple:
    p = client.get(f"{V1}/patrols/{patrol_id}", headers=h["admin"]).json()
    i = client.get(f"{V1}/issues/{issue_id}", headers=h["admin"]).json()
    return p, i


def test_every_write_as_the_wrong_chief_is_refused_and_changes_nothing(world):
    client, h, _ = world
    start = (NOW - timedelta(minutes=30)).replace(microsecond=0)
    pid = client.post(f"{V1}/patrols", headers=h["v1"], json={"segment_id": "R1-001",
                                                               "started_at": start.isoformat()}).json()["id"]
    issue = _issue(client, h["v1"])
    iid = issue["id"]
    client.post(f"{V1}/issues/{iid}/assign", headers=h["admin"], json={"assignee_kind": "village", "assignee": "东村"})
    photo = client.post(f"{V1}/issues/{iid}/photos", headers=h["v1"],
                        files={"file": ("a.png", tiny_png(), "image/png")}).json()
    before = _snapshot(client, h, pid, iid)
    png = ("b.png", tiny_png(3, 3), "image/png")
    point = {"ts": start.isoformat(), "lat": 36.4, "lon": 120.5}
    writes = [
        ("POST", f"{V1}/patrols", {"json": {"segment_id": "R1-001", "chief_id": "V1"}}),
        ("POST", f"{V1}/patrols/import", {"json": {"segment_id": "R1-001", "chief_id": "V1", "reason": "paper log",
                                                   "started_at": "2026-03-02T09:00:00+08:00"}}),
        ("POST", f"{V1}/patrols/{pid}/points", {"json": {"points": [point]}}),
        ("POST", f"{V1}/patrols/{pid}/finish", {"json": {}}),
        ("POST", f"{V1}/patrols/{pid}/photos", {"files": {"file": png}}),
        ("POST", f"{V1}/issues", {"json": {"category": "other", "lat": 36.4, "lon": 120.5, "found_by": "V1"}}),
        ("POST", f"{V1}/issues", {"json": {"category": "other", "lat": 36.4, "lon": 120.5, "patrol_id": pid,
                                           "found_by": "V2"}}),
        ("POST", f"{V1}/issues/{iid}/photos", {"files": {"file": png}}),
        ("POST", f"{V1}/issues/{iid}/assign", {"json": {"assignee_kind": "town", "assignee": "x"}}),
        ("POST", f"{V1}/issues/{iid}/rectify", {"json": {"photo_id": photo["id"]}}),
        ("POST", f"{V1}/issues/{iid}/review", {"json": {"passed": True}}),
    ]
    # every write on river-chief objects is in the list: a new one fails here until it is added
    objects = re.compile(rf"{V1}/(patrols|issues|photos|chiefs|rivers|segments|compliance)\b")
    routes = {(m, re.sub(r"\{\w+\}", "{id}", i.path)) for i in route_table(client.app.routes) for m in i.methods
              if m != "GET" and objects.match(i.path)}
    assert routes == {(m, re.sub(r"/\d+", "/{id}", u)) for m, u, _ in writes}
    for who in ("v2", "sup_b"):
        for method, url, kw in writes:
            resp = client.request(method, url, headers=h[who], **kw)
            assert resp.status_code in (403, 404), (who, method, url, resp.status_code, resp.text)
    for method, url, kw in writes:  # read-only roles: 403 before anything is looked up
        for who in ("viewer", "duty"):
            if "assign" in url or "review" in url:
                continue  # managers' steps; duty and viewer are not managers either
            assert client.request(method, url, headers=h[who], **kw).status_code == 403, (who, url)
    assert _snapshot(client, h, pid, iid) == before
    assert client.get(f"{V1}/patrols", headers=h["admin"]).json()[0]["id"] == pid  # no patrol was added
    assert len(client.get(f"{V1}/issues", headers=h["admin"]).json()) == 1


def test_lists_are_scoped_to_the_chief_and_the_town(world):
    client, h, _ = world
    p1 = _walked_patrol(client, h["v1"])
    p2 = _walked_patrol(client, h["v2"], segment=SEG_B, segment_id="R2-001")
    i1 = _issue(client, h["v1"])
    i2 = _issue(client, h["v2"], segment_id="R2-001", lat=36.3, lon=120.4)
    assigned_to_v2 = _issue(client, h["v1"])
    client.post(f"{V1}/issues/{assigned_to_v2['id']}/assign", headers=h["admin"],
                json={"assignee_kind": "village", "assignee": "V2"})

    def ids(who: str, path: str, **params) -> set:
        r = client.get(f"{V1}/{path}", headers=h[who], params=params)
        assert r.status_code == 200, r.text
        return {x["id"] for x in r.json()}

    assert ids("v1", "patrols") == {p1["id"]} and ids("v2", "patrols") == {p2["id"]}
    assert ids("v1", "patrols", chief_id="V2") == set()
    assert ids("sup_a", "patrols") == {p1["id"]} and ids("sup_b", "patrols") == {p2["id"]}
    assert ids("sup_b", "patrols", town=TOWN_A) == set()
    assert ids("viewer", "patrols") == ids("duty", "patrols") == ids("admin", "patrols") == {p1["id"], p2["id"]}
    assert ids("v1", "issues") == {i1["id"], assigned_to_v2["id"]}
    assert ids("v2", "issues") == {i2["id"], assigned_to_v2["id"]}  # found, or assigned to them
    assert ids("sup_a", "issues") == {i1["id"], assigned_to_v2["id"]} and ids("sup_b", "issues") == {i2["id"]}
    assert ids("sup_b", "chiefs") == {"V2"} and ids("v1", "chiefs") == {"V1"} and len(ids("viewer", "chiefs")) == 3
    assert ids("nolink", "patrols") == ids("nolink", "issues") == ids("nolink", "chiefs") == set()
    assert client.get(f"{V1}/patrols/{p1['id']}", headers=h["sup_b"]).status_code == 404
    assert client.get(f"{V1}/patrols/{p1['id']}/track", headers=h["v2"]).status_code == 404
    assert client.get(f"{V1}/issues/{i1['id']}", headers=h["sup_b"]).status_code == 404
    assert client.get(f"{V1}/chiefs/V1", headers=h["v2"]).status_code == 404
    assert client.get(f"{V1}/chiefs/me", headers=h["v2"]).json()["segment_ids"] == ["R2-001"]
    assert client.get(f"{V1}/chiefs/me", headers=h["nolink"]).status_code == 404
    geo = client.get(f"{V1}/issues/geojson", headers=h["sup_b"]).json()
    assert {f["id"] for f in geo["features"]} == {i2["id"]}

    # Map layers are the district's, for everyone signed in.
    rivers = client.get(f"{V1}/rivers/geojson", headers=h["v2"])
    assert rivers.headers["content-type"].startswith("application/geo+json")
    assert [f["properties"]["name"] for f in rivers.json()["features"]] == ["墨水河", "龙泉河"]
    segs = client.get(f"{V1}/segments/geojson", headers=h["v1"], params={"town": TOWN_B}).json()
    assert [f["id"] for f in segs["features"]] == ["R2-001"]
    assert client.get(f"{V1}/rivers/R1", headers=h["viewer"]).json()["segment_ids"] == ["R1-001", "R1-002"]
    assert client.get(f"{V1}/segments/nope", headers=h["viewer"]).status_code == 404


# --------------------------------------------------------------------------- compliance and the bulletin

def test_compliance_and_the_public_bulletin(world):
    client, h, _ = world
    _walked_patrol(client, h["v1"])
    full = client.get(f"{V1}/compliance", headers=h["admin"])
    assert full.status_code == 200, full.text
    body = full.json()
    assert {c["chief_id"] for c in body["chiefs"]} == {"V1", "T1", "V2"} and body["town"] is None
    v1 = next(c for c in body["chiefs"] if c["chief_id"] == "V1")
    assert (v1["patrols"], v1["valid"], v1["frequency"]) == (1, 1, "1/week")
    assert body["total"]["patrols"] == 1 and "issues" in body and body["issues"]["total"]["found"] == 0
    town = client.get(f"{V1}/compliance", headers=h["sup_b"]).json()
    assert {c["chief_id"] for c in town["chiefs"]} == {"V2"} and town["town"] == TOWN_B
    assert client.get(f"{V1}/compliance", headers=h["v1"]).status_code == 403
    bad = client.get(f"{V1}/compliance", headers=h["admin"], params={"from": "2026-07-01T00:00:00+08:00",
                                                                     "to": "2026-06-01T00:00:00+08:00"})
    assert bad.status_code == 422 and "to must be after from" in bad.json()["detail"]
    june = {"from": "2026-06-01T00:00:00+08:00", "to": "2026-07-01T00:00:00+08:00"}
    assert client.get(f"{V1}/compliance", headers=h["admin"], params=june).json()["required_by_level"][
        "village"] == 4

    pub = client.get(f"{V1}/bulletin")  # no token
    assert pub.status_code == 200 and pub.headers["content-type"] == "application/json"
    data = pub.json()
    assert set(data) == {"start", "end", "timezone", "period", "generated_at", "district_rate", "towns", "rows"}
    assert data["timezone"] == "Asia/Shanghai"
    # 00:20 on 1 January: the default is December, the last complete month, and the answer says so.
    assert (data["period"]["month"], data["period"]["label"]) == ("2026-12", "2026-12-01 – 2026-12-31")
    assert datetime.fromisoformat(data["start"]) == datetime(2026, 12, 1, tzinfo=CST)
    rows = {r["chief_id"]: r for r in data["rows"]}
    assert set(rows["V1"]) == {"chief_id", "name", "level", "town", "frequency", "periods_due", "periods_met",
                               "required", "valid", "total", "rate"}
    # The patrol at 23:35 on 31 December counts in December; its week (28 Dec–3 Jan) is January's.
    assert (rows["V1"]["name"], rows["V1"]["valid"], rows["V1"]["total"]) == ("王村长", 1, 1)
    assert (rows["V1"]["periods_due"], rows["V1"]["periods_met"], rows["V1"]["rate"]) == (4, 0, 0.0)
    assert [(t["rank"], t["town"]) for t in data["towns"]] == [(1, TOWN_A), (1, TOWN_B)]  # both at 0: shared rank

    c = client.get(f"{V1}/bulletin", params={"format": "csv", **june})
    assert c.status_code == 200 and c.headers["content-type"].startswith("text/csv")
    assert c.content.startswith(b"\xef\xbb\xbf")  # BOM: Excel reads the names as UTF-8
    assert 'filename="river-chief-bulletin-2026-06.csv"' in c.headers["content-disposition"]
    table = list(csv.reader(io.StringIO(c.content.decode("utf-8-sig"))))
    assert table[1][:2] == ["统计期 / period", "2026-06-01 – 2026-06-30"]
    head = table.index(["chief_id", "name", "level", "town", "frequency", "periods_due", "periods_met", "required",
                        "valid", "total", "rate"])
    towns_at = table.index(["rank", "town", "chiefs", "required", "counted", "rate", "compliant"])
    by_id = {r[0]: r for r in table[head + 1:towns_at - 1]}
    assert by_id["V2"] == ["V2", "赵村长", "village", TOWN_B, "1/week", "4", "0", "4", "0", "0", "0.0"]
    assert {r[1] for r in table[towns_at + 1:]} == {TOWN_A, TOWN_B}
    assert "attachment" in c.headers["content-disposition"]
    assert client.get(f"{V1}/bulletin", params={"format": "xml"}).status_code == 422
    assert client.get(f"{V1}/bulletin", params={"from": "soon"}).status_code == 422


def test_bulletin_and_compliance_choose_a_month(world):
    client, h, _ = world
    nov = client.get(f"{V1}/bulletin", params={"month": "2026-11"}).json()
    assert nov["period"]["month"] == "2026-11" and datetime.fromisoformat(nov["end"]) == datetime(2026, 12, 1,
                                                                                                tzinfo=CST)
    # February 2024, a leap month: its last dekad runs 21–29 February.
    comp = client.get(f"{V1}/compliance", headers=h["admin"], params={"month": "2024-02"}).json()
    assert comp["period"]["label"] == "2024-02-01 – 2024-02-29"
    t1 = next(c for c in comp["chiefs"] if c["chief_id"] == "T1")
    assert t1["periods"][-1]["start"] == "2024-02-20T16:00:00+00:00" and t1["periods_due"] == 3
    one = client.get(f"{V1}/compliance", headers=h["admin"], params={"month": "2026-12", "chief_id": "V1"}).json()
    assert [c["chief_id"] for c in one["chiefs"]] == ["V1"] and len(one["chiefs"][0]["periods"]) == 4
    for bad, why in (({"month": "2026-13"}, "YYYY-MM"), ({"month": "11/2026"}, "YYYY-MM"),
                     ({"month": "2026-11", "from": "2026-11-01T00:00:00+08:00"}, "not both")):
        r = client.get(f"{V1}/bulletin", params=bad)
        assert r.status_code == 422 and why in r.json()["detail"], r.text


def test_back_dated_patrols_and_far_future_fixes_are_refused_with_a_reason(world):
    client, h, _ = world
    old = client.post(f"{V1}/patrols", headers=h["v1"], json={"segment_id": "R1-001",
                                                               "started_at": "2020-01-06T09:00:00+08:00"})
    assert old.status_code == 422, old.text
    assert "at most 48 h before it is recorded" in old.json()["detail"] and "import" in old.json()["detail"]
    start = (NOW - timedelta(minutes=20)).replace(microsecond=0)
    pid = client.post(f"{V1}/patrols", headers=h["v1"], json={"segment_id": "R1-001",
                                                               "started_at": start.isoformat()}).json()["id"]
    ahead = client.post(f"{V1}/patrols/{pid}/points", headers=h["v1"], json={"points": [
        {"ts": "2030-06-01T08:00:00+08:00", "lat": 36.4, "lon": 120.5}]})
    assert ahead.status_code == 422 and "outside patrol" in ahead.json()["detail"], ahead.text
    # An admin records a paper patrol of March: audited, then completed through the usual calls.
    march = datetime(2026, 3, 2, 9, tzinfo=CST)
    imp = client.post(f"{V1}/patrols/import", headers=h["admin"], json={
        "chief_id": "V1", "segment_id": "R1-001", "started_at": march.isoformat(),
        "reason": "纸质巡河记录补录 (paper log, March)"})
    assert imp.status_code == 201, imp.text
    assert (imp.json()["source"], imp.json()["recorded_by"]) == ("import", "admin")
    pts = _json_points(walk_segment(SEG_A, march, jitter_m=3))
    assert client.post(f"{V1}/patrols/{imp.json()['id']}/points", headers=h["admin"],
                       json={"points": pts}).status_code == 200
    done = client.post(f"{V1}/patrols/{imp.json()['id']}/finish", headers=h["admin"],
                       json={"finished_at": (march + timedelta(minutes=40)).isoformat()}).json()
    assert done["valid"] is True
    no_reason = client.post(f"{V1}/patrols/import", headers=h["admin"], json={
        "chief_id": "V1", "segment_id": "R1-001", "started_at": march.isoformat()})
    assert no_reason.status_code == 422 and "reason" in no_reason.json()["detail"]
    assert client.post(f"{V1}/patrols/import", headers=h["v1"], json={
        "chief_id": "V1", "segment_id": "R1-001", "started_at": march.isoformat(), "reason": "mine"}
    ).status_code == 403


# The first minutes of a month and of a year (local), a leap day's last minutes, an ordinary mid-month day.
DEMO_MOMENTS = [datetime(2026, 12, 1, 0, 20, tzinfo=CST), datetime(2027, 1, 1, 0, 20, tzinfo=CST),
                datetime(2028, 2, 29, 23, 50, tzinfo=CST), datetime(2026, 11, 17, 8, 0, tzinfo=CST)]


@pytest.mark.parametrize("now", DEMO_MOMENTS, ids=lambda t: t.strftime("%Y-%m-%dT%H:%M"))
def test_demo_network_and_logins(tmp_path, now):
    """What `smartwater init` and `smartwater demo` add: the generated network once, a chief and a supervisor login;
    with the demo's history, the default bulletin shows numeric rates whatever the day of the month."""
    from smartwater.demo import ensure_river_network, river_chief_logins, seed_patrol_history

    settings = Settings(_env_file=None, data_dir=tmp_path, auth_user_cache_s=0)
    registry = open_registry(settings.db_url)
    registry.create_schema()
    try:
        assert river_chief_logins(registry, settings) == []  # no network, no chief to link
        stored = ensure_river_network(registry, settings)
        assert stored is not None and stored["rivers"] == 150 and stored["chiefs"] == 400
        assert ensure_river_network(registry, settings) is None  # present: left alone
        logins = river_chief_logins(registry, settings)
        assert [what for what, _, _ in logins] == ["River-chief login", "Supervisor login"]
        store = open_store(settings.tsdb_url)
        with TestClient(create_app(settings, registry=registry, store=store, stream=False,
                                   clock=FixedClock(now))) as client:
            tokens = {}
            for _, user, password in logins:
                r = client.post(f"{V1}/auth/login", json={"username": user, "password": password})
                assert r.status_code == 200, r.text
                tokens[user] = {"Authorization": f"Bearer {r.json()['access_token']}"}
            me = client.get(f"{V1}/chiefs/me", headers=tokens["chief"]).json()
            assert me["level"] == "village" and me["segment_ids"]
            town_chiefs = client.get(f"{V1}/chiefs", headers=tokens["supervisor"]).json()
            assert town_chiefs and {c["town"] for c in town_chiefs} == {me["town"]}
            # the demo's patrol history: the bulletin shows a spread of rates, not 400 zeros
            assert seed_patrol_history(registry, settings, now=now)["patrols"] > 1000
            assert seed_patrol_history(registry, settings, now=now) is None  # patrols present: left alone
            data = client.get(f"{V1}/bulletin").json()
            rows = data["rows"]
            rates = [r["rate"] for r in rows]
            assert len(rows) == 400 and None not in rates and max(rates) == 1.0 and min(rates) < 0.5
            assert 0.4 < sum(r == 1.0 for r in rates) / len(rates) < 0.9
            last_month = (now.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
            assert data["period"]["month"] == last_month
            ranks = [t["rank"] for t in data["towns"]]
            assert len(ranks) == 17 and ranks[0] == 1 and ranks == sorted(ranks)
            assert data["district_rate"] is not None
        store.close()
    finally:
        registry.close()


def test_times_out_of_range_are_422_not_500(world):
    client, h, _ = world
    for ts in ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00", "1999-12-31T23:59:59+00:00"):
        r = client.post(f"{V1}/patrols", headers=h["v1"], json={"segment_id": "R1-001", "started_at": ts})
        assert r.status_code == 422 and "between 2000 and 2100" in r.json()["detail"], (ts, r.text)
    pid = client.post(f"{V1}/patrols", headers=h["v1"], json={"segment_id": "R1-001"}).json()["id"]
    r = client.post(f"{V1}/patrols/{pid}/points", headers=h["v1"],
                    json={"points": [{"ts": "0001-01-01T00:00:00+14:00", "lat": 36.4, "lon": 120.5}]})
    assert r.status_code == 422 and "points.0.ts" in r.json()["detail"]
    iid = _issue(client, h["v1"])["id"]
    r = client.post(f"{V1}/issues/{iid}/assign", headers=h["admin"],
                    json={"assignee_kind": "town", "assignee": TOWN_A, "deadline": "9999-12-31T23:59:59-12:00"})
    assert r.status_code == 422, r.text


def test_issue_scope_gaps_other_towns_segment_and_unseen_assignee(world):
    """A chief reporting on another town's segment, a supervisor assigning to another town's chief: refused,
    nothing changed."""
    client, h, _ = world
    before = client.get(f"{V1}/issues", headers=h["admin"]).json()
    body = {"category": "dumping", "lat": 36.30, "lon": 120.40, "segment_id": "R2-001"}  # town B's segment
    resp = client.post(f"{V1}/issues", headers=h["v1"], json=body)  # chief V1 is of town A
    assert resp.status_code == 403 and "R2-001" in resp.json()["detail"], resp.text
    admin_for_v1 = client.post(f"{V1}/issues", headers=h["admin"], json={**body, "found_by": "V1"})
    assert admin_for_v1.status_code == 403, admin_for_v1.text
    assert client.get(f"{V1}/issues", headers=h["admin"]).json() == before
    assert client.post(f"{V1}/issues", headers=h["v2"], json=body).status_code == 201  # town B's own chief may

    issue = _issue(client, h["v1"])  # on R1-001, town A
    resp = client.post(f"{V1}/issues/{issue['id']}/assign", headers=h["sup_a"],
                       json={"assignee_kind": "village", "assignee": "V2"})  # a chief of town B
    assert resp.status_code == 422 and "outside your town" in resp.json()["detail"], resp.text
    detail = client.get(f"{V1}/issues/{issue['id']}", headers=h["admin"]).json()
    assert detail["state"] == "found" and not detail.get("assignee")
    assert client.get(f"{V1}/issues/{issue['id']}", headers=h["v2"]).status_code == 404  # V2 still cannot see it
    ok = client.post(f"{V1}/issues/{issue['id']}/assign", headers=h["sup_a"],
                     json={"assignee_kind": "village", "assignee": "V1"})
    assert ok.status_code == 200, ok.text
