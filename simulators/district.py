"""A synthetic monitoring network the size of Qingdao's Jimo district (docs/domain.md, "The district").

The counts are Jimo's (40 reservoirs, 24 rain gauges, 1,033 villages in 17 towns; ~20 monitored rivers
out of its 150), the towns are Jimo's town-level divisions, the coordinates fall inside the district's
bounding box. Everything else (village names, small reservoirs, reference levels, curves) is synthetic
but physically ordered, so alert rules see the same structure they would see in a bureau's registry.
"""

from __future__ import annotations

import math
import random


from core.domain import Kind, Station
from core.flood_season import FloodSeason

DEFAULT_SEED = 20260628

# Bounding box of the generated coordinates; kept a little inside Jimo's extent on the map.
LAT_MIN, LAT_MAX = 36.26, 36.64
LON_MIN, LON_MAX = 120.26, 120.84

# (name, lat, lon, relative number of villages). Centres are approximate seats of each division,
# pulled inside the bounding box. 刘家庄镇 and 店集镇 were merged into neighbours in the 2000s;
# they stand in for the district's two functional zones so that the division count matches the
# "17 towns" the bureau reports against.
TOWNS: tuple[tuple[str, float, float, float], ...] = (
    ("环秀街道", 36.390, 120.450, 0.8),
    ("通济街道", 36.370, 120.480, 0.9),
    ("潮海街道", 36.405, 120.485, 0.8),
    ("北安街道", 36.440, 120.420, 1.0),
    ("龙山街道", 36.470, 120.370, 1.0),
    ("鳌山卫街道", 36.370, 120.620, 1.0),
    ("温泉街道", 36.410, 120.645, 0.9),
    ("灵山街道", 36.490, 120.470, 1.1),
    ("蓝村街道", 36.400, 120.270, 1.1),
    ("龙泉街道", 36.320, 120.430, 0.9),
    ("大信街道", 36.320, 120.320, 1.0),
    ("段泊岚镇", 36.540, 120.320, 1.3),
    ("移风店镇", 36.590, 120.280, 1.3),
    ("田横镇", 36.460, 120.760, 1.2),
    ("金口镇", 36.560, 120.600, 1.2),
    ("刘家庄镇", 36.610, 120.420, 1.0),
    ("店集镇", 36.500, 120.580, 1.0),
)
N_RESERVOIRS = 40
N_RAIN = 24
N_VILLAGES = 1033

# Rivers (name, stations on it, upstream lat/lon, downstream lat/lon, flow at warning level m3/s).
# 大沽河 runs along the western border; the others drain the hills in the north-east to the sea or to it.
RIVERS: tuple[tuple[str, int, tuple[float, float], tuple[float, float], float], ...] = (
    ("大沽河", 3, (36.63, 120.27), (36.28, 120.27), 1800.0),
    ("墨水河", 3, (36.50, 120.52), (36.28, 120.40), 450.0),
    ("五沽河", 2, (36.62, 120.45), (36.58, 120.27), 380.0),
    ("流浩河", 2, (36.57, 120.38), (36.45, 120.27), 300.0),
    ("桃源河", 2, (36.48, 120.40), (36.36, 120.30), 260.0),
    ("龙泉河", 2, (36.40, 120.52), (36.30, 120.44), 220.0),
    ("莲阴河", 2, (36.52, 120.74), (36.44, 120.82), 200.0),
    ("洪江河", 2, (36.60, 120.66), (36.52, 120.80), 210.0),
    ("猪洞河", 1, (36.47, 120.62), (36.40, 120.66), 120.0),
    ("盟旺河", 1, (36.44, 120.34), (36.40, 120.29), 110.0),
    ("周疃河", 1, (36.55, 120.54), (36.52, 120.62), 100.0),
    ("温泉河", 1, (36.43, 120.60), (36.40, 120.68), 90.0),
    ("王村河", 1, (36.40, 120.58), (36.36, 120.64), 90.0),
    ("白马河", 1, (36.36, 120.56), (36.32, 120.62), 80.0),
    ("南阡河", 1, (36.36, 120.38), (36.30, 120.33), 80.0),
    ("葛村河", 1, (36.62, 120.50), (36.60, 120.57), 70.0),
    ("鹤山河", 1, (36.50, 120.66), (36.47, 120.72), 70.0),
    ("丰城河", 1, (36.58, 120.70), (36.55, 120.78), 60.0),
    ("七级河", 1, (36.60, 120.33), (36.57, 120.29), 60.0),
    ("灵山河", 1, (36.51, 120.46), (36.47, 120.50), 60.0),
)

# The three medium reservoirs keep their real names; the small ones get generated names.
MEDIUM_RESERVOIRS = ("挪城水库", "王圈水库", "宋化泉水库")

# Reservoirs sit in the hills: towns in the north and east get most of them.
_RESERVOIR_TOWN_WEIGHT = {"田横镇": 4, "金口镇": 4, "店集镇": 3, "灵山街道": 3, "鳌山卫街道": 3, "温泉街道": 3,
                          "龙山街道": 2, "段泊岚镇": 2, "刘家庄镇": 2, "移风店镇": 1, "北安街道": 1, "龙泉街道": 1}

_DIRECTIONS = "东西南北前后大小上中"
_SURNAMES = ("王家", "李家", "张家", "刘家", "孙家", "杨家", "赵家", "周家", "吴家", "黄家", "于家", "姜家",
             "孔家", "兰家", "宋家", "郭家", "胡家", "高家", "林家", "徐家", "袁家", "马家", "韩家", "董家",
             "曲家", "汪家", "邱家", "崔家", "吕家", "鲍家", "修家", "隋家", "臧家", "宫家", "栾家", "江家")
_FEATURES = ("石门", "河崖", "山后", "岭前", "泉头", "柳沟", "桃林", "杏园", "松山", "槐树", "枣行", "沙岭",
             "龙湾", "凤台", "马山", "牛齐", "鹿角", "官庄", "庙头", "店子", "营房", "寨里", "城阳", "埠后",
             "泊子", "湾头", "台上", "桥头", "井子", "窑上", "白沙", "黄埠", "青山", "金山", "盐场", "葛村")
_SUFFIXES = ("村", "庄", "疃", "屯", "埠", "泊", "沟", "岭", "戈庄", "家庄")


def _clamp(v: float, lo: float, hi: float) -> float:
    return min(hi, max(lo, v))


def _place(rng: random.Random, lat: float, lon: float, spread: float) -> tuple[float, float]:
    return (round(_clamp(rng.gauss(lat, spread), LAT_MIN, LAT_MAX), 5),
            round(_clamp(rng.gauss(lon, spread * 1.25), LON_MIN, LON_MAX), 5))


def _short(town: str) -> str:
    return town.removesuffix("街道").removesuffix("镇")


def _nearest_town(lat: float, lon: float) -> str:
    return min(TOWNS, key=lambda t: (t[1] - lat) ** 2 + ((t[2] - lon) * 0.8) ** 2)[0]


class _Names:
    """Unique Chinese place names in the style of Jiaodong villages (…疃, …埠, …戈庄)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: set[str] = set()

    def village(self) -> str:
        rng = self.rng
        for _ in range(50):
            core = rng.choice(_SURNAMES if rng.random() < 0.5 else _FEATURES)
            prefix = rng.choice(_DIRECTIONS) if rng.random() < 0.35 else ""
            name = prefix + core + rng.choice(_SUFFIXES)
            if name not in self.used:
                self.used.add(name)
                return name
        # Real registers number villages that share a name (一村, 二村…); so do we once random names run out.
        base = rng.choice(_SURNAMES) + rng.choice(_SUFFIXES)
        n = 1
        while f"{base}{n}村" in self.used:
            n += 1
        self.used.add(f"{base}{n}村")
        return f"{base}{n}村"

    def claim(self, name: str) -> str:
        self.used.add(name)
        return name


def _split(total: int, weights: list[float], rng: random.Random, minimum: int) -> list[int]:
    """Split ``total`` into parts proportional to jittered weights, each at least ``minimum``."""
    w = [x * rng.uniform(0.8, 1.2) for x in weights]
    spare = total - minimum * len(w)
    raw = [spare * x / sum(w) for x in w]
    parts = [minimum + int(r) for r in raw]
    # Largest remainders get the units lost to truncation, so the sum is exact.
    order = sorted(range(len(w)), key=lambda i: raw[i] - int(raw[i]), reverse=True)
    for i in order[: total - sum(parts)]:
        parts[i] += 1
    return parts


def _reservoir(rng: random.Random, idx: int, name: str, town: str, lat: float, lon: float, medium: bool,
               season: FloodSeason) -> Station:
    dead = round(rng.uniform(20.0, 118.0), 2)
    flood_limit = round(dead + rng.uniform(3.0, 8.0), 2)
    # Some reservoirs are allowed to stay full through the flood season (flood-limit = normal pool).
    normal = flood_limit if rng.random() < 0.15 else round(flood_limit + rng.uniform(0.3, 1.5), 2)
    design = round(normal + rng.uniform(1.5, 3.0), 2)
    check = round(design + rng.uniform(0.5, 1.5), 2)
    crest = round(check + rng.uniform(1.0, 2.5), 2)
    # Storage grows like (h - bed)^p for a valley; scale it to a class-typical storage at normal pool.
    normal_storage = rng.uniform(10.0, 35.0) if medium else math.exp(rng.uniform(math.log(0.12), math.log(8.0)))
    bed = dead - rng.uniform(2.0, 5.0)
    p = rng.uniform(2.1, 2.6)
    k = normal_storage / (normal - bed) ** p
    n_seg = max(4, math.ceil(crest - dead))
    curve: list[tuple[float, float]] = []
    for i in range(n_seg + 1):
        level = crest if i == n_seg else round(dead + (crest - dead) * i / n_seg, 2)
        storage = round(k * (level - bed) ** p, 4)
        if curve and storage <= curve[-1][1]:
            storage = round(curve[-1][1] + 0.0001, 4)
        curve.append((level, storage))
    periods = season.flood_limit_periods(flood_limit, normal)
    # The flood-control high level lies between the normal pool and the design flood level; drawn without the
    # generator's random numbers, so a seed gives the same district as before it existed.
    flood_control_high = round(normal + 0.6 * (design - normal), 2)
    return Station(
        id=f"RS{idx:04d}", kind=Kind.reservoir, name=name, town=town, lat=lat, lon=lon,
        interval_s=rng.choice((600, 900)), dead_level_m=dead, flood_limit_level_m=flood_limit,
        normal_level_m=normal, flood_control_high_level_m=flood_control_high, design_flood_level_m=design,
        check_flood_level_m=check, crest_level_m=crest,
        level_storage=curve, flood_limit_periods=periods,
    )


def generate_district(seed: int = DEFAULT_SEED, season: FloodSeason | None = None) -> list[Station]:
    """Jimo-sized station list, identical for the same seed: reservoirs, rain gauges, rivers, villages. The
    reservoirs' flood-limit periods follow ``season`` (default: Shandong's, as the settings' default)."""
    season = season or FloodSeason()
    rng = random.Random(seed)
    names = _Names(rng)
    stations: list[Station] = []

    # Reservoirs.
    hill_towns = [t for t in TOWNS if t[0] in _RESERVOIR_TOWN_WEIGHT]
    weights = [_RESERVOIR_TOWN_WEIGHT[t[0]] for t in hill_towns]
    reservoirs: list[Station] = []
    for i in range(1, N_RESERVOIRS + 1):
        town, tlat, tlon, _ = rng.choices(hill_towns, weights)[0]
        lat, lon = _place(rng, tlat, tlon, 0.03)
        medium = i <= len(MEDIUM_RESERVOIRS)
        name = names.claim(MEDIUM_RESERVOIRS[i - 1]) if medium else names.village().removesuffix("村") + "水库"
        reservoirs.append(_reservoir(rng, i, name, town, lat, lon, medium, season))
    stations += reservoirs

    # Rain gauges: one at each town seat, the rest at the largest reservoirs (where bureaus put them).
    gauge_sites = [(f"{_short(t)}雨量站", t, lat, lon) for t, lat, lon, _ in TOWNS]
    gauge_sites += [(f"{r.name}雨量站", r.town, r.lat, r.lon) for r in reservoirs[: N_RAIN - len(TOWNS)]]
    for i, (name, town, lat, lon) in enumerate(gauge_sites, 1):
        glat, glon = _place(rng, lat, lon, 0.004)
        stations.append(Station(id=f"RG{i:04d}", kind=Kind.rain, name=name, town=town, lat=glat, lon=glon,
                                interval_s=300))

    # River stations, spaced along each river from upstream to downstream.
    idx = 0
    used: set[str] = set()
    for river, n, (lat0, lon0), (lat1, lon1), _q in RIVERS:
        source_bed = rng.uniform(25.0, 45.0) - (12.0 if river == "大沽河" else 0.0)
        for j in range(n):
            idx += 1
            f = (j + 0.5) / n + rng.uniform(-0.1, 0.1)
            lat, lon = _place(rng, lat0 + (lat1 - lat0) * f, lon0 + (lon1 - lon0) * f, 0.005)
            town = _nearest_town(lat, lon)
            name = f"{river}{_short(town)}站"
            if name in used:
                name = f"{river}{_short(town)}{j + 1}号站"
            used.add(name)
            # Beds fall towards the sea (the border river 大沽河 is lowest); levels are rounded as gauges report them.
            bed = max(2.0, source_bed - 20.0 * f)
            warning = round(bed + rng.uniform(2.5, 4.5), 2)
            guaranteed = round(warning + rng.uniform(0.8, 1.8), 2)
            stations.append(Station(id=f"RV{idx:04d}", kind=Kind.river, name=name, town=town, lat=lat, lon=lon,
                                    interval_s=rng.choice((600, 900)), river=river, warning_level_m=warning,
                                    guaranteed_level_m=guaranteed,
                                    # the usual stage (常水位), half a metre over the bed as the scenarios run
                                    normal_level_m=round(bed + 0.5, 2)))

    # Village water-supply points, every town getting a share of the 1,033 villages.
    counts = _split(N_VILLAGES, [t[3] for t in TOWNS], rng, minimum=30)
    idx = 0
    for (town, tlat, tlon, _), count in zip(TOWNS, counts):
        for _ in range(count):
            idx += 1
            village = names.village()
            lat, lon = _place(rng, tlat, tlon, 0.03)
            stations.append(Station(id=f"VW{idx:04d}", kind=Kind.village_water, name=f"{village}供水点",
                                    town=town, lat=lat, lon=lon, interval_s=rng.choice((600, 900)),
                                    village=village))
    return stations


