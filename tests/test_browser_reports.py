"""The Reports page in a real browser (Debian's Chromium via Playwright) on the storm scenario's data: the storm's
areal rainfall by town, a reservoir's inflow hydrograph, and the Excel download opened with openpyxl."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Iterator

import pytest
from playwright.sync_api import Browser, expect

from api import ApiServer
from core.registry import open_registry
from core.reports.towns import TownRepo
from core.settings import Settings
from core.tsdb.sqlite import SQLiteStore
from simulators.town_polygons import generate_towns
from support.browser import chromium
from tests.auth_util import PASSWORD, ensure_user
from tests.reports_support import report_stations, storm_readings

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
TIMEOUT_MS = 20_000
expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(scope="module")
def server(tmp_path_factory, district) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("reports-browser")
    settings = Settings(data_dir=tmp, _env_file=None)
    registry = open_registry(settings.db_url)
    registry.create_schema()
    registry.upsert_stations(report_stations(district))
    TownRepo(registry.engine).replace_all(generate_towns())
    ensure_user(registry, "duty", "duty")
    store = SQLiteStore(tmp / "ts.sqlite3")
    store.write(storm_readings(district))
    api = ApiServer(settings, registry=registry, store=store, host="127.0.0.1", port=0, stream=False)
    api.start()
    try:
        yield api.url
    finally:
        api.stop()
        store.close()
        registry.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


def test_reports_page_shows_the_storm_and_downloads_excel(server: str, browser: Browser) -> None:
    from openpyxl import load_workbook

    context = browser.new_context(viewport={"width": 1600, "height": 1000}, locale="zh-CN", timezone_id="UTC",
                                  accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    requests: list[str] = []
    errors: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(f"{server}/reports?from=2026-07-19&to=2026-07-21")
        page.fill("#login-username", "duty")
        page.fill("#login-password", PASSWORD)
        page.click("#login-submit")

        # The storm is the period's one event, selected, with the areal rainfall of all 17 towns as bars.
        row = page.locator('#events tr[data-event-id="2026072010"]')
        expect(row).to_have_class("selected")
        bars = page.locator("#areal-bars rect.bar")
        expect(bars).to_have_count(17)
        values = [float(v) for v in bars.evaluate_all("els => els.map(e => e.dataset.value)")]
        assert all(v >= 0 for v in values) and max(values) > 50
        assert values == sorted(values, reverse=True)
        expect(page.locator("#event-map path.town")).to_have_count(17)
        expect(page.locator("#event-map rect.gauge")).to_have_count(24)
        expect(page.locator("#hyetograph g.bars rect").first).to_be_visible()

        # A reservoir's inflow hydrograph, and another chosen from the list.
        expect(page.locator("#hydrograph path.series")).to_be_visible()
        first = page.locator("#hydrograph").get_attribute("data-station-id")
        options = page.locator("#inflow-reservoir option")
        expect(options).to_have_count(40)
        other = options.nth(5).get_attribute("value")
        page.select_option("#inflow-reservoir", other)
        expect(page.locator("#hydrograph")).to_have_attribute("data-station-id", other)
        assert other != first
        expect(page.locator("#inflow tbody tr")).to_have_count(40)

        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "reports-page.png"), full_page=True)

        # The event's Excel: one sheet per table, Chinese headers with units, numbers as numbers.
        with page.expect_download() as dl:
            page.click("#dl-event")
        assert dl.value.suggested_filename == "降雨场次-2026072010.xlsx"
        wb = load_workbook(io.BytesIO(Path(dl.value.path()).read_bytes()))
        assert wb.sheetnames == ["场次概况", "雨量站", "乡镇面雨量"]
        towns = wb["乡镇面雨量"]
        assert [c.value for c in towns[1]][:3] == ["乡镇(街道)", "面积(km²)", "面雨量(mm)"]
        sheet_values = sorted((r[2] for r in towns.iter_rows(min_row=2, values_only=True)), reverse=True)
        assert len(sheet_values) == 17 and all(isinstance(v, (int, float)) for v in sheet_values)
        assert sheet_values == pytest.approx(values, abs=0.051)  # the page shows the same figures

        with page.expect_download() as dl:
            page.click("#dl-inflow")
        inflow = load_workbook(io.BytesIO(Path(dl.value.path()).read_bytes()))["水库来水"]
        assert inflow.max_row == 41 and isinstance(inflow.cell(2, 5).value, (int, float))

        # English, same figures.
        page.click("#lang-switch")
        expect(page.locator("h1")).to_have_text("Jimo smart water · Reports")
        assert [u for u in requests if not u.startswith(server) and not u.startswith(("data:", "blob:"))] == []
        assert errors == []
    finally:
        context.close()
