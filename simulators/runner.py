"""Publish every station's readings on its own schedule, on a simulated clock that never runs ahead of the wall.

One background thread pops the next due report off a heap of (sim time, station), so 1,100+ stations at
high speed cost one thread, not one each. Readings are stamped with their simulated time: ingest rejects
timestamps more than 5 min ahead of its clock, so the simulated clock starts in the past and, once it has
caught up with the wall clock, runs at real time (see SimClock and default_sim_start).
"""

from __future__ import annotations

import heapq
import logging
import random
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence
from zoneinfo import ZoneInfo

from paho.mqtt.client import MQTTErrorCode

from core.domain import Station
from core.logs import kv
from core.mqtt import Publisher
from core.payload import encode, topic_for
from core.settings import Settings
from simulators.faults import FaultPlan
from simulators.scenarios import Scenario
from simulators.spec import ScenarioSpec, load_scenario

log = logging.getLogger("simulators")

# paho stalls once 65,535 QoS 1 packet ids are in use (docs/domain.md, "The parts we build on"); stay well clear of that.
MAX_OUTSTANDING = 20_000
# Without a duration, an accelerated run starts this far back (a day of data, storm included) and
# then carries on live once it has caught up.
LOOKBACK_S = 24 * 3600
FLUSH_TIMEOUT_S = 10.0
STOP_FLUSH_S = 0.8
STOP_JOIN_S = 1.8
PROGRESS_EVERY_S = 10.0


def default_sim_start(now: float, speed: float, duration_s: float | None) -> float:
    """Where the simulated clock starts (epoch seconds) so that no reading is ever stamped in the future.

    With a duration: ``now - speed * duration_s``, so the whole run replays the recent past and ends at
    the moment it started. Without one: a day back when accelerated (catching up after
    ``LOOKBACK_S / (speed - 1)`` real seconds, then live), or ``now`` at real speed or slower.
    """
    if duration_s is not None:
        return now - speed * duration_s
    return now - LOOKBACK_S if speed > 1 else now


@dataclass(frozen=True, slots=True)
class SimClock:
    """Simulated time = ``sim_start + speed × elapsed``, but never later than the wall clock."""

    sim_start: float
    wall_start: float
    speed: float

    def sim_at(self, wall: float) -> float:
        return min(self.sim_start + self.speed * (wall - self.wall_start), wall)

    def wall_at(self, sim: float) -> float:
        """The earliest wall time at which the simulated clock reaches ``sim`` (inverse of sim_at)."""
        return max(self.wall_start + (sim - self.sim_start) / self.speed, sim)


def first_due(station_phase: int, interval: int, sim_start: float) -> int:
    """The first report time (epoch s) at or after ``sim_start`` on the station's grid ``k·interval + phase``."""
    t = int(-(-sim_start // 1))  # ceil
    return t + (station_phase - t) % interval


def station_phase(seed: int, station: Station) -> int:
    """A fixed phase per station (like RTUs that booted at different times) spreads the load."""
    return random.Random(f"{seed}:{station.id}:phase").randrange(station.interval_s)


def report_messages(scenario: Scenario, faults: FaultPlan, station: Station, due: float) -> list[tuple[float, dict]]:
    """The (timestamp, values) messages a station sends for its report due at ``due``, faults applied."""
    tz = scenario.tz

    def values(t: float) -> dict[str, float]:
        prev = datetime.fromtimestamp(t - station.interval_s, tz)
        return scenario.values(station, datetime.fromtimestamp(t, tz), prev)

    return faults.messages(station, due, values)


class Simulator:
    """Publishes simulated readings of ``stations`` to ``water/{kind}/{station_id}`` with QoS 1."""

    def __init__(self, settings: Settings, stations: Sequence[Station], scenario: str | Path | ScenarioSpec = "normal",
                 speed: float = 1.0, duration_s: float | None = None, seed: int | None = None, *,
                 sim_start: datetime | None = None, publisher: Any = None,
                 max_outstanding: int = MAX_OUTSTANDING) -> None:
        spec = load_scenario(scenario)  # ValueError naming the file and field, before anything connects
        if not speed > 0:
            raise ValueError(f"speed must be positive, got {speed}")
        if duration_s is not None and not duration_s > 0:
            raise ValueError(f"duration_s must be positive, got {duration_s}")
        self.settings = settings
        self.stations = list(stations)
        self.spec = spec
        self.scenario_name = spec.name
        self.speed = float(speed)
        self.duration_s = duration_s
        # An explicit seed wins, then the scenario file's, then the district's.
        self.seed = seed if seed is not None else spec.seed if spec.seed is not None else settings.district_seed
        self.tz = ZoneInfo(settings.display_timezone)
        self.max_outstanding = max_outstanding
        self.published = 0
        self.dropped = 0
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.clock: SimClock | None = None
        self.scenario: Scenario | None = None
        self.faults: FaultPlan | None = None
        self._requested_start = sim_start
        self._deadline: float | None = None
        self._publisher = publisher
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Connect (raises ConnectionError if the broker is unreachable), then publish on a background thread."""
        if self._publisher is None:
            client_id = f"{self.settings.mqtt_client_prefix}-sim-{secrets.token_hex(4)}"
            self._publisher = Publisher(self.settings, client_id)
        try:
            self._publisher.start()
        except BaseException:  # ConnectionError, or Ctrl-C while connecting: leave no network thread behind
            try:
                self._publisher.stop()
            except Exception:  # noqa: BLE001 - the original error matters more
                pass
            self.done.set()
            raise
        # The clock starts once connected, so a slow connect does not eat into the replayed period.
        now = time.time()
        start = self._requested_start.timestamp() if self._requested_start else \
            default_sim_start(now, self.speed, self.duration_s)
        self.clock = SimClock(sim_start=start, wall_start=now, speed=self.speed)
        self.scenario = Scenario(self.stations, self.spec, self.seed, datetime.fromtimestamp(start, self.tz), self.tz)
        self.faults = FaultPlan(self.spec.sensor_faults, self.stations, self.seed, start)
        self._deadline = None if self.duration_s is None else time.monotonic() + self.duration_s
        log.info("simulator started", extra=kv(
            scenario=self.scenario_name, stations=len(self.stations), speed=self.speed, duration_s=self.duration_s,
            sim_start=datetime.fromtimestamp(start, self.tz).isoformat(timespec="seconds"), seed=self.seed,
            faulty_stations=len(self.faults.stations())))
        self._thread = threading.Thread(target=self._run, name="simulator", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop publishing; returns within ~STOP_JOIN_S even with a backlog."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(STOP_JOIN_S)
        else:
            self.done.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the run to end; True once it has (by its duration, stop() or an error)."""
        return self.done.wait(timeout)

    def sim_time(self) -> datetime | None:
        return None if self.clock is None else datetime.fromtimestamp(self.clock.sim_at(time.time()), self.tz)

    @property
    def outstanding(self) -> int:
        return self._publisher.outstanding if self._publisher is not None else 0

    # ----------------------------------------------------------------- publishing

    def _schedule(self) -> list[tuple[int, int]]:
        assert self.clock is not None
        heap = []
        for i, s in enumerate(self.stations):
            heap.append((first_due(station_phase(self.seed, s), s.interval_s, self.clock.sim_start), i))
        heapq.heapify(heap)
        return heap

    def _run(self) -> None:
        assert self.clock is not None and self.scenario is not None
        heap = self._schedule()
        next_progress = time.monotonic() + PROGRESS_EVERY_S
        finished = False
        try:
            while not self._stop.is_set():
                if self._deadline is not None and time.monotonic() >= self._deadline:
                    finished = True
                    break
                sim_now = self.clock.sim_at(time.time())
                burst = 0
                while heap and heap[0][0] <= sim_now and not self._stop.is_set():
                    if not self._wait_for_room():
                        break
                    due, i = heapq.heappop(heap)
                    self._publish(self.stations[i], due)
                    heapq.heappush(heap, (due + self.stations[i].interval_s, i))
                    burst += 1
                    # A big backlog must not hold off the deadline for long.
                    if burst % 500 == 0 and self._deadline is not None and time.monotonic() >= self._deadline:
                        break
                if time.monotonic() >= next_progress:
                    next_progress = time.monotonic() + PROGRESS_EVERY_S
                    self._log_progress(heap)
                wait = 1.0
                if heap:
                    wait = min(wait, max(0.0, self.clock.wall_at(heap[0][0]) - time.time()))
                if self._deadline is not None:
                    wait = min(wait, max(0.0, self._deadline - time.monotonic()))
                if wait > 0:
                    self._stop.wait(wait)
            # Messages handed to paho but not yet acknowledged are lost with a clean session: give them
            # a moment, a long one at the natural end, a short one when stop() is waiting on us.
            self._flush(FLUSH_TIMEOUT_S if finished else STOP_FLUSH_S)
        except Exception as exc:  # noqa: BLE001 - reported through .error and the log; done is still set
            self.error = exc
            log.exception("simulator failed")
        finally:
            try:
                self._publisher.stop()
            except Exception:  # noqa: BLE001 - already stopping
                log.warning("publisher did not stop cleanly", exc_info=True)
            log.info("simulator stopped", extra=kv(published=self.published, dropped=self.dropped,
                                                   unacknowledged=self.outstanding,
                                                   reason="duration" if finished else "stop" if self.error is None
                                                   else "error"))
            self.done.set()

    def _publish(self, station: Station, due: int) -> None:
        assert self.faults is not None
        topic = topic_for(station.kind.value, station.id)
        for ts, values in report_messages(self.scenario, self.faults, station, due):
            info = self._publisher.publish(topic, encode(datetime.fromtimestamp(ts, self.tz), values), qos=1)
            if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
                # Only reachable if packet ids run out, which flow control is there to prevent.
                self.dropped += 1
                log.error("paho refused a message: packet ids exhausted", extra=kv(station_id=station.id))
                continue
            self.published += 1

    def _wait_for_room(self) -> bool:
        """Block while too many messages are unacknowledged; False if stop() was called meanwhile."""
        waited_since = time.monotonic()
        ok = self._publisher.wait_for_room(self.max_outstanding, self._stop)
        if time.monotonic() - waited_since > 5:
            log.warning("publishing held back by unacknowledged messages",
                        extra=kv(waited_s=round(time.monotonic() - waited_since, 1), limit=self.max_outstanding))
        return ok

    def _flush(self, timeout: float) -> None:
        self._publisher.flush(timeout, stop=self._stop, stop_grace_s=STOP_FLUSH_S)

    def _log_progress(self, heap: list[tuple[int, int]]) -> None:
        assert self.clock is not None
        sim_now = self.clock.sim_at(time.time())
        backlog = sum(1 for due, _ in heap if due <= sim_now)
        log.info("simulator progress", extra=kv(
            published=self.published, unacknowledged=self.outstanding, backlog=backlog,
            sim_time=datetime.fromtimestamp(sim_now, self.tz).isoformat(timespec="seconds")))
