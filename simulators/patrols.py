"""The patrol scenario: simulated river chiefs drive the API over HTTP as their phones would.

``smartwater simulate --scenario patrols`` picks N chiefs of the stored river network, gives each a chief login
(and each town involved a supervisor login) through the registry, as ``smartwater user add`` would: this is an
operator's tool, run where the API's registry and token secret are; their bearer tokens are signed with the API's
secret, as ``smartwater token`` does. From then on everything goes through the API.

Over a simulated period (compressed: no waiting, only as long as the requests take), each chief patrols about as
often as their level requires (``SMARTWATER_PATROL_FREQUENCY_*``; now and then a period is missed or patrolled
twice). Most patrols walk the chosen segment with GPS noise (short ones there and back, long ones by e-bike); some
stop early (too short), some walk the wrong place, a few hundred metres beside the river (off the segment). Fixes
go up in batches the way an offline phone sends them: some batches out of order, some twice, sometimes the last
one after the finish. Some patrols find an issue with a photo; the town's supervisor assigns it with a deadline,
it is rectified with a photo and reviewed; some are rectified after their deadline (closed late), a few fail
their first review.

Every request carries simulated times (``started_at``, fix times, ``finished_at``, ``found_at``, ``at``). The API
accepts client times between 2000 and now, so the period ends now at the latest, and a step that would fall
after the period's end is not taken (issues found late in the period stay open). A chief may start a patrol at
most the back-dating grace (48 h) before now, so older simulated patrols are opened the way an office enters paper
records, through the admin import (account ``sim-records``, with a reason on each patrol); their fixes and finish
then go through the chief's calls like any other. The choices of each patrol come
from a generator keyed by (seed, chief, calendar period, index): the same seed and ``--start`` repeat the same
run, whatever the number of workers.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
import secrets
import struct
import threading
import time
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Sequence
from zoneinfo import ZoneInfo

import httpx

from core.auth import Role, TokenSigner, load_secret, new_user
from core.patrols.compliance import Frequency, frequencies_from_settings, full_periods
from core.patrols.geometry import polyline_length_m
from core.patrols.models import Chief, Level
from core.patrols.validity import PatrolRules
from core.settings import Settings
from simulators.rivers import walk_segment

UTC = timezone.utc
SCENARIO = "patrols"
DEFAULT_CHIEFS = 40
DEFAULT_DAYS = 30
DEFAULT_WORKERS = 4
V1 = "/api/v1"
# Nothing is sent stamped later than this before the real now: the API refuses times in the future.
NOW_MARGIN = timedelta(minutes=1)
# Longer stretches are ridden (an e-bike along the embankment), shorter ones walked.
WALK_MAX_M = 3000.0
DEPARTMENT = "区水务局"  # issues found by county chiefs go to the district water bureau

# What chiefs find (docs/domain.md, "River chiefs": the "four disorders" and the rest), with what they write and how often.
CATEGORIES: tuple[tuple[str, str, float], ...] = (
    ("dumping", "河道管理范围内堆放建筑垃圾", 0.28),
    ("floating_waste", "河面漂浮垃圾", 0.25),
    ("sewage", "排污口污水直排入河", 0.14),
    ("illegal_occupation", "河滩地被占用种植", 0.10),
    ("illegal_building", "河道管理范围内新建简易房", 0.08),
    ("sand_mining", "疑似非法采砂", 0.05),
    ("other", "护栏损坏", 0.10),
)


@dataclass(frozen=True, slots=True)
class PatrolMix:
    """Shares of each behaviour; the defaults are a plausible district, a test turns them up."""

    too_short: float = 0.08  # stopped early: shorter than the minimum duration
    off_segment: float = 0.07  # walked the wrong place, beside the river
    missed_period: float = 0.08  # a due patrol not done
    extra_patrol: float = 0.05  # a second patrol in the same period
    bad_fix: float = 0.02  # fixes with a poor accuracy, thrown away by the API's filter
    out_of_order: float = 0.25  # patrols whose batches arrive out of order
    resend: float = 0.15  # patrols with a batch sent twice (no answer seen, sent again)
    late_batch: float = 0.10  # patrols whose last batch arrives after the finish
    patrol_photo: float = 0.3
    issue: float = 0.12  # valid patrols that find an issue
    late_response: float = 0.08  # assigned later than issue_response_h after being found
    late_rectify: float = 0.15  # rectified after the deadline
    review_fail: float = 0.10  # a first rectification that fails review


class PatrolSimError(RuntimeError):
    """The run cannot go on (nothing to simulate, the API unreachable or refusing the simulator's tokens)."""


class ApiError(RuntimeError):
    """One request answered unexpectedly: recorded, and the simulated chief goes on with the next patrol."""


# --------------------------------------------------------------------------- logins

def _username(prefix: str, key: str) -> str:
    name = re.sub(r"[^a-z0-9_.-]", "-", f"{prefix}.{key}".lower())
    return name[:64]


def chief_username(chief_id: str) -> str:
    return _username("simchief", chief_id)


# The account that records the simulated history older than the API's back-dating grace, as an office clerk
# enters paper patrol logs (POST /patrols/import, admins only, with a reason kept on each patrol).
RECORDS_USER = "sim-records"
IMPORT_REASON = "simulated patrol history (smartwater simulate --scenario patrols)"


def supervisor_username(town: str) -> str:
    # Town names are Chinese; a user name must be ASCII: a short digest keeps it stable and unique.
    return _username("simsup", hashlib.sha1(town.encode("utf-8")).hexdigest()[:10])


def _ensure_user(users: Any, username: str, role: Role, display_name: str, town: str | None,
                 chief_id: str | None = None) -> None:
    from core.registry import DuplicateUser

    user = users.get(username)
    if user is None:
        try:  # a random password nobody needs: the simulator signs tokens instead of logging in
            users.add(new_user(username, secrets.token_urlsafe(18), role, display_name=display_name, town=town,
                               chief_id=chief_id))
        except DuplicateUser:  # created by a simultaneous run: check it like an old one
            user = users.get(username)
    if user is not None and (user.role is not role or user.town != town or user.chief_id != chief_id
                             or not user.active):
        raise PatrolSimError(f"user {username!r} exists but is not the simulator's {role.value} of "
                             f"{chief_id or town} (or is disabled); remove or fix it first")


def pick_chiefs(chiefs: Sequence[Chief], n: int, seed: int) -> list[Chief]:
    """``n`` chiefs chosen by the seed; with enough of them a town and a county chief are among them, so issues
    go to towns and departments too, not only to villages."""
    rng = random.Random(f"{seed}:chiefs")
    usable = [c for c in chiefs if c.segment_ids]
    picked: list[Chief] = []
    for level, at_least in ((Level.town, 4), (Level.county, 10)):
        pool = [c for c in usable if c.level is level]
        if n >= at_least and pool:
            picked.append(rng.choice(pool))
    rest = [c for c in usable if c not in picked]
    picked += rng.sample(rest, max(0, min(n - len(picked), len(rest))))
    return sorted(picked[:n], key=lambda c: c.id)


# --------------------------------------------------------------------------- plans

@dataclass(frozen=True, slots=True)
class PlannedPatrol:
    chief_id: str
    start: datetime
    key: str  # seeds this patrol's generator


def plan_patrols(chief: Chief, freq: Frequency, start: datetime, end: datetime, tz: ZoneInfo, seed: int,
                 mix: PatrolMix) -> list[PlannedPatrol]:
    """When ``chief`` starts patrols in ``[start, end)``: ``freq.count`` per calendar period of their level, in
    daylight; a period cut by either end gets its share."""
    span = timedelta(days=400 if freq.unit in ("quarter", "year") else 40)
    out: list[PlannedPatrol] = []
    for a, b in full_periods(freq.unit, start - span, end + span, tz):
        lo, hi = max(a, start), min(b, end)
        if hi <= lo:
            continue
        rng = random.Random(f"{seed}:{chief.id}:{a.date().isoformat()}")
        n = freq.count - (rng.random() < mix.missed_period) + (rng.random() < mix.extra_patrol)
        share = (hi - lo) / (b - a)
        times = []
        for _ in range(n):
            if share < 1 and rng.random() >= share:
                continue
            t = lo + (hi - lo) * rng.random()
            local = t.astimezone(tz)
            day = local.replace(hour=rng.randint(7, 16), minute=rng.randrange(60), second=rng.randrange(60),
                                microsecond=0)
            times.append(day if lo <= day < hi else t.replace(microsecond=0))
        for i, t in enumerate(sorted(times)):
            out.append(PlannedPatrol(chief.id, t.astimezone(UTC), f"{seed}:{chief.id}:{a.date().isoformat()}:{i}"))
    return out


def _there_and_back(geometry: list[list[float]], laps: int) -> list[list[float]]:
    path = list(geometry)
    for k in range(1, laps):
        leg = geometry[::-1] if k % 2 else geometry
        path += leg[1:]
    return path


def _beside(geometry: list[list[float]], metres: float) -> list[list[float]]:
    """The course shifted sideways as a whole (square to its chord): a walk there keeps its shape and its side of
    the river, so it is wrong by place only, never by speed (a per-vertex offset would jump at the bends)."""
    (lon0, lat0), (lon1, lat1) = geometry[0], geometry[-1]
    kx = 111_320.0 * math.cos(math.radians((lat0 + lat1) / 2))
    dx, dy = (lon1 - lon0) * kx, (lat1 - lat0) * 111_320.0
    norm = math.hypot(dx, dy) or 1.0
    east, north = -dy / norm * metres, dx / norm * metres
    return [[lon + east / kx, lat + north / 111_320.0] for lon, lat in geometry]


def walk(kind: str, geometry: list[list[float]], start: datetime, rng: random.Random, rules: PatrolRules,
         mix: PatrolMix) -> list[dict[str, Any]]:
    """The fixes a phone records on a patrol of ``kind`` (valid, too_short, off_segment) along ``geometry``."""
    length = max(polyline_length_m(geometry), 1.0)
    speed = rng.uniform(3.5, 5.0) if length <= WALK_MAX_M else rng.uniform(9.0, 15.0)
    # Long enough, with a margin, by both the distance and the duration minimum: short stretches there and back.
    need = max(length, rules.min_distance_m * 1.25, rules.min_duration_s * 1.25 * speed / 3.6)
    laps = max(1, math.ceil(need / length))
    fraction, course = 1.0, geometry
    if kind == "too_short":
        stop_s = rng.uniform(0.25, 0.8) * max(rules.min_duration_s, 120.0)
        fraction = min(1.0, stop_s * speed / 3.6 / (laps * length))
    elif kind == "off_segment":
        course = _beside(geometry, rng.choice((-1, 1)) * rng.uniform(3.0, 8.0) * rules.coverage_buffer_m)
    fixes = walk_segment(_there_and_back(course, laps), start, speed_kmh=speed,
                         interval_s=rng.choice((5.0, 10.0, 15.0, 20.0)), fraction=fraction,
                         jitter_m=rng.uniform(2.0, 8.0), rng=rng, accuracy_m=round(rng.uniform(4.0, 15.0), 1))
    if rules.max_point_accuracy_m is not None:
        for p in fixes[1:-1]:
            if rng.random() < mix.bad_fix:  # under a bridge or trees: a wild fix the phone itself marks as poor
                p.update(lat=round(p["lat"] + rng.uniform(-0.004, 0.004), 7),
                         accuracy_m=round(rules.max_point_accuracy_m * rng.uniform(1.5, 4.0), 1))
    return fixes


def upload_order(fixes: list[dict[str, Any]], rng: random.Random, mix: PatrolMix
                 ) -> tuple[list[list[dict[str, Any]]], list[dict[str, Any]] | None]:
    """Batches in the order an offline phone sends them (some swapped, one maybe twice), and a last batch held
    back until after the finish (or None)."""
    batches, i = [], 0
    while i < len(fixes):
        size = rng.randint(15, 90)
        batches.append(fixes[i:i + size])
        i += size
    late = batches.pop() if len(batches) > 1 and rng.random() < mix.late_batch else None
    if len(batches) > 1 and rng.random() < mix.out_of_order:
        j = rng.randrange(len(batches) - 1)
        batches[j], batches[j + 1] = batches[j + 1], batches[j]
    if rng.random() < mix.resend:
        k = rng.randrange(len(batches))
        batches.insert(rng.randint(k + 1, len(batches)), batches[k])
    return batches, late


def photo_png(rng: random.Random, width: int = 48, height: int = 32) -> bytes:
    """A small, valid, distinct PNG (a colour gradient): phones' photos, without a camera or an image library."""
    r0, g0, b0 = (rng.randrange(256) for _ in range(3))
    rows = []
    for y in range(height):
        row = bytearray(b"\x00")  # filter: none
        for x in range(width):
            row += bytes(((r0 + 3 * x) % 256, (g0 + 5 * y) % 256, (b0 + x + y) % 256))
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b""))


# --------------------------------------------------------------------------- the run

@dataclass(slots=True)
class PatrolSimSummary:
    start: datetime
    end: datetime
    chiefs: int = 0
    planned: Counter = field(default_factory=Counter)  # valid / too_short / off_segment
    patrols: int = 0
    valid: int = 0
    invalid: int = 0
    reasons: Counter = field(default_factory=Counter)  # invalid_codes of the invalid patrols
    unexpected: int = 0  # planned valid but judged invalid, or the other way round
    late_batches: int = 0
    photos: int = 0
    issues: Counter = field(default_factory=Counter)  # final state
    responded_late: int = 0
    closed_late: int = 0  # closed after the first deadline
    reviews_failed: int = 0
    requests: int = 0
    errors: list[str] = field(default_factory=list)
    wall_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat(), "chiefs": self.chiefs,
                "patrols": {"total": self.patrols, "valid": self.valid, "invalid": self.invalid,
                            "invalid_by_reason": dict(sorted(self.reasons.items())),
                            "planned": dict(sorted(self.planned.items())), "unexpected": self.unexpected,
                            "late_batches": self.late_batches},
                "photos": self.photos,
                "issues": {"found": sum(self.issues.values()), "by_state": dict(sorted(self.issues.items())),
                           "responded_late": self.responded_late, "closed_late": self.closed_late,
                           "reviews_failed": self.reviews_failed},
                "requests": self.requests, "errors": len(self.errors), "wall_s": round(self.wall_s, 1)}


def _iso(ts: datetime, tz: ZoneInfo | None = None) -> str:
    return (ts.astimezone(tz) if tz else ts.astimezone(UTC)).isoformat()


def _parse(ts: str | None) -> datetime | None:
    return datetime.fromisoformat(ts) if ts else None


class PatrolSimulation:
    """One run: ``run()`` drives the API and returns the summary. Build it with ``prepare()``."""

    def __init__(self, settings: Settings, api_url: str, chiefs: list[Chief], chief_tokens: dict[str, str],
                 supervisor_tokens: dict[str, str], start: datetime, end: datetime, seed: int,
                 mix: PatrolMix = PatrolMix(), workers: int = DEFAULT_WORKERS, timeout_s: float = 60.0,
                 records_token: str | None = None) -> None:
        self.settings = settings
        self.records_token = records_token
        self.tz = ZoneInfo(settings.display_timezone)
        self.rules = PatrolRules.from_settings(settings)
        self.freqs = frequencies_from_settings(settings)
        self.chiefs = chiefs
        self.chief_tokens = chief_tokens
        self.supervisor_tokens = supervisor_tokens
        self.start, self.end, self.seed, self.mix = start, end, seed, mix
        self.workers = max(1, workers)
        self.client = httpx.Client(base_url=api_url.rstrip("/"), timeout=timeout_s,
                                   limits=httpx.Limits(max_connections=self.workers + 2))
        self.summary = PatrolSimSummary(start=start, end=end, chiefs=len(chiefs))
        self._lock = threading.Lock()
        self._segments: dict[str, list[list[float]]] = {}

    # -- plumbing
    def _live_from(self) -> datetime:
        """Patrols starting before this are older than the API's back-dating grace: they go in as imports."""
        return datetime.now(UTC) - timedelta(hours=self.settings.patrol_backdate_grace_h) + timedelta(hours=1)

    def _limit(self) -> datetime:
        """Nothing is stamped after this: the period's end, and never the future."""
        return min(self.end, datetime.now(UTC) - NOW_MARGIN)

    def call(self, method: str, path: str, token: str, expect: tuple[int, ...] = (200,), **kw: Any) -> Any:
        try:
            r = self.client.request(method, V1 + path, headers={"Authorization": f"Bearer {token}"}, **kw)
        except httpx.HTTPError as exc:
            raise PatrolSimError(f"the API at {self.client.base_url} does not answer: {exc}") from None
        with self._lock:
            self.summary.requests += 1
        if r.status_code == 401:
            raise PatrolSimError(f"the API at {self.client.base_url} refused the simulator's token ({r.text[:200]}): "
                                 "run the simulator with the API's settings (its data directory or "
                                 "SMARTWATER_AUTH_SECRET, and its registry SMARTWATER_DB_URL)")
        if r.status_code not in expect:
            raise ApiError(f"{method} {path} answered {r.status_code}: {r.text[:300]}")
        return r.json()

    def _record(self, fn: Callable[[PatrolSimSummary], None]) -> None:
        with self._lock:
            fn(self.summary)

    def _bump(self, name: str) -> None:
        self._record(lambda s: setattr(s, name, getattr(s, name) + 1))

    def _error(self, exc: Exception) -> None:
        self._record(lambda s: s.errors.append(str(exc)))

    def _geometry(self, segment_id: str, token: str) -> list[list[float]]:
        geom = self._segments.get(segment_id)
        if geom is None:
            geom = self.call("GET", f"/segments/{segment_id}", token)["geometry"]
            self._segments[segment_id] = geom
        return geom

    # -- a chief
    def run(self, progress: Callable[[int], None] | None = None) -> PatrolSimSummary:
        began = time.monotonic()
        try:
            with ThreadPoolExecutor(self.workers, thread_name_prefix="patrol-sim") as pool:
                futures = [pool.submit(self._run_chief, c) for c in self.chiefs]
                try:
                    for f in futures:
                        f.result()
                        if progress:
                            progress(1)
                except BaseException:  # a PatrolSimError (or Ctrl-C) stops the run: chiefs not started stay home
                    for f in futures:
                        f.cancel()
                    raise
        finally:
            self.client.close()
        self.summary.wall_s = time.monotonic() - began
        return self.summary

    def _run_chief(self, chief: Chief) -> None:
        token = self.chief_tokens[chief.id]
        me = self.call("GET", "/chiefs/me", token)  # what the app shows first: my segments
        segment_ids = me["segment_ids"] or chief.segment_ids
        freq = self.freqs.get(chief.level.value, Frequency(1, "week"))
        for plan in plan_patrols(chief, freq, self.start, self.end, self.tz, self.seed, self.mix):
            try:
                self._patrol(chief, token, segment_ids, plan)
            except ApiError as exc:
                self._error(exc)

    def _patrol(self, chief: Chief, token: str, segment_ids: list[str], plan: PlannedPatrol) -> None:
        rng = random.Random(plan.key)
        r = rng.random()
        kind = ("too_short" if r < self.mix.too_short else
                "off_segment" if r < self.mix.too_short + self.mix.off_segment else "valid")
        segment_id = rng.choice(segment_ids)
        fixes = walk(kind, self._geometry(segment_id, token), plan.start + timedelta(seconds=rng.randint(5, 60)),
                     rng, self.rules, self.mix)
        finished_at = fixes[-1]["ts"] + timedelta(seconds=rng.randint(5, 90))
        if finished_at > self._limit():
            return  # would end after the period (or in the future): not this run's patrol
        tz = self.tz if rng.random() < 0.5 else None  # phones send local or UTC times; both carry an offset
        batches, late = upload_order(fixes, rng, self.mix)
        if plan.start < self._live_from() and self.records_token:
            patrol = self.call("POST", "/patrols/import", self.records_token, (201,), json={
                "chief_id": chief.id, "segment_id": segment_id, "started_at": _iso(plan.start, tz),
                "self_started": True, "reason": IMPORT_REASON})
        else:
            patrol = self.call("POST", "/patrols", token, (201,),
                               json={"segment_id": segment_id, "started_at": _iso(plan.start, tz)})
        pid = patrol["id"]
        for batch in batches:
            self.call("POST", f"/patrols/{pid}/points", token,
                      json={"points": [{**p, "ts": _iso(p["ts"], tz)} for p in batch]})
        if rng.random() < self.mix.patrol_photo:
            self.call("POST", f"/patrols/{pid}/photos", token, (201,),
                      files={"file": ("patrol.png", photo_png(rng), "image/png")})
            self._bump("photos")
        done = self.call("POST", f"/patrols/{pid}/finish", token, json={"finished_at": _iso(finished_at, tz)})
        if late is not None:  # the phone got its signal back after the chief pressed finish
            self.call("POST", f"/patrols/{pid}/points", token,
                      json={"points": [{**p, "ts": _iso(p["ts"], tz)} for p in late]})
            done = self.call("GET", f"/patrols/{pid}", token)

        def count(s: PatrolSimSummary) -> None:
            s.planned[kind] += 1
            s.patrols += 1
            s.late_batches += late is not None
            if done["valid"]:
                s.valid += 1
            else:
                s.invalid += 1
                s.reasons.update(done["invalid_codes"])
            s.unexpected += bool(done["valid"]) != (kind == "valid")

        self._record(count)
        if done["valid"] and rng.random() < self.mix.issue:
            self._issue(chief, token, pid, segment_id, fixes, rng)

    # -- an issue found on a patrol, followed to where the period ends
    def _issue(self, chief: Chief, token: str, patrol_id: int, segment_id: str, fixes: list[dict[str, Any]],
               rng: random.Random) -> None:
        where = fixes[rng.randrange(len(fixes))]
        category, description, _ = rng.choices(CATEGORIES, weights=[w for *_, w in CATEGORIES])[0]
        issue = self.call("POST", "/issues", token, (201,), json={
            "category": category, "description": description, "lat": where["lat"], "lon": where["lon"],
            "segment_id": segment_id, "patrol_id": patrol_id, "found_at": _iso(where["ts"], self.tz)})
        latest = [issue]  # the last answer: the state the issue is left in, even when a step fails
        try:
            self._photo(issue["id"], token, rng)
            self._follow(chief, token, latest, rng)
        finally:
            self._record(lambda s: s.issues.update([latest[-1]["state"]]))

    def _photo(self, issue_id: int, token: str, rng: random.Random) -> int:
        photo = self.call("POST", f"/issues/{issue_id}/photos", token, (201,),
                          files={"file": ("issue.png", photo_png(rng), "image/png")})
        self._bump("photos")
        return photo["id"]

    def _follow(self, chief: Chief, token: str, latest: list[dict[str, Any]], rng: random.Random) -> None:
        """Assign, rectify (late, sometimes), review (failing once, sometimes) until closed or the period ends;
        each answer is appended to ``latest``."""
        issue = latest[-1]
        sup = self.supervisor_tokens.get(issue["town"] or "")
        if sup is None:
            return
        iid, found_at = issue["id"], _parse(issue["found_at"])
        assert found_at is not None
        response_h = self.settings.issue_response_h
        late_response = rng.random() < self.mix.late_response
        delay_h = rng.uniform(response_h * 1.2, 30.0) if late_response else rng.uniform(0.2, response_h * 0.9)
        at = found_at + timedelta(hours=delay_h)
        if at > self._limit():
            return
        if chief.level in (Level.village, Level.grid):
            kind, assignee, rectifier = "village", chief.id, token
        elif chief.level is Level.town:
            kind, assignee, rectifier = "town", chief.id, token
        else:
            kind, assignee, rectifier = "department", DEPARTMENT, sup
        issue = self.call("POST", f"/issues/{iid}/assign", sup,
                          json={"assignee_kind": kind, "assignee": assignee, "at": _iso(at, self.tz)})
        latest.append(issue)
        if late_response:
            self._bump("responded_late")
        late = rng.random() < self.mix.late_rectify
        fail_once = rng.random() < self.mix.review_fail
        for attempt in range(2):
            assigned_at, deadline = _parse(issue["assigned_at"]), _parse(issue["deadline"])
            assert assigned_at is not None and deadline is not None
            if late and attempt == 0:
                at = deadline + timedelta(hours=rng.uniform(3.0, 72.0))
            else:
                at = assigned_at + (deadline - assigned_at) * rng.uniform(0.15, 0.85)
            if at > self._limit():
                return
            photo_id = self._photo(iid, rectifier, rng)
            issue = self.call("POST", f"/issues/{iid}/rectify", rectifier,
                              json={"photo_id": photo_id, "note": "已清理" if attempt == 0 else "已整改到位",
                                    "at": _iso(at, self.tz)})
            latest.append(issue)
            at += timedelta(hours=rng.uniform(2.0, 20.0))
            if at > self._limit():
                return
            passed = attempt > 0 or not fail_once
            issue = self.call("POST", f"/issues/{iid}/review", sup,
                              json={"passed": passed, "note": "" if passed else "未整改到位，重新整改",
                                    "at": _iso(at, self.tz)})
            latest.append(issue)
            if passed:
                closed, first = _parse(issue["closed_at"]), _parse(issue["first_deadline"])
                if closed and first and closed > first:
                    self._bump("closed_late")
                return
            self._bump("reviews_failed")


def default_api_url(settings: Settings) -> str:
    host = settings.api_host
    if host in ("0.0.0.0", "::", ""):  # listening everywhere: reach it on this machine
        host = "127.0.0.1"
    return f"http://[{host}]:{settings.api_port}" if ":" in host else f"http://{host}:{settings.api_port}"


def prepare(settings: Settings, api_url: str | None = None, n_chiefs: int = DEFAULT_CHIEFS,
            days: float = DEFAULT_DAYS, seed: int | None = None, start: datetime | None = None,
            mix: PatrolMix = PatrolMix(), workers: int = DEFAULT_WORKERS) -> PatrolSimulation:
    """Choose the chiefs, make sure they and their towns' supervisors have logins, sign their tokens."""
    from core.patrols.repo import PatrolRepo
    from core.registry import UserRepo, open_registry

    if n_chiefs < 1:
        raise PatrolSimError("--chiefs must be at least 1")
    if days <= 0:
        raise PatrolSimError("--days must be positive")
    api_url = api_url or default_api_url(settings)
    if not api_url.startswith(("http://", "https://")):
        raise PatrolSimError(f"the API URL {api_url!r} must start with http:// or https://")
    seed = settings.district_seed if seed is None else seed
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    if start is None:
        start = now - timedelta(days=days)
    if start.tzinfo is None:
        raise PatrolSimError("the start needs a UTC offset")
    start = start.astimezone(UTC)
    end = start + timedelta(days=days)
    if end > now:
        raise PatrolSimError(f"the period must lie in the past (the API refuses future times): it would end "
                             f"{end.isoformat()}, after now")
    registry = open_registry(settings.db_url)
    try:
        registry.create_schema()
        repo = PatrolRepo(registry.engine, settings)
        chiefs = pick_chiefs(repo.list_chiefs(), n_chiefs, seed)
        if not chiefs:
            raise PatrolSimError("no river chiefs with segments in the registry: run `smartwater init` first")
        town_of = {s.id: s.town for s in repo.list_segments()}
        towns = sorted({town_of[sid] for c in chiefs for sid in c.segment_ids if sid in town_of})
        users = UserRepo(registry.engine)
        for c in chiefs:
            _ensure_user(users, chief_username(c.id), Role.chief, f"Simulated chief {c.name}", c.town, c.id)
        for town in towns:
            _ensure_user(users, supervisor_username(town), Role.supervisor, f"Simulated supervisor, {town}", town)
        _ensure_user(users, RECORDS_USER, Role.admin, "Simulated records clerk (imports the simulated history)", None)
    finally:
        registry.close()
    try:
        signer = TokenSigner(load_secret(settings))
    except (OSError, ValueError) as exc:
        raise PatrolSimError(f"cannot read the token secret: {exc}") from None
    # Tokens live for the whole run; a long run with thousands of chiefs still ends well within a day.
    ttl = max(settings.token_ttl_s, 3600)

    def token(username: str, role: Role) -> str:
        return signer.issue(username, role, ttl)[0]

    return PatrolSimulation(settings, api_url, chiefs,
                            {c.id: token(chief_username(c.id), Role.chief) for c in chiefs},
                            {t: token(supervisor_username(t), Role.supervisor) for t in towns},
                            start, end, seed, mix, workers, records_token=token(RECORDS_USER, Role.admin))


def format_summary(summary: PatrolSimSummary, tz: str = "Asia/Shanghai") -> list[str]:
    """The run in a few human lines (the caller prints the JSON too)."""
    zone = ZoneInfo(tz)
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(summary.reasons.items())) or "none"
    states = ", ".join(f"{k} {v}" for k, v in sorted(summary.issues.items())) or "none"
    lines = [f"{summary.chiefs} chiefs, {summary.start.astimezone(zone):%Y-%m-%d %H:%M} – "
             f"{summary.end.astimezone(zone):%Y-%m-%d %H:%M} ({tz}), {summary.requests} requests in "
             f"{summary.wall_s:.1f} s",
             f"patrols: {summary.patrols} ({summary.valid} valid, {summary.invalid} invalid: {reasons})",
             f"issues: {sum(summary.issues.values())} ({states}); closed late {summary.closed_late}, "
             f"reviews failed {summary.reviews_failed}, assigned late {summary.responded_late}"]
    if summary.unexpected:
        lines.append(f"{summary.unexpected} patrol(s) judged otherwise than planned")
    if summary.errors:
        lines.append(f"{len(summary.errors)} request(s) failed, first: {summary.errors[0]}")
    return lines
