"""The registry DB (stations, dead letters, alerts): SQLite by default, PostgreSQL on servers."""

from core.registry.repo import AlertNotFound, Registry, open_registry

__all__ = ["AlertNotFound", "Registry", "open_registry"]
