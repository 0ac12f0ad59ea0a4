"""Ingest stage: MQTT → decode → validate → batch → time-series store (at least once)."""

from ingest.service import Ingestor

__all__ = ["Ingestor"]
