"""The drinking-water limits that apply to one village supply, from its type, disinfectant and service head.

Pure: no registry, no clock. Sources: docs/domain.md, "Drinking water" (GB 5749-2022) and "Village water supply"
(GB 50013 service heads). Not yet used by the alert rules, which still hold one figure for every village.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.supply.models import VillageSupply

# GB 5749-2022 turbidity: 1 NTU; 3 NTU for small centralised and dispersed supplies (the note to its Table 1).
TURBIDITY_MAX_NTU = 1.0
TURBIDITY_MAX_SMALL_NTU = 3.0

# GB 5749-2022 disinfectant residuals at the tap (minimum) and anywhere (maximum), mg/L. Chloramine is measured
# as total chlorine.
TAP_LIMITS_MGL: dict[str, tuple[float, float]] = {
    "free_chlorine": (0.05, 2.0),
    "chloramine": (0.05, 3.0),
    "chlorine_dioxide": (0.02, 0.8),
}

# 1 m of water head is ρ·g·h = 1000 kg/m³ × 9.8 m/s² × 1 m ≈ 9.8 kPa = 0.0098 MPa.
MPA_PER_M_HEAD = 0.0098


@dataclass(frozen=True, slots=True)
class SupplyLimits:
    """What one supply's tap water must meet. ``disinfectant_*`` are None for a supply that is not disinfected."""

    station_id: str
    turbidity_max_ntu: float
    disinfectant: str
    disinfectant_min_mgl: float | None
    disinfectant_max_mgl: float | None
    min_pressure_mpa: float


def supply_limits(supply: VillageSupply) -> SupplyLimits:
    small = supply.supply_type in ("small_centralised", "dispersed")
    lo, hi = TAP_LIMITS_MGL.get(supply.disinfectant, (None, None))
    return SupplyLimits(
        station_id=supply.station_id,
        turbidity_max_ntu=TURBIDITY_MAX_SMALL_NTU if small else TURBIDITY_MAX_NTU,
        disinfectant=supply.disinfectant,
        disinfectant_min_mgl=lo,
        disinfectant_max_mgl=hi,
        min_pressure_mpa=round(supply.service_head_m * MPA_PER_M_HEAD, 4),
    )
