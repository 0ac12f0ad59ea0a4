"""The gateway's links to the registry: the device directory (cached, refreshed) and the dead-letter writer.

Registry calls are synchronous; both run them off the event loop so a slow database never stalls a device.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from datetime import datetime

from core.domain import DeadLetter
from core.logs import kv
from core.registry import Registry
from core.registry.devices import DeviceRepo, FieldDevice
from gateway import metrics as m

log = logging.getLogger("gateway")

MAX_DEAD_LETTER_BYTES = 8 * 1024


class DeviceDirectory:
    """Registered devices and their stations' kinds, as of the last refresh; unmapped counts to write back."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.repo = DeviceRepo(registry.engine)
        self.devices: dict[tuple[str, str], FieldDevice] = {}
        self.kinds: dict[str, str] = {}
        self._passwords: dict[tuple[int, str | None, str | None], bool] = {}
        self._lock = threading.Lock()
        self._unmapped: dict[tuple[str, str], dict[str, int]] = {}
        self._seen: dict[tuple[str, str], datetime] = {}
        self._health: dict[tuple[str, str], dict[str, float]] = {}
        self.loaded_at = 0.0

    def refresh(self) -> None:
        devices = {(d.protocol, d.address): d for d in self.repo.list()}
        kinds = {s.id: s.kind.value for s in self.registry.list_stations()}
        self.devices, self.kinds = devices, kinds
        self.loaded_at = time.monotonic()

    def lookup(self, protocol: str, address: str) -> FieldDevice | None:
        return self.devices.get((protocol, address))

    def stations_of(self, device: FieldDevice) -> dict[str, str]:
        """The device's registered stations that exist, id -> kind, in registration order."""
        return {sid: self.kinds[sid] for sid in device.station_ids if sid in self.kinds}

    def password_ok(self, device: FieldDevice, password: str | None) -> bool:
        """Checks a password against the stored hash (scrypt: slow on purpose), remembering the answer."""
        key = (device.id, device.password_hash, password)
        ok = self._passwords.get(key)
        if ok is None:
            ok = device.password_ok(password)
            if len(self._passwords) > 100_000:
                self._passwords.clear()
            self._passwords[key] = ok
        return ok

    def cached_password(self, device: FieldDevice, password: str | None) -> bool | None:
        return self._passwords.get((device.id, device.password_hash, password))

    def count(self, device: FieldDevice, unmapped: dict[str, int], seen: datetime,
              health: dict[str, float] | None = None) -> None:
        key = (device.protocol, device.address)
        with self._lock:
            self._seen[key] = seen
            if health:
                self._health.setdefault(key, {}).update(health)
            if unmapped:
                mine = self._unmapped.setdefault(key, {})
                for code, n in unmapped.items():
                    mine[code] = mine.get(code, 0) + n

    def flush(self) -> None:
        with self._lock:
            unmapped, self._unmapped = self._unmapped, {}
            seen, self._seen = self._seen, {}
            health, self._health = self._health, {}
        keys = set(unmapped) | set(seen) | set(health)
        if keys:
            self.repo.record_activity((p, a, unmapped.get((p, a), {}), seen.get((p, a)), health.get((p, a), {}))
                                      for p, a in keys)


class DeadLetterWriter:
    """Writes dead letters from a thread in batches; a full queue drops (and counts) instead of blocking."""

    def __init__(self, registry: Registry, max_queued: int = 10_000) -> None:
        self.registry = registry
        self.q: queue.Queue[DeadLetter | None] = queue.Queue(max_queued)
        self.written = 0
        self._thread = threading.Thread(target=self._run, name="gateway-dead-letters", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def put(self, topic: str, payload: bytes, reason: str, detail: str, at: datetime) -> None:
        letter = DeadLetter(topic=topic[:200], payload=bytes(payload[:MAX_DEAD_LETTER_BYTES]), reason=reason[:64],
                            detail=(detail if len(payload) <= MAX_DEAD_LETTER_BYTES else
                                    f"{detail} (first {MAX_DEAD_LETTER_BYTES} of {len(payload)} bytes kept)")[:2000],
                            received_at=at)
        try:
            self.q.put_nowait(letter)
        except queue.Full:
            m.DEAD_LETTERS_DROPPED.inc()

    def stop(self) -> None:
        self.q.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        done = False
        while not done:
            batch = [self.q.get()]
            while len(batch) < 500:
                try:
                    batch.append(self.q.get_nowait())
                except queue.Empty:
                    break
            if None in batch:
                done = True
                batch = [b for b in batch if b is not None]
            if not batch:
                continue
            try:
                self.registry.add_dead_letters(batch)
                self.written += len(batch)
            except Exception:  # noqa: BLE001 - the registry may be down; the raw bytes are logged instead
                log.exception("cannot store gateway dead letters", extra=kv(count=len(batch)))
