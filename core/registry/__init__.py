"""The registry DB (stations, dead letters, alerts, rules, roster, users): SQLite by default, PostgreSQL on servers."""

from core.registry.repo import AlertNotFound, DuplicateRule, Registry, RuleNotFound, open_registry
import core.patrols.tables  # noqa: E402,F401  - registers the river-chief tables on the metadata
from core.registry.devices import DeviceExists, DeviceNotFound, DeviceRepo  # puts `field_devices` on the MetaData
import core.reports.tables  # noqa: E402,F401  - registers the towns' boundaries on the metadata
import core.supply.tables  # noqa: E402,F401  - registers intake users, wells, sources, village supplies
from core.registry.users import DuplicateUser, UserNotFound, UserRepo  # also puts `users` on the shared MetaData

__all__ = ["AlertNotFound", "DeviceExists", "DeviceNotFound", "DeviceRepo", "DuplicateRule", "DuplicateUser", "Registry", "RuleNotFound", "UserNotFound", "UserRepo",
           "open_registry"]
