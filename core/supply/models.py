"""What the water-resources and village-supply questions need to know besides readings: licensed intake users and
their meters, groundwater monitoring wells, water sources, and each village supply's type, size and disinfectant.

Domain facts (size classes, disinfectants, service heads) and where they come from: docs/domain.md, "Village
water supply". File layouts: docs/data-model.md, "Import files".
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from typing import Literal

from pydantic import AwareDatetime, BaseModel, Field, field_validator, model_validator

_ID = r"^[A-Za-z0-9_-]{1,64}$"

IntakeSource = Literal["surface", "ground"]
SourceKind = Literal["reservoir", "well_field", "river"]
SupplyType = Literal["centralised", "small_centralised", "dispersed"]
Disinfectant = Literal["free_chlorine", "chloramine", "chlorine_dioxide", "none"]

SOURCE_KINDS: tuple[str, ...] = ("reservoir", "well_field", "river")
SUPPLY_TYPES: tuple[str, ...] = ("centralised", "small_centralised", "dispersed")
DISINFECTANTS: tuple[str, ...] = ("free_chlorine", "chloramine", "chlorine_dioxide", "none")

# GB 5749-2022's size class (docs/domain.md, "Village water supply"): a small centralised supply delivers under
# 1,000 m³ a day or serves under 10,000 people.
SMALL_SUPPLY_MAX_M3_PER_DAY = 1000.0
SMALL_SUPPLY_MAX_POPULATION = 10_000


def service_head_m(storeys: int) -> float:
    """GB 50013's minimum service head for buildings of ``storeys`` storeys: 10 m for one, 12 m for two, 4 m more
    for each further storey (docs/domain.md, "Village water supply")."""
    if storeys < 1:
        raise ValueError("a building has at least one storey")
    return 10.0 if storeys == 1 else 12.0 + 4.0 * (storeys - 2)


class _Model(BaseModel):
    model_config = {"extra": "forbid", "frozen": True}


class IntakeUser(_Model):
    """A licensed water-intake user (取水户) with its permitted annual volume."""

    id: str = Field(pattern=_ID)
    name: str = Field(min_length=1, max_length=200)
    town: str = Field(min_length=1, max_length=100)
    source: IntakeSource
    licence_no: str = Field(min_length=1, max_length=100)
    permitted_m3_per_year: float = Field(gt=0, allow_inf_nan=False)


class IntakeMeter(_Model):
    """A cumulative meter of an intake user at its ``intake`` station; replaced meters keep their row with
    ``removed_at``. ``rollover_m3``: the value at which the register starts again from zero (10⁶, 10⁷ m³…)."""

    id: str = Field(pattern=_ID)
    user_id: str = Field(pattern=_ID)
    station_id: str = Field(pattern=_ID)
    installed_at: AwareDatetime
    removed_at: AwareDatetime | None = None
    rollover_m3: float = Field(gt=0, allow_inf_nan=False)

    @field_validator("installed_at", "removed_at")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        return None if v is None else v.astimezone(timezone.utc)

    @field_validator("rollover_m3")
    @classmethod
    def _power_of_ten(cls, v: float) -> float:
        exponent = round(math.log10(v))
        if exponent < 1 or not math.isclose(v, 10.0 ** exponent):
            raise ValueError(f"a register rolls over at a power of ten (1000000 for 10^6 m³), got {v!r}")
        return float(10 ** exponent)

    @model_validator(mode="after")
    def _order(self) -> "IntakeMeter":
        if self.removed_at is not None and self.removed_at <= self.installed_at:
            raise ValueError("removed_at must be after installed_at")
        return self

    def active_at(self, moment: datetime) -> bool:
        return self.installed_at <= moment and (self.removed_at is None or moment < self.removed_at)


class GroundwaterWell(_Model):
    """A groundwater monitoring well, keyed by its ``groundwater`` station."""

    station_id: str = Field(pattern=_ID)
    town: str = Field(min_length=1, max_length=100)
    ground_elevation_m: float = Field(ge=-50, le=6000, allow_inf_nan=False)
    aquifer: str = Field(min_length=1, max_length=100)
    well_depth_m: float = Field(gt=0, le=3000, allow_inf_nan=False)


class WaterSource(_Model):
    """A water source (水源地) and what it serves: village supplies (their ``village_water`` station ids) and
    supply plants (the ``plant_id`` of village supplies)."""

    id: str = Field(pattern=_ID)
    name: str = Field(min_length=1, max_length=200)
    kind: SourceKind
    reservoir_station_id: str | None = Field(default=None, pattern=_ID)
    village_station_ids: tuple[str, ...] = ()
    plant_ids: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> "WaterSource":
        if self.kind == "reservoir" and self.reservoir_station_id is None:
            raise ValueError("a reservoir source names its reservoir station (reservoir_station_id)")
        if self.kind != "reservoir" and self.reservoir_station_id is not None:
            raise ValueError(f"a {self.kind} source has no reservoir station")
        for ids in (self.village_station_ids, self.plant_ids):
            bad = [i for i in ids if not re.match(_ID, i)]
            if bad:
                raise ValueError(f"ids {bad}: 1-64 letters, digits, '-' or '_'")
            if len(set(ids)) != len(ids):
                raise ValueError("an id is listed twice")
        return self


class VillageSupply(_Model):
    """A village's water supply, keyed by its ``village_water`` station: type, size, disinfectant and the minimum
    service head of its buildings."""

    station_id: str = Field(pattern=_ID)
    supply_type: SupplyType
    population: int = Field(ge=0, le=10_000_000)
    design_m3_per_day: float = Field(gt=0, allow_inf_nan=False)
    plant_id: str | None = Field(default=None, pattern=_ID)
    disinfectant: Disinfectant
    service_head_m: float = Field(gt=0, le=200, allow_inf_nan=False)

    @model_validator(mode="after")
    def _check(self) -> "VillageSupply":
        if self.supply_type == "centralised" and self.plant_id is None:
            raise ValueError("a centralised supply names its supply system or plant (plant_id)")
        if self.supply_type == "small_centralised" and not is_small_supply(self.design_m3_per_day, self.population):
            raise ValueError(
                f"a small centralised supply delivers under {SMALL_SUPPLY_MAX_M3_PER_DAY:.0f} m³/d or serves under "
                f"{SMALL_SUPPLY_MAX_POPULATION} people (GB 5749-2022); this one {self.design_m3_per_day:g} m³/d "
                f"for {self.population} people is centralised")
        return self


def is_small_supply(design_m3_per_day: float, population: int) -> bool:
    """GB 5749-2022's small centralised size class: under 1,000 m³/d or under 10,000 people."""
    return design_m3_per_day < SMALL_SUPPLY_MAX_M3_PER_DAY or population < SMALL_SUPPLY_MAX_POPULATION
