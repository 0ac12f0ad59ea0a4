"""The storm scenario's rain and reservoir readings, written straight to a store (no broker), for report tests."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache
from typing import Sequence

from core.domain import Kind, Reading, Station
from core.timeutil import UTC, zone

SH = zone("Asia/Shanghai")
# The storm starts 10 min after this (storm.yaml) and is over 6 h later; 36 h covers the reservoirs' recession.
STORM_START = datetime(2026, 7, 20, 10, 0, tzinfo=SH)
STORM_HOURS = 36
# Reservoirs whose inflow sensor is left out, so their inflow comes from the water balance.
BALANCE_EVERY = 2


def report_stations(district: Sequence[Station]) -> list[Station]:
    return [s for s in district if s.kind in (Kind.rain, Kind.reservoir)]


@lru_cache(maxsize=2)
def _storm_readings(ids: tuple[str, ...], hours: int) -> tuple[Reading, ...]:
    from simulators import generate_district
    from simulators.export import reports
    from simulators.spec import load_scenario

    stations = [s for s in generate_district() if s.id in ids]
    reservoirs = sorted(s.id for s in stations if s.kind == Kind.reservoir)
    balance_only = set(reservoirs[::BALANCE_EVERY])
    out: list[Reading] = []
    for _due, st, messages in reports(stations, load_scenario("storm"), 20260628, STORM_START, hours * 3600):
        for ts, values in messages:
            t = datetime.fromtimestamp(ts, UTC)
            for metric, value in values.items():
                if metric == "inflow_m3s" and st.id in balance_only:
                    continue
                out.append(Reading(st.id, st.kind.value, metric, t, float(value)))
    return tuple(out)


def storm_readings(district: Sequence[Station], hours: int = STORM_HOURS) -> list[Reading]:
    """Readings of the demo district's gauges and reservoirs through the storm (cached per process)."""
    return list(_storm_readings(tuple(sorted(s.id for s in report_stations(district))), hours))


def balance_reservoirs(district: Sequence[Station]) -> set[str]:
    return set(sorted(s.id for s in district if s.kind == Kind.reservoir)[::BALANCE_EVERY])


STORM_END = STORM_START + timedelta(hours=STORM_HOURS)
