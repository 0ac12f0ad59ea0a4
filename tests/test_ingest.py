"""Ingest against a real Mosquitto: good readings stored, garbage dead-lettered, outages survived."""

from datetime import timedelta

import pytest

from core.mqtt import Publisher, wait_for
from core.payload import encode
from core.timeutil import utcnow
from core.tsdb import StoreUnavailable
from ingest import Ingestor


@pytest.fixture
def publisher(settings):
    p = Publisher(settings, settings.mqtt_client_prefix + "-pub").start()
    yield p
    p.stop()


@pytest.fixture
def ingestor(settings, registry, store, stations):
    ing = Ingestor(settings, registry, store)
    ing.start()
    assert ing.wait_connected(10)
    yield ing
    ing.stop()


def test_readings_are_stored_and_garbage_dead_lettered(ingestor, publisher, store, registry):
    t0 = utcnow() - timedelta(hours=2)
    infos = [publisher.publish("water/rain/RG9001", encode(t0 + timedelta(seconds=10 * i), {"rain_mm": 0.1 * i}))
             for i in range(300)]
    bad = [("water/rain/RG9001", b"{nope"), ("water/rain/NOPE", encode(t0, {"rain_mm": 1})),
           ("water/rain/RG9001", b'{"ts": "2026-01-01T00:00:00+08:00", "values": {"rain_mm": NaN}}'),
           ("water/rain/RG9001", b"\xc3\x28")]
    infos += [publisher.publish(t, p) for t, p in bad]
    # our own alert notifications share the water/ root and must be neither stored nor dead letters
    infos.append(publisher.publish("water/alerts/red", b'{"id": 1}'))
    assert publisher.wait_all_published(infos)
    assert wait_for(lambda: store.counts_by_kind().get("rain") == 300 and registry.count_dead_letters() == 4, 15)
    got = store.query("RG9001", "rain_mm", t0, t0 + timedelta(hours=6))
    assert [round(r.value, 6) for r in got] == [round(0.1 * i, 6) for i in range(300)]
    reasons = sorted(d.reason for d in registry.list_dead_letters())
    assert reasons == ["invalid_json", "invalid_utf8", "not_finite", "unknown_station"]
    assert {d.payload for d in registry.list_dead_letters()} == {p for _, p in bad}
    assert wait_for(lambda: ingestor.pending == 0, 5)
    assert ingestor.health()["status"] == "ok"


class FlakyStore:
    """The real SQLite store behind a switch that makes it unreachable, as a database outage would."""

    def __init__(self, inner):
        self.inner, self.down, self.failed_writes = inner, False, 0

    def write(self, readings):
        if self.down:
            self.failed_writes += 1
            raise StoreUnavailable("store is down (test)")
        self.inner.write(readings)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_store_outage_holds_messages_and_catches_up(settings, registry, store, stations, publisher):
    flaky = FlakyStore(store)
    ing = Ingestor(settings, registry, flaky)
    ing.start()
    try:
        assert ing.wait_connected(10)
        flaky.down = True
        t0 = utcnow() - timedelta(hours=1)
        infos = [publisher.publish("water/river/RV9001", encode(t0 + timedelta(seconds=i), {"water_level_m": 9.0}))
                 for i in range(500)]
        assert publisher.wait_all_published(infos)
        assert wait_for(lambda: ing.health()["status"] == "degraded" and flaky.failed_writes >= 2, 10)
        assert store.counts_by_kind() == {}
        flaky.down = False
        assert wait_for(lambda: store.counts_by_kind().get("river") == 500, 60)
        assert wait_for(lambda: ing.health()["status"] == "ok", 5)
    finally:
        ing.stop()


def test_messages_published_while_ingest_is_down_arrive_after_restart(settings, registry, store, stations, publisher):
    ing = Ingestor(settings, registry, store)
    ing.start()
    assert ing.wait_connected(10)
    ing.stop()  # the persistent session stays at the broker and queues for us
    t0 = utcnow() - timedelta(hours=1)
    infos = [publisher.publish("water/rain/RG9001", encode(t0 + timedelta(seconds=i), {"rain_mm": 1.0}))
             for i in range(1000)]
    assert publisher.wait_all_published(infos)
    ing = Ingestor(settings, registry, store)
    ing.start()
    try:
        assert wait_for(lambda: store.counts_by_kind().get("rain") == 1000, 30)
    finally:
        ing.stop()


def test_a_write_the_store_refuses_becomes_a_dead_letter_not_a_stall(settings, registry, store, stations, publisher):
    class Refusing:
        """The real store, refusing readings of one value as a store rejects a bad point (HTTP 400)."""

        def __init__(self, inner):
            self.inner = inner

        def write(self, readings):
            if any(r.value == 13.13 for r in readings):
                raise ValueError("partial write: field type conflict")
            self.inner.write(readings)

        def __getattr__(self, name):
            return getattr(self.inner, name)

    ing = Ingestor(settings, registry, Refusing(store))
    ing.start()
    try:
        assert ing.wait_connected(10)
        t0 = utcnow() - timedelta(hours=1)
        infos = [publisher.publish("water/river/RV9001",
                                   encode(t0 + timedelta(seconds=i), {"water_level_m": 13.13 if i == 7 else 9.0}))
                 for i in range(50)]
        assert publisher.wait_all_published(infos)
        assert wait_for(lambda: store.counts_by_kind().get("river") == 49 and registry.count_dead_letters() == 1, 15)
        (dead,) = registry.list_dead_letters()
        assert dead.reason == "store_rejected" and "field type conflict" in dead.detail and b"13.13" in dead.payload
        assert wait_for(lambda: ing.pending == 0 and ing.stats.readings_written["river"] == 49, 5)
    finally:
        ing.stop()


def test_metrics_and_health_endpoint(settings, registry, store, stations, publisher):
    import httpx

    from ingest.metrics import HealthServer

    ing = Ingestor(settings, registry, store)
    ing.start()
    srv = HealthServer("127.0.0.1", 0, ing.health)
    srv.start()
    try:
        assert ing.wait_connected(10)
        t0 = utcnow() - timedelta(hours=1)
        infos = [publisher.publish("water/rain/RG9001", encode(t0 + timedelta(seconds=i), {"rain_mm": 0.2}))
                 for i in range(20)] + [publisher.publish("water/rain/RG9001", b"garbage")]
        assert publisher.wait_all_published(infos)
        assert wait_for(lambda: store.counts_by_kind().get("rain") == 20 and ing.pending == 0, 10)
        base = f"http://127.0.0.1:{srv.port}"
        text = httpx.get(f"{base}/metrics").text
        assert 'smartwater_ingest_readings_written_total{kind="rain"}' in text
        assert 'smartwater_ingest_dead_letters_total{reason="invalid_json"}' in text
        assert "smartwater_ingest_write_seconds_bucket" in text and "smartwater_ingest_pending_messages" in text
        health = httpx.get(f"{base}/healthz")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        assert health.json()["readings_written"] == {"rain": 20}
        assert httpx.get(f"{base}/nope").status_code == 404
    finally:
        srv.stop()
        ing.stop()


def test_shared_subscription_workers_split_the_stream(settings, registry, store, stations, publisher):
    shared = settings.model_copy(update={"ingest_shared_group": "ingest"})
    workers = [Ingestor(shared.model_copy(update={"ingest_worker_id": str(i)}), registry, store) for i in (1, 2)]
    assert {w.client_id for w in workers} == {f"{settings.mqtt_client_prefix}-ingest-1",
                                              f"{settings.mqtt_client_prefix}-ingest-2"}
    for w in workers:
        w.start()
    try:
        assert all(w.wait_connected(10) for w in workers)
        t0 = utcnow() - timedelta(hours=3)
        infos = [publisher.publish("water/rain/RG9001", encode(t0 + timedelta(seconds=i), {"rain_mm": 0.1}))
                 for i in range(2000)]
        assert publisher.wait_all_published(infos)
        assert wait_for(lambda: store.counts_by_kind().get("rain") == 2000, 20)
        got = [w.stats.messages_in for w in workers]
        assert sum(got) == 2000 and min(got) > 0, got  # each message to exactly one worker
    finally:
        for w in workers:
            w.stop()


def test_oversized_messages_keep_a_bounded_prefix_size_and_hash(ingestor, publisher, registry, settings):
    import hashlib

    big = [b'{"ts": "2026-06-28T08:00:00+08:00", "pad": "' + bytes([65 + i]) * (2 * 1024 * 1024) + b'"}'
           for i in range(2)]
    assert publisher.wait_all_published([publisher.publish("water/rain/RG9001", p) for p in big])
    assert wait_for(lambda: registry.count_dead_letters() == 2, 15)
    letters = sorted(registry.list_dead_letters(reason="oversized"), key=lambda d: d.payload)
    for d, payload in zip(letters, big):
        assert d.payload == payload[:settings.dead_letter_keep_bytes]  # the start, not 2 MB
        assert d.payload_size == len(payload) and d.payload_sha256 == hashlib.sha256(payload).hexdigest()


def test_dead_letters_are_pruned_by_age_and_count(registry):
    from core.dead_letters import dead_letter

    now = utcnow()
    registry.add_dead_letters([dead_letter("water/rain/X", b"old %d" % i, "invalid_json", "x",
                                           now - timedelta(days=40)) for i in range(3)])
    registry.add_dead_letters([dead_letter("water/rain/X", b"new %d" % i, "invalid_json", "x",
                                           now - timedelta(minutes=i)) for i in range(5)])
    assert registry.count_dead_letters() == 8
    assert registry.prune_dead_letters(now, max_count=4, max_age_s=30 * 86400) == 4
    assert sorted(d.payload for d in registry.list_dead_letters()) == [b"new %d" % i for i in range(1, 5)]


def test_dead_letter_api_shows_the_prefix_and_says_it_is_cut(registry, settings):
    import warnings

    from core.dead_letters import dead_letter

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Using `httpx` with `starlette.testclient` is deprecated")
        from fastapi.testclient import TestClient

    from api import create_app
    from tests.auth_util import auth_headers

    payload = "水位".encode() * 5000  # 30,000 bytes, cut inside a character
    registry.add_dead_letters([dead_letter("water/rain/X", payload, "oversized", "too big", utcnow(), 4096)])
    with TestClient(create_app(settings, registry=registry, stream=False)) as c:
        rows = c.get("/api/v1/dead-letters?reason=oversized", headers=auth_headers(settings, registry)).json()
    (row,) = rows
    assert row["payload_truncated"] and row["payload_bytes"] == len(payload) and row["payload_encoding"] == "utf-8"
    assert len(row["payload"].encode()) <= 4096 and payload.decode().startswith(row["payload"])


def test_ingest_applies_dead_letter_retention_with_a_metric(registry, ingestor, publisher):
    from prometheus_client import REGISTRY

    from core.dead_letters import dead_letter

    registry.add_dead_letters([dead_letter("water/rain/X", b"old", "invalid_json", "x",
                                           utcnow() - timedelta(days=40)) for _ in range(3)])
    before = REGISTRY.get_sample_value("smartwater_ingest_dead_letters_pruned_total") or 0.0
    assert publisher.wait_all_published([publisher.publish("water/rain/RG9001", b"{nope")])
    assert wait_for(lambda: [d.payload for d in registry.list_dead_letters()] == [b"{nope"], 15)
    assert REGISTRY.get_sample_value("smartwater_ingest_dead_letters_pruned_total") == before + 3
