"""Prometheus metrics of the ingest process (served with /healthz by ``core.health.HealthServer``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from core.health import HealthServer  # noqa: F401 - ingest's callers import it from here

MESSAGES = Counter("smartwater_ingest_messages", "MQTT messages received by ingest")
READINGS = Counter("smartwater_ingest_readings_written", "Readings written to the time-series store", ["kind"])
DEAD_LETTERS = Counter("smartwater_ingest_dead_letters", "Messages rejected into the dead-letter table", ["reason"])
DEAD_LETTERS_PRUNED = Counter("smartwater_ingest_dead_letters_pruned",
                              "Dead letters deleted by retention (dead_letter_max_count, dead_letter_max_age_days)")
STORE_ERRORS = Counter("smartwater_ingest_store_errors", "Failed store writes (retried)")
BATCH_MESSAGES = Histogram("smartwater_ingest_batch_messages", "Messages per written batch",
                           buckets=(1, 10, 50, 100, 500, 1000, 2500, 5000, 10000, 20000, 50000))
WRITE_SECONDS = Histogram("smartwater_ingest_write_seconds", "Time to write one batch",
                          buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
PENDING = Gauge("smartwater_ingest_pending_messages", "Messages received and not yet acknowledged (written)")
DEGRADED = Gauge("smartwater_ingest_degraded", "1 while the store cannot be written")
# How far behind the sensors the newest written reading is; grows while a backlog drains.
LAG = Gauge("smartwater_ingest_data_lag_seconds", "Wall time minus the data time of the newest reading written")
