"""SQLite files shared by processes (registry, time-series store) run in WAL mode."""

from __future__ import annotations

import sqlite3
import time
from typing import Any


def switch_to_wal(cur: Any, wait_s: float = 30.0) -> None:
    """Put the file in WAL mode (persistent: once per database), waiting out processes starting together.

    The switch takes an exclusive lock and SQLite answers "database is locked" at once, busy_timeout or not,
    when another connection holds any lock then: so retry with backoff up to ``wait_s``.
    """
    deadline, delay = time.monotonic() + wait_s, 0.005
    while True:
        try:
            if str(cur.execute("PRAGMA journal_mode").fetchone()[0]).lower() in ("wal", "memory"):
                return
            if str(cur.execute("PRAGMA journal_mode=WAL").fetchone()[0]).lower() == "wal":
                return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        if time.monotonic() >= deadline:  # SQLite kept the old mode: it still works, only serialised
            return
        time.sleep(delay)
        delay = min(delay * 2, 0.25)
