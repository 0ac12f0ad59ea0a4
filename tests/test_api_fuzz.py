"""Schemathesis over the API's own OpenAPI document: every operation, authenticated, must never answer 5xx, must
answer what its document says (status codes, content types, headers, bodies) and must refuse input the document
rules out.

One pytest item per registry and operation (``test_admin_fuzz[postgresql-POST /api/v1/rules]``), so a failure
names the route. The app runs in-process (ASGI) over a real registry (SQLite, then PostgreSQL) and store, seeded
once and copied afresh for every operation, so each operation sees the same stations, readings, alerts, rules,
shifts, chiefs, patrols and issues whatever ran before it. Every request carries an admin's token (every
operation is reachable); the read operations run a second time as a river chief, whose object-level filtering
takes other code paths.

Bounded and reproducible: at most ``FUZZ_EXAMPLES`` cases per operation (SMARTWATER_FUZZ_EXAMPLES, default 25),
valid and invalid ones, derandomised (the same cases on every run, so a CI failure reproduces locally), no example
database. Run more locally with e.g. ``SMARTWATER_FUZZ_EXAMPLES=500 .venv/bin/python -m pytest tests/test_api_fuzz.py``.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import struct
import tempfile
import zlib
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from schemathesis import APIOperation, GenerationMode
from schemathesis.checks import (content_type_conformance, negative_data_rejection, not_a_server_error,
                                 response_headers_conformance, response_schema_conformance, status_code_conformance)

from api import create_app
from core.auth import Role
from core.domain import Alert, DeadLetter, DutyShift, FloodLimitPeriod, Reading, Station
from core.patrols.models import IssueCategory, IssueReport
from core.patrols.repo import PatrolRepo
from core.registry import open_registry
from core.rules import default_rules
from core.settings import Settings
from core.timeutil import utcnow
from core.tsdb import open_store
from simulators.rivers import generate_river_network, store_network, walk_segment
from tests.auth_util import auth_headers

# Hypothesis keeps caches (unicode tables, constants it found in the code) in ./.hypothesis by default: keep the work
# tree clean and put them with the other test artefacts.
set_hypothesis_home_dir(Path(__file__).resolve().parents[1] / "test-artifacts" / "hypothesis")

UTC = timezone.utc
FUZZ_EXAMPLES = int(os.environ.get("SMARTWATER_FUZZ_EXAMPLES", "25"))
SEED = 20260628  # of the generated river network
# A fixed token-signing secret rather than one generated into each data dir.
SECRET = "9c41e07b2d8f56a3e1c0b7d94f2a6e85c3b1d0f7a9e2c4b6"  # a fixed key, random-looking

CHECKS = [
    not_a_server_error,
    status_code_conformance,  # every status the app answers is one its document lists
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,  # input that breaks the document's own constraints gets a 4xx, never a 2xx
    # Not positive_data_acceptance: input that fits the document can still be refused on purpose, by the domain's
    # cross-field checks (a rule's levels must get stricter with severity) or for naming nothing that exists.
]

# How schemathesis generates cases; how many and in what order is Hypothesis's business (settings in _fuzz).
CONFIG = schemathesis.Config.from_dict({
    "generation": {
        # NUL bytes in strings too: the input that breaks C drivers and parsers.
        "allow-x00": True,
        # The token is ours to send (valid, on every request): generated or removed security headers would only
        # test the 401 path, which tests/test_auth.py covers route by route.
        "with-security-parameters": False,
    },
})


def _settings(data_dir: Path, db_url: str | None = None) -> Settings:
    registry = {"db_url": db_url} if db_url else {}  # default: SQLite in data_dir
    return Settings(_env_file=None, data_dir=data_dir, auth_secret=SECRET, auth_user_cache_s=0, **registry,
                    # Fuzzed logins fail by the dozen: a 429 is a fine answer but would hide the 401 path.
                    login_max_failures=1000)


def _openapi() -> dict:
    """The app's document, built without data: the registry and the store are never touched for it."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = _settings(Path(tmp))
        registry, store = open_registry(settings.db_url), open_store(settings.tsdb_url)
        try:
            return create_app(settings, registry=registry, store=store, stream=False).openapi()
        finally:
            store.close()
            registry.close()


# GET /api/v1/alerts/stream is an endless server-sent event stream: a request to it returns only when the client
# goes away, so every fuzzed case would hang until the timeout. tests/test_api_stream.py covers it.
schema = schemathesis.openapi.from_dict(_openapi(), config=CONFIG).exclude(path="/api/v1/alerts/stream")


# -- data ---------------------------------------------------------------------
T0 = datetime(2026, 6, 28, 0, 0, tzinfo=UTC)


def _stations() -> list[Station]:
    return [
        Station(id="R1", kind="reservoir", name="Shimen Reservoir", town="灵山街道", lat=36.4, lon=120.5,
                interval_s=300, river="Moshui", dead_level_m=40.0, normal_level_m=55.0, flood_limit_level_m=53.0,
                design_flood_level_m=58.5, check_flood_level_m=59.8, crest_level_m=61.0,
                level_storage=[(40.0, 1.0), (50.0, 5.0), (60.0, 12.0)],
                flood_limit_periods=[FloodLimitPeriod(start="0601", end="0731", level_m=52.5, type="main")]),
        Station(id="V1", kind="river", name="Moshui at Lingshan", town="灵山街道", lat=36.41, lon=120.51,
                river="Moshui", warning_level_m=12.0, guaranteed_level_m=14.5),
        Station(id="P1", kind="rain", name="Duancun rain gauge", town="段泊岚镇", lat=36.5, lon=120.3,
                village="Duancun"),
        Station(id="W1", kind="village_water", name="Dongcun tap", town="段泊岚镇", lat=36.51, lon=120.31,
                village="Dongcun"),
    ]


def _png() -> bytes:
    """A 1×1 PNG: the smallest photo the photo checks accept."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00\x00\x00\x00")) + chunk(b"IEND", b""))


def _seed(settings: Settings) -> dict[str, list]:
    """Fill a fresh registry and store; returns the ids that exist, per path parameter name."""
    registry = open_registry(settings.db_url)
    store = open_store(settings.tsdb_url)
    try:
        registry.create_schema()
        registry.upsert_stations(_stations())
        now = utcnow().replace(microsecond=0)
        readings = [Reading("R1", "reservoir", "water_level_m", T0 + timedelta(minutes=5 * i), 50.0 + i)
                    for i in range(12)]
        readings += [Reading("V1", "river", "water_level_m", now - timedelta(minutes=10), 11.25),
                     Reading("P1", "rain", "rain_mm", now - timedelta(minutes=5), 1.5),
                     Reading("W1", "village_water", "turbidity_ntu", now - timedelta(minutes=5), 0.4)]
        store.write(readings)
        acked = registry.insert_alert(Alert(
            station_id="R1", kind="reservoir", rule="reservoir_level", metric="water_level_m", severity="yellow",
            state="active", started_at=T0 + timedelta(minutes=15), updated_at=T0 + timedelta(minutes=20),
            value=58.0, threshold=52.5, message="R1 above the flood-limit level"))
        registry.acknowledge_alert(acked.id, "duty")
        cleared = registry.insert_alert(Alert(
            station_id="P1", kind="rain", rule="rainstorm", metric="rain_mm", severity="blue", state="cleared",
            started_at=T0, updated_at=T0 + timedelta(hours=1), value=55.0, threshold=50.0,
            message="rain 55 mm in 12 h", cleared_at=T0 + timedelta(hours=1)))
        registry.add_dead_letters([
            DeadLetter(topic="water/river/V9", payload=b'{"ts": "bad"}', reason="bad_timestamp",
                       detail="not an ISO 8601 timestamp", received_at=T0 + timedelta(minutes=1)),
            DeadLetter(topic="water/rain/P1", payload=b"\xff\x00\xfe", reason="invalid_utf8", detail="not UTF-8",
                       received_at=T0 + timedelta(minutes=2)),
        ])
        registry.upsert_rules(default_rules())
        shift = registry.add_shift(DutyShift(
            person="Wang Fang", email="wang@example.org", phone="+86 532 8851 0000", town="灵山街道",
            starts_at=now - timedelta(hours=4), ends_at=now + timedelta(hours=4)))

        patrols = PatrolRepo(registry.engine, settings)  # its tables come with the registry's migrations
        network = generate_river_network(SEED, n_rivers=3, n_chiefs=30)
        store_network(patrols, network)
        chief = next(c for c in network.chiefs if c.level.value == "village" and c.segment_ids)
        segment = next(s for s in network.segments if s.id == chief.segment_ids[0])
        started = now - timedelta(hours=3)
        patrol = patrols.start_patrol(chief.id, segment.id, started_at=started)
        patrols.add_points(patrol.id, walk_segment(segment, started))
        patrols.finish_patrol(patrol.id, finished_at=started + timedelta(hours=1))
        issue = patrols.report_issue(IssueReport(
            category=IssueCategory.dumping, description="rubbish on the bank", lat=segment.geometry[0][1],
            lon=segment.geometry[0][0], segment_id=segment.id, patrol_id=patrol.id), found_by=chief.id)
        photo = patrols.add_photo("issue", issue.id, _png(), "image/png", uploaded_by=chief.id)

        for role in Role:  # one user per role, named after it; the chief is the one above
            kw = {"town": chief.town, "chief_id": chief.id} if role is Role.chief else {}
            auth_headers(settings, registry, role.value, role, **kw)
        other = next(c for c in network.chiefs if c.id != chief.id and c.level.value == "village")
        return {"station_id": [s.id for s in _stations()], "alert_id": [acked.id, cleared.id],
                "rule_id": [r.id for r in registry.list_rules()[:3]], "shift_id": [shift.id],
                "river_id": [network.rivers[0].id], "segment_id": [segment.id, other.segment_ids[0]],
                "chief_id": [chief.id, other.id], "patrol_id": [patrol.id], "issue_id": [issue.id],
                "photo_id": [photo.id]}
    finally:
        store.close()
        registry.close()


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> tuple[Path, None, dict[str, list]]:
    """The seed on SQLite: a data directory (registry, store, photos) to copy."""
    data_dir = tmp_path_factory.mktemp("fuzz-seed")
    return data_dir, None, _seed(_settings(data_dir))


@pytest.fixture(scope="module")
def seeded_pg(tmp_path_factory, postgres) -> tuple[Path, str, dict[str, list]]:
    """The seed with the registry on PostgreSQL: a data directory (store, photos) and a template database."""
    data_dir, url = tmp_path_factory.mktemp("fuzz-seed-pg"), postgres.create_database()
    return data_dir, url, _seed(_settings(data_dir, url))


@pytest.fixture(params=["sqlite", "postgresql"])
def fuzz_app(request, tmp_path):
    """The app over a private copy of the seeded data: what one operation writes, no other operation sees.

    Both registries: the server tier runs on PostgreSQL, whose types (32-bit integers, strict text) refuse input
    that SQLite stores without a word.
    """
    seed_dir, seed_url, ids = request.getfixturevalue("seeded" if request.param == "sqlite" else "seeded_pg")
    data_dir = tmp_path / "data"
    shutil.copytree(seed_dir, data_dir)
    db_url = None
    if seed_url:
        postgres = request.getfixturevalue("postgres")
        db_url = postgres.create_database(template_url=seed_url)
        request.addfinalizer(lambda: postgres.drop_database(db_url))
    settings = _settings(data_dir, db_url)
    registry, store = open_registry(settings.db_url), open_store(settings.tsdb_url)
    app = create_app(settings, registry=registry, store=store, stream=False)
    app.state.fuzz_headers = {role: auth_headers(settings, registry, role.value, role)
                              for role in (Role.admin, Role.chief)}
    app.state.fuzz_ids = ids
    yield app
    store.close()
    registry.close()


# -- tests --------------------------------------------------------------------
# Parametrised here rather than with schema.parametrize(): under pytest 9.2 its items' node ids lose the
# "[METHOD /path]" suffix, so a failure in the summary would not name its route and could not be rerun alone.
OPERATIONS = [result.ok() for result in schema.get_all_operations()]
READ_OPERATIONS = [op for op in OPERATIONS if op.method.upper() == "GET"]

def _cases(operation: APIOperation, known_ids: dict[str, list]) -> st.SearchStrategy[schemathesis.Case]:
    """Valid cases, invalid cases, and, where every path parameter names a seeded object, valid cases about those:
    a generated id almost never exists, and then only the 404 path would ever run."""
    strategies = [operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)]
    names = re.findall(r"\{(\w+)\}", operation.path)
    if names and all(n in known_ids for n in names):
        paths = [dict(zip(names, ids)) for ids in itertools.product(*(known_ids[n] for n in names))]
        strategies.append(st.sampled_from(paths).flatmap(
            lambda p: operation.as_strategy(GenerationMode.POSITIVE, path_parameters=p)))
    return st.one_of(strategies)


def _fuzz(operation: APIOperation, app, role: Role) -> None:
    headers = app.state.fuzz_headers[role]
    cases = _cases(operation, app.state.fuzz_ids)

    # derandomize: the same cases on every run; database=None: nothing written to .hypothesis/ in the work tree.
    @settings(max_examples=FUZZ_EXAMPLES, derandomize=True, database=None, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
    @given(case=cases)
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(app=app, headers=headers, checks=CHECKS)

    run()


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: op.label)
def test_admin_fuzz(operation, fuzz_app):
    _fuzz(operation, fuzz_app, Role.admin)


@pytest.mark.parametrize("operation", READ_OPERATIONS, ids=lambda op: op.label)
def test_chief_reads_fuzz(operation, fuzz_app):
    _fuzz(operation, fuzz_app, Role.chief)


def test_every_operation_but_the_stream_is_fuzzed():
    labels = {op.label for op in OPERATIONS}
    assert {"GET /healthz", "POST /api/v1/auth/login", "GET /api/v1/stations/{station_id}/readings",
            "POST /api/v1/rules", "DELETE /api/v1/duty-roster/{shift_id}"} <= labels
    assert "GET /api/v1/alerts/stream" not in labels


def test_seeded_ids_match_path_parameters(seeded):
    # A renamed path parameter would quietly send every case back to the 404 path.
    used = {name for op in OPERATIONS for name in re.findall(r"\{(\w+)\}", op.path)}
    ids = seeded[2]
    assert set(ids) <= used, set(ids) - used
