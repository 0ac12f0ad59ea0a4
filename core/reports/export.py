"""Reports as tables: CSV (UTF-8 with BOM, so Excel keeps the Chinese) and Excel (openpyxl, one sheet per table).

Headers are Chinese with units first (``全区面雨量(mm)``), English on request. Numbers stay numbers; times are
written as local date-times in Excel and as ISO 8601 with offset in CSV.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Sequence


@dataclass(frozen=True, slots=True)
class Col:
    key: str
    zh: str
    en: str
    kind: str = "text"  # text | number | time | bool


@dataclass(slots=True)
class Table:
    sheet_zh: str
    sheet_en: str
    columns: list[Col]
    rows: list[dict[str, Any]] = field(default_factory=list)


def _cell(col: Col, value: Any, lang: str, excel: bool) -> Any:
    if value is None:
        return None if excel else ""
    if col.kind == "bool":
        return ("是" if value else "否") if lang == "zh" else ("yes" if value else "no")
    if col.kind == "time" and excel and isinstance(value, str):
        # Excel has no time zones: the local wall-clock time, as the bureau reads it.
        return datetime.fromisoformat(value).replace(tzinfo=None)
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], dict):  # flags: {code, zh, en}
        return "；".join(f[lang] for f in value) if lang == "zh" else "; ".join(f[lang] for f in value)
    if isinstance(value, (list, tuple)):
        return "、".join(map(str, value)) if lang == "zh" else ", ".join(map(str, value))
    return value


def to_csv(table: Table, lang: str = "zh") -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow([c.zh if lang == "zh" else c.en for c in table.columns])
    for row in table.rows:
        w.writerow([_cell(c, row.get(c.key), lang, excel=False) for c in table.columns])
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def to_xlsx(tables: Sequence[Table], lang: str = "zh") -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    wb = Workbook()
    wb.remove(wb.active)
    for table in tables:
        ws = wb.create_sheet((table.sheet_zh if lang == "zh" else table.sheet_en)[:31])
        ws.append([c.zh if lang == "zh" else c.en for c in table.columns])
        for cell in ws[1]:
            cell.font = Font(bold=True)
        for row in table.rows:
            ws.append([_cell(c, row.get(c.key), lang, excel=True) for c in table.columns])
        for i, c in enumerate(table.columns, 1):
            letter = get_column_letter(i)
            ws.column_dimensions[letter].width = max(10, min(40, len(c.zh if lang == "zh" else c.en) * 2 + 2))
            if c.kind == "time":
                for cell in ws[letter][1:]:
                    cell.number_format = "yyyy-mm-dd hh:mm"
        ws.freeze_panes = "A2"
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


# ----------------------------------------------------------------------------------------------- the reports' tables

def _c(key: str, zh: str, en: str, kind: str = "number") -> Col:
    return Col(key, zh, en, kind)


EVENT_COLS = [
    _c("id", "场次编号", "event id", "text"), _c("start", "开始时间", "start", "time"),
    _c("end", "结束时间", "end", "time"), _c("duration_h", "历时(h)", "duration (h)"),
    _c("closed", "已结束", "closed", "bool"),
    _c("district_areal_rain_mm", "全区面雨量(mm)", "district areal rain (mm)"),
    _c("wettest_station_name", "最大点雨量站", "wettest gauge", "text"),
    _c("wettest_rain_mm", "最大点雨量(mm)", "wettest gauge rain (mm)"),
    _c("max_1h_rain_mm", "最大1小时雨量(mm)", "max 1 h rain (mm)"),
    _c("gauges_used", "参与计算雨量站数", "gauges used"),
]


def rain_events_tables(rep: dict[str, Any]) -> list[Table]:
    return [Table("降雨场次", "storm events", EVENT_COLS, rep["events"])]


def rain_event_tables(rep: dict[str, Any]) -> list[Table]:
    gauge_cols = [
        _c("station_id", "测站编码", "station id", "text"), _c("name", "雨量站", "gauge", "text"),
        _c("town", "乡镇(街道)", "town", "text"), _c("rain_mm", "累计雨量(mm)", "total rain (mm)"),
        _c("used", "参与面雨量计算", "used in areal rain", "bool"),
        _c("district_weight", "全区泰森权重", "district Thiessen weight"),
    ]
    for h in (1, 3, 6):
        gauge_cols += [_c(f"max_{h}h_rain_mm", f"最大{h}小时雨量(mm)", f"max {h} h rain (mm)"),
                       _c(f"max_{h}h_start", f"最大{h}小时开始时间", f"max {h} h start", "time")]
    town_cols = [_c("town", "乡镇(街道)", "town", "text"), _c("area_km2", "面积(km²)", "area (km²)"),
                 _c("areal_rain_mm", "面雨量(mm)", "areal rain (mm)"),
                 _c("gauges_text", "参与雨量站(权重)", "gauges (weight)", "text")]
    towns = [{**t, "gauges_text": "、".join(f"{g['station_id']}({g['weight']})" for g in t["gauges"])}
             for t in rep["towns"]]
    summary = {k: rep.get(k) for k in (c.key for c in EVENT_COLS)}
    summary["gauges_dropped"] = rep.get("gauges_dropped")
    return [Table("场次概况", "event", EVENT_COLS + [_c("gauges_dropped", "缺测雨量站", "gauges dropped", "text")],
                  [summary]),
            Table("雨量站", "gauges", gauge_cols, rep["gauges"]),
            Table("乡镇面雨量", "towns", town_cols, towns)]


def areal_tables(rep: dict[str, Any]) -> list[Table]:
    cols = [_c("period", "时段", "period", "text"), _c("start", "开始时间", "start", "time"),
            _c("end", "结束时间", "end", "time"), _c("district_areal_rain_mm", "全区面雨量(mm)",
                                                      "district areal rain (mm)")]
    cols += [_c(f"town:{t}", f"{t}面雨量(mm)", f"{t} areal rain (mm)") for t in rep["towns"]]
    cols += [_c("gauges_used", "参与雨量站", "gauges used", "text"),
             _c("gauges_dropped", "缺测雨量站", "gauges dropped", "text")]

    def flat(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**r, **{f"town:{t['town']}": t["areal_rain_mm"] for t in r["towns"]}} for r in rows]

    return [Table("逐日面雨量", "daily", cols, flat(rep["days"])),
            Table("逐月面雨量", "monthly", cols, flat(rep["months"])),
            Table("场次面雨量", "events", cols, flat(rep["events"]))]


INFLOW_COLS = [
    _c("station_id", "测站编码", "station id", "text"), _c("name", "水库", "reservoir", "text"),
    _c("town", "乡镇(街道)", "town", "text"),
    _c("inflow_volume_10k_m3", "来水量(万m³)", "inflow volume (10⁴ m³)"),
    _c("inflow_volume_mcm", "来水量(百万m³)", "inflow volume (10⁶ m³)"),
    _c("peak_inflow_m3s", "最大入库流量(m³/s)", "peak inflow (m³/s)"),
    _c("peak_inflow_at", "最大入库流量时间", "peak inflow time", "time"),
    _c("outflow_volume_10k_m3", "出库水量(万m³)", "outflow volume (10⁴ m³)"),
    _c("storage_change_10k_m3", "蓄水变量(万m³)", "storage change (10⁴ m³)"),
    _c("max_level_m", "最高水位(m)", "highest level (m)"),
    _c("max_level_at", "最高水位时间", "highest level time", "time"),
    _c("flood_limit_level_m", "汛限水位(m)", "flood-limit level (m)"),
    _c("margin_to_flood_limit_m", "距汛限水位(m)", "margin to flood-limit level (m)"),
    _c("method", "计算方法", "method", "text"), _c("flags", "数据提示", "flags", "text"),
]


def inflow_tables(rep: dict[str, Any]) -> list[Table]:
    ranked = [{**r, "method": _method(r["method"])} for r in rep["reservoirs"]]
    daily = [{**p, "station_id": r["station_id"], "name": r["name"], "town": r["town"], "method": _method(p["method"])}
             for r in rep["reservoirs"] for p in r["periods"]]
    return [Table("水库来水", "reservoirs", [_c("rank", "排序", "rank")] + INFLOW_COLS, ranked),
            Table("逐日来水", "daily", [_c("period", "日期", "day", "text")] + INFLOW_COLS, daily)]


def _method(m: str) -> str:
    return {"sensor": "入库流量计", "balance": "水量平衡", "none": "无数据"}.get(m, m)


def history_tables(rep: dict[str, Any]) -> list[Table]:
    cols = [_c("scope", "范围", "scope", "text"), _c("name", "名称", "name", "text"),
            _c("period", "时段", "period", "text"), _c("rain_mm", "降雨量(mm)", "rain (mm)"),
            _c("mean_mm", "历年同期(mm)", "multi-year mean (mm)"),
            _c("vs_mean_pct", "较历年同期(%)", "vs multi-year mean (%)"),
            _c("vs_mean_text", "较历年同期", "vs mean", "text"),
            _c("last_year_mm", "去年同期(mm)", "last year (mm)"),
            _c("vs_last_year_pct", "较去年同期(%)", "vs last year (%)"),
            _c("years", "统计年数", "years in the mean")]
    return [Table("降雨量对比", "rainfall history", cols, rep["rows"])]
