"""The registry DB (stations, dead letters, alerts): SQLite by default, PostgreSQL on servers."""

from core.registry.repo import AlertNotFound, DuplicateRule, Registry, RuleNotFound, open_registry

__all__ = ["AlertNotFound", "DuplicateRule", "Registry", "RuleNotFound", "open_registry"]
