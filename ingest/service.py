"""The ingestor: a persistent QoS 1 MQTT session whose messages are acknowledged only after the
batch holding them is written (docs/architecture.md, "Ingest"). A crash before the write means the broker
redelivers; writes are idempotent, so redelivery is harmless.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt

from core import topics
from core.catalog import StationCatalog
from core.dead_letters import dead_letter
from core.domain import DeadLetter, Reading
from core.logs import kv
from core.mqtt import MqttConsumer
from core.payload import Rejected, decode, is_reading_topic
from core.registry import Registry
from core.settings import Settings
from core.timeutil import utcnow
from core.tsdb import StoreUnavailable, TimeSeriesStore
from ingest import metrics as m

log = logging.getLogger("ingest")

MAX_BACKOFF_S = 30.0
DEAD_LETTER_PRUNE_S = 60.0


@dataclass
class _Batch:
    readings: list[Reading] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    acks: list[tuple[int, int]] = field(default_factory=list)  # (mid, qos) to acknowledge after the write
    # (topic, payload, first, end) of each accepted message's readings: lets a write the store
    # refuses be narrowed down to the message at fault, which becomes a dead letter.
    spans: list[tuple[str, bytes, int, int]] = field(default_factory=list)
    kinds: collections.Counter[str] = field(default_factory=collections.Counter)

    def __len__(self) -> int:
        return len(self.acks)


class IngestStats:
    def __init__(self) -> None:
        self.messages_in = 0
        self.readings_written: collections.Counter[str] = collections.Counter()  # by kind
        self.dead_letters: collections.Counter[str] = collections.Counter()  # by reason
        self.batches = 0
        self.last_write_s = 0.0


def ingest_identity(settings: Settings) -> tuple[str, str]:
    """Client id and subscription of this worker. With a shared group, N workers split ``water/#``."""
    worker = settings.ingest_worker_id
    client_id = f"{settings.mqtt_client_prefix}-ingest" + (f"-{worker}" if worker else "")
    return client_id, topics.ingest_subscription(settings.ingest_shared_group)


class Ingestor(MqttConsumer):
    def __init__(self, settings: Settings, registry: Registry, store: TimeSeriesStore,
                 client_id: str | None = None, topic: str | None = None,
                 catalog: StationCatalog | None = None) -> None:
        default_id, default_topic = ingest_identity(settings)
        super().__init__(settings, client_id or default_id, [(topic or default_topic, 1)],
                         persistent=True, manual_ack=True, name="ingest")
        self.registry = registry
        self.store = store
        self.stats = IngestStats()
        self.catalog = catalog or StationCatalog.of(registry, settings.station_refresh_s)
        self._lock = threading.Lock()
        self._batch = _Batch()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._flusher: threading.Thread | None = None
        self._degraded_since: float | None = None
        self._in_flight = 0  # messages taken out of _batch and being written
        self.flusher_failed = False
        self._draining = False
        self._pruned_at = float("-inf")  # dead-letter retention last ran (monotonic)
        m.PENDING.set_function(lambda: self.pending)

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> None:
        self.catalog.refresh()
        self._stopping.clear()
        self._draining = False
        self._flusher = threading.Thread(target=self._flush_loop, name="ingest-flush", daemon=True)
        self._flusher.start()
        super().start()

    def stop(self) -> None:
        # Take nothing new (what arrives now stays unacknowledged and comes back next session), write
        # and acknowledge what we hold while still connected, then disconnect. Anything the final
        # write cannot store stays unacknowledged too: the broker redelivers it.
        self._draining = True
        self._stopping.set()
        self._wake.set()
        if self._flusher:
            self._flusher.join(timeout=30)
        super().stop()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._batch) + self._in_flight

    def health(self) -> dict:
        return {
            "status": "failed" if self.flusher_failed or self.subscribe_refused
            else "degraded" if self._degraded_since is not None
            else "ok" if self.connected.is_set() else "connecting",
            "connected": self.connected.is_set(),
            "client_id": self.client_id,
            "pending": self.pending,
            "messages_in": self.stats.messages_in,
            "readings_written": dict(self.stats.readings_written),
            "dead_letters": dict(self.stats.dead_letters),
        }

    # -- network thread ----------------------------------------------------
    def handle(self, msg: mqtt.MQTTMessage) -> None:
        if self._draining:
            return  # unacknowledged on purpose: redelivered to the next session
        if not is_reading_topic(msg.topic):
            self.client.ack(msg.mid, msg.qos)
            return
        topic, payload = msg.topic, msg.payload
        now = utcnow()
        try:
            readings = self._decode(topic, payload, now)
            dead = None
        except Rejected as rej:
            readings = None
            dead = dead_letter(topic, payload, rej.reason, rej.detail, now, self.settings.dead_letter_keep_bytes)
        except Exception as exc:  # noqa: BLE001 - a decoder bug must not leave a message unacknowledged forever
            log.exception("unexpected error decoding a message; kept as a dead letter", extra=kv(topic=topic))
            readings = None
            dead = dead_letter(topic, payload, "internal_error", f"{type(exc).__name__}: {exc}", now,
                               self.settings.dead_letter_keep_bytes)
        with self._lock:
            self.stats.messages_in += 1
            b = self._batch
            if readings is None:
                b.dead.append(dead)
            else:
                first = len(b.readings)
                b.readings.extend(readings)
                b.spans.append((topic, payload, first, len(b.readings)))
                b.kinds[readings[0].kind] += len(readings)
            b.acks.append((msg.mid, msg.qos))
            # While a failed batch waits for its retry, a full new batch must not cut the backoff short.
            full = len(b.readings) >= self.settings.ingest_batch_size and self._degraded_since is None
        if full:
            self._wake.set()

    def _decode(self, topic: str, payload: bytes, now) -> list[Reading]:
        try:
            return decode(topic, payload, self.catalog.stations, now,
                          max_bytes=self.settings.ingest_max_payload_bytes,
                          max_future_s=self.settings.ingest_max_future_s)
        except Rejected as rej:
            # A station registered after we loaded the registry: the catalogue looks again, at most every few s.
            if rej.reason == "unknown_station" and self.catalog.refresh_for_unknown(topic.rsplit("/", 1)[-1]):
                return decode(topic, payload, self.catalog.stations, now,
                              max_bytes=self.settings.ingest_max_payload_bytes,
                              max_future_s=self.settings.ingest_max_future_s)
            raise

    # -- flush thread ------------------------------------------------------
    def _flush_loop(self) -> None:
        try:
            self._flush_until_stopped()
        except BaseException:
            # Nothing is acknowledged without this thread, so the broker keeps the data; say so loudly.
            self.flusher_failed = True
            log.critical("ingest flush thread died; messages stay unacknowledged at the broker", exc_info=True)
            raise

    def _flush_until_stopped(self) -> None:
        interval = self.settings.ingest_flush_interval_s
        backoff = interval
        held: _Batch | None = None  # a batch whose write failed, retried before anything newer
        while True:
            self._wake.wait(timeout=backoff if held else interval)
            self._wake.clear()
            stopping = self._stopping.is_set()  # read after the wait: stop() wakes us for one last attempt
            if self.catalog.age_s() > self.catalog.refresh_s:
                try:
                    self.catalog.refresh()
                except Exception:  # noqa: BLE001 - keep the old station list
                    log.warning("station reload failed; keeping the previous list", exc_info=True)
            if held is None:
                with self._lock:
                    held, self._batch = self._batch, _Batch()
                    self._in_flight = len(held)
            if len(held) and not self._write(held):
                if stopping:
                    log.warning("stopping with unwritten batch; the broker will redeliver it",
                                extra=kv(messages=len(held)))
                    return
                backoff = min(max(backoff * 2, 0.5), MAX_BACKOFF_S)
                continue
            backoff = interval
            held = None
            with self._lock:
                self._in_flight = 0
            if stopping:
                with self._lock:
                    if not len(self._batch):
                        return

    def _write(self, batch: _Batch) -> bool:
        t0 = time.perf_counter()
        try:
            self._write_readings(batch)
            if batch.dead:
                self.registry.add_dead_letters(batch.dead, self.settings.dead_letter_keep_bytes)
                self._prune_dead_letters()
        except Exception as exc:  # noqa: BLE001 - any store failure: keep the batch, retry later
            m.STORE_ERRORS.inc()
            if self._degraded_since is None:
                self._degraded_since = time.monotonic()
                m.DEGRADED.set(1)
                log.error("store write failed; holding messages unacknowledged and retrying",
                          extra=kv(error=str(exc)[:300], messages=len(batch)))
            return False
        if self._degraded_since is not None:
            log.warning("store recovered", extra=kv(outage_s=round(time.monotonic() - self._degraded_since, 1)))
            self._degraded_since = None
            m.DEGRADED.set(0)
        ack = self.client.ack
        for mid, qos in batch.acks:
            ack(mid, qos)
        elapsed = time.perf_counter() - t0
        st = self.stats
        st.batches += 1
        st.last_write_s = elapsed
        st.readings_written.update(batch.kinds)
        m.MESSAGES.inc(len(batch))
        m.BATCH_MESSAGES.observe(len(batch))
        m.WRITE_SECONDS.observe(elapsed)
        for kind, n in batch.kinds.items():
            m.READINGS.labels(kind).inc(n)
        if batch.readings:
            m.LAG.set(max(0.0, time.time() - max(r.ts for r in batch.readings[-100:]).timestamp()))
        for d in batch.dead:
            st.dead_letters[d.reason] += 1
            m.DEAD_LETTERS.labels(d.reason).inc()
        return True

    def _prune_dead_letters(self) -> None:
        """Dead-letter retention, at most once per DEAD_LETTER_PRUNE_S, when new dead letters were written."""
        now = time.monotonic()
        if now - self._pruned_at < DEAD_LETTER_PRUNE_S:
            return
        self._pruned_at = now
        try:
            n = self.registry.prune_dead_letters(utcnow(), self.settings.dead_letter_max_count,
                                                 self.settings.dead_letter_max_age_days * 86400)
        except Exception as exc:  # noqa: BLE001 - retention can wait for the next round; ingest must not
            log.warning("dead-letter pruning failed", extra=kv(error=str(exc)[:300]))
            return
        if n:
            m.DEAD_LETTERS_PRUNED.inc(n)
            log.info("dead letters pruned", extra=kv(deleted=n))

    def _write_readings(self, batch: _Batch) -> None:
        if not batch.readings:
            return
        try:
            self.store.write(batch.readings)
            return
        except StoreUnavailable:
            raise
        except ValueError as exc:
            # The store is up but refuses something in the batch: find the message(s) at fault so one
            # bad message cannot block ingest forever, and keep it as a dead letter.
            log.warning("store refused a batch; writing message by message", extra=kv(error=str(exc)[:300]))
        now = utcnow()
        keep: list[tuple[str, bytes, int, int]] = []
        refused: list[tuple[DeadLetter, str, int]] = []
        for topic, payload, first, end in batch.spans:  # StoreUnavailable here: the whole batch is retried
            try:
                self.store.write(batch.readings[first:end])
                keep.append((topic, payload, first, end))
            except ValueError as exc:
                refused.append((dead_letter(topic, payload, "store_rejected", str(exc), now,
                                            self.settings.dead_letter_keep_bytes),
                                batch.readings[first].kind, end - first))
        batch.spans = keep
        for dead, kind, n in refused:
            batch.dead.append(dead)
            batch.kinds[kind] -= n
