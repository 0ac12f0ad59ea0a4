"""Rain and inflow reports: storm events, areal rainfall, reservoir inflow, this year against past years.

Thin: parse and check the period, build the report context (stations, towns, settings), call core.reports, render
JSON, CSV or Excel. "Now" is read here, at the edge, and passed down.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Callable, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse, Response

from api.auth import ANY_ROLE
from api.deps import RegistryDep, SettingsDep, StoreDep
from api.errors import echo, invalid, not_found
from api.params import TIME_HELP, parse_time
from core.reports import export
from core.reports.history import rainfall_history
from core.reports.service import (ReportContext, areal_rainfall, parse_event_id, rain_event, rain_events,
                                  reservoir_inflow)
from core.reports.towns import TownRepo, towns_geojson
from core.registry import Registry
from core.settings import Settings
from core.timeutil import utcnow, zone

router = APIRouter(prefix="/reports", tags=["reports"], dependencies=[Depends(ANY_ROLE)])

Format = Annotated[Literal["json", "csv", "xlsx"], Query(description="json (default), csv (one table, `table`) or "
                                                                      "xlsx (every table, one sheet each)")]
Lang = Annotated[Literal["zh", "en"], Query(description="CSV and Excel headers: zh (default, with units) or en")]
TableNo = Annotated[int, Query(ge=1, le=5, description="CSV only: which table (1 = the first sheet of the xlsx)")]
From = Annotated[str | None, Query(alias="from", max_length=64, description=f"period start; {TIME_HELP}")]
To = Annotated[str | None, Query(alias="to", max_length=64, description=f"period end, exclusive; {TIME_HELP}; "
                                                                          "default now")]
DEFAULT_SPAN = timedelta(days=30)
FILE_TYPES = {"csv": "text/csv; charset=utf-8",
              "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
_FILES = {200: {"content": {"text/csv": {}, FILE_TYPES["xlsx"]: {}},
                "description": "the report (JSON, or a CSV / Excel download)"}}


def context(registry: Registry, settings: Settings) -> ReportContext:
    return ReportContext(registry.list_stations(kind="rain") + registry.list_stations(kind="reservoir"),
                         TownRepo(registry.engine).list(), zone(settings.display_timezone),
                         dry_gap_h=settings.reports_event_dry_gap_h, trace_mm=settings.reports_trace_mm,
                         min_coverage=settings.reports_gauge_min_coverage)


def period(start: str | None, end: str | None, settings: Settings, now: datetime) -> tuple[datetime, datetime]:
    """[from, to) checked: to after from, at most reports_max_range_days; defaults to the last 30 days."""
    t0, t1 = parse_time("from", start), parse_time("to", end)
    t1 = t1 or now
    t0 = t0 or t1 - DEFAULT_SPAN
    if t1 <= t0:
        invalid("query", "to", f"to must be after from; got from {t0.isoformat()} to {t1.isoformat()}", end)
    longest = timedelta(days=settings.reports_max_range_days)
    if t1 - t0 > longest:
        invalid("query", "to", f"the period may be at most {longest.days} days long; got "
                f"{(t1 - t0).total_seconds() / 86400:.1f} days", end)
    return t0, t1


def render(report: dict[str, Any], tables: Callable[[dict[str, Any]], list[export.Table]], fmt: str, lang: str,
           table: int, filename: str) -> Response:
    if fmt == "json":
        return JSONResponse(report)
    sheets = tables(report)
    if fmt == "csv":
        if table > len(sheets):
            invalid("query", "table", f"this report has {len(sheets)} table(s); got table={table}", table)
        body, name = export.to_csv(sheets[table - 1], lang), f"{filename}-{table}.csv"
    else:
        body, name = export.to_xlsx(sheets, lang), f"{filename}.xlsx"
    return Response(body, media_type=FILE_TYPES[fmt], headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _stamp(ts: datetime, settings: Settings) -> str:
    return ts.astimezone(zone(settings.display_timezone)).strftime("%Y%m%d")


@router.get("/rain-events", summary="Storm events (降雨场次) in a period", responses=_FILES,
            description="Events found in the gauges' hourly rain: an event ends after `reports_event_dry_gap_h` dry "
                        "hours across the district (default 6 h); hourly rain below `reports_trace_mm` is a trace. "
                        "Recomputed from the stored readings on each request, so late data count. Per event: start, "
                        "end, duration, the district's areal rain, the wettest gauge and the largest 1 h rain. "
                        "Default period: the last 30 days.")
def list_rain_events(registry: RegistryDep, store: StoreDep, settings: SettingsDep, start: From = None,
                     end: To = None, format: Format = "json", lang: Lang = "zh", table: TableNo = 1) -> Response:
    now = utcnow()
    t0, t1 = period(start, end, settings, now)
    rep = rain_events(store, context(registry, settings), t0, t1, now)
    return render(rep, export.rain_events_tables, format, lang, table,
                  f"rain-events-{_stamp(t0, settings)}-{_stamp(t1, settings)}")


@router.get("/rain-events/{event_id}", summary="One storm event with every gauge's and town's figures",
            responses={**_FILES, 404: {"description": "no event starts at that hour"}},
            description="`event_id` is the event's local start hour, YYYYMMDDHH. Per gauge: total, the largest "
                        "1 h / 3 h / 6 h rain with their times, whether it counted in the areal rain; per town: the "
                        "areal rain (Thiessen weights over the town's boundary) and the gauges used; hourly "
                        "hyetographs.")
def get_rain_event(event_id: str, registry: RegistryDep, store: StoreDep, settings: SettingsDep,
                   format: Format = "json", lang: Lang = "zh", table: TableNo = 1) -> Response:
    ctx = context(registry, settings)
    try:
        parse_event_id(event_id, ctx.tz)
    except ValueError as exc:
        invalid("path", "event_id", f"{exc}; got {echo(event_id)}", event_id)
    rep = rain_event(store, ctx, event_id, utcnow())
    if rep is None:
        not_found("storm event", event_id)
    return render(rep, export.rain_event_tables, format, lang, table, f"rain-event-{event_id}")


@router.get("/areal-rainfall", summary="Areal rainfall (面雨量) of the district and each town", responses=_FILES,
            description="Per hydrological day (08:00–08:00 local), per month and per storm event in the period "
                        "(rounded out to whole hydrological days). Thiessen polygon weights of the gauges in use over "
                        "each town's boundary; a gauge that sent less than `reports_gauge_min_coverage` of its "
                        "readings in a period drops out there and the report lists it.")
def get_areal_rainfall(registry: RegistryDep, store: StoreDep, settings: SettingsDep, start: From = None,
                       end: To = None, format: Format = "json", lang: Lang = "zh", table: TableNo = 1) -> Response:
    now = utcnow()
    t0, t1 = period(start, end, settings, now)
    rep = areal_rainfall(store, context(registry, settings), t0, t1, now)
    return render(rep, export.areal_tables, format, lang, table,
                  f"areal-rainfall-{_stamp(t0, settings)}-{_stamp(t1, settings)}")


@router.get("/reservoir-inflow", summary="Reservoir inflow volumes, peaks and levels", responses=_FILES,
            description="Per reservoir over the period and per hydrological day: inflow volume (10⁴ m³ and 10⁶ m³), "
                        "peak inflow and its time, outflow volume, storage change, highest level and its margin to "
                        "the flood-limit level in force. Inflow from the inflow sensor where there is one, else from "
                        "the water balance (Δstorage/Δt + outflow, storage from the level–storage curve); negative or "
                        "doubtful values are flagged, not hidden. Ranked by volume, with the district's total. "
                        "`hydrograph=true` adds hourly inflow per reservoir (JSON only).")
def get_reservoir_inflow(registry: RegistryDep, store: StoreDep, settings: SettingsDep, start: From = None,
                         end: To = None, format: Format = "json", lang: Lang = "zh", table: TableNo = 1,
                         hydrograph: bool = False) -> Response:
    now = utcnow()
    t0, t1 = period(start, end, settings, now)
    rep = reservoir_inflow(store, context(registry, settings), t0, t1, now, hydrograph=hydrograph and format == "json")
    return render(rep, export.inflow_tables, format, lang, table,
                  f"reservoir-inflow-{_stamp(t0, settings)}-{_stamp(t1, settings)}")


@router.get("/rainfall-history", summary="This year's rainfall against past years (历年同期)", responses=_FILES,
            description="Monthly and year-to-date rainfall per gauge, town (areal) and the district in `year`, "
                        "against the mean of the same period in every earlier year with data and against last year, "
                        "in mm and in per cent (偏多/偏少 x %). Year to date runs to now for the current year.")
def get_rainfall_history(registry: RegistryDep, store: StoreDep, settings: SettingsDep,
                         year: Annotated[int | None, Query(ge=1900, le=2200, description="default: this year")] = None,
                         years_back: Annotated[int, Query(ge=1, le=50, description="past years in the mean")] = 10,
                         format: Format = "json", lang: Lang = "zh", table: TableNo = 1) -> Response:
    now = utcnow()
    ctx = context(registry, settings)
    year = year or now.astimezone(ctx.tz).year
    if year > now.astimezone(ctx.tz).year:
        invalid("query", "year", f"year {year} has not begun", year)
    rep = rainfall_history(store, ctx, year, now, years_back=years_back)
    return render(rep, export.history_tables, format, lang, table, f"rainfall-history-{year}")


@router.get("/towns", summary="The towns' boundaries as GeoJSON (for the reports' maps)",
            responses={200: {"content": {"application/geo+json": {}}, "description": "GeoJSON"}},
            response_class=JSONResponse, description="A FeatureCollection of the towns' Polygons/MultiPolygons, properties `name` and `area_km2`.")
def get_towns(registry: RegistryDep) -> JSONResponse:
    return JSONResponse(towns_geojson(TownRepo(registry.engine).list()), media_type="application/geo+json")
