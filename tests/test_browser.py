"""The dashboard in a real browser against a running demo: headless Chromium from Debian's ``chromium`` package
driven by Playwright (never ``playwright install``: no browser downloads). Screenshots go to test-artifacts/."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from core.broker import free_port
from core.mqtt import wait_for
from support.browser import chromium
from support.servers import line_queue, stop_process

SMARTWATER = str(Path(sys.executable).with_name("smartwater"))
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
VIEWPORT = {"width": 1600, "height": 1000}
# reservoirs, gauges, river stations, villages, groundwater wells, intake points (simulators/water_supply.py)
N_STATIONS = 40 + 24 + 30 + 1033 + 30 + 82
TIMEOUT_MS = 20_000
expect.set_options(timeout=TIMEOUT_MS)  # a loaded 2-core machine runs the demo beside the browser


class Demo:
    def __init__(self, base: str, username: str, password: str) -> None:
        self.base, self.username, self.password = base, username, password
        resp = httpx.post(f"{base}/api/v1/auth/login", json={"username": username, "password": password}, timeout=10)
        resp.raise_for_status()
        self.auth = {"Authorization": f"Bearer {resp.json()['access_token']}"}

    def get(self, path: str):
        resp = httpx.get(f"{self.base}{path}", headers=self.auth, timeout=10)
        resp.raise_for_status()
        return resp.json()

    def poll(self, path: str):
        """For wait_for: None while the busy demo cannot answer (a locked SQLite gives 503 now and then)."""
        try:
            return self.get(path)
        except httpx.HTTPError:
            return None


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """``smartwater demo`` as an operator starts it, running the storm long enough for the whole module."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTWATER_")}
    data_dir = tmp_path_factory.mktemp("browser-demo")
    env["SMARTWATER_DATA_DIR"] = str(data_dir)
    log_path = data_dir / "demo.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([SMARTWATER, "demo", "--duration", "600", "--speed", "180", "--port", str(port)],
                                stdout=subprocess.PIPE, stderr=log, text=True, env=env)
    out = line_queue(proc.stdout)

    def log_tail() -> str:
        return log_path.read_text(errors="replace")[-3000:]

    try:
        first = out.get(timeout=90)
        assert first and f"http://127.0.0.1:{port}/" in first, f"not the dashboard URL first: {first!r}\n{log_tail()}"
        login = None
        while login is None:
            line = out.get(timeout=30)
            assert line is not None, f"the demo stopped before printing its staff login\n{log_tail()}"
            login = re.match(r"Staff login: (\S+) / (\S+)$", line.strip())
        base = f"http://127.0.0.1:{port}"
        assert wait_for(lambda: _healthy(base), 30, 0.2), f"the demo's API did not come up\n{log_tail()}"
        yield Demo(base, login[1], login[2])
    finally:
        stop_process(proc, 30)


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


class Watched:
    """A page in a fresh context (no stored token or language), with what it asked for and what went wrong."""

    def __init__(self, browser: Browser, base: str) -> None:
        self.context = browser.new_context(viewport=VIEWPORT, locale="zh-CN", timezone_id="UTC")
        self.page: Page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.base = base
        self.requests: list[str] = []
        self.failures: list[tuple[int, str]] = []
        self.errors: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("response", lambda r: r.status >= 400 and self.failures.append((r.status, r.url)))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("console", lambda m: m.type == "error" and "Failed to load resource" not in m.text
                     and self.errors.append(m.text))

    def check_clean(self, allowed_missing: tuple[str, ...] = ("/api/v1/bulletin",)) -> None:
        """Nothing from another origin (closed networks), no script errors, no failed calls but the allowed 404s
        (the bulletin endpoint comes with the river-chief work and may not be there yet)."""
        assert [u for u in self.requests if not u.startswith(self.base) and not u.startswith("data:")] == []
        assert self.errors == []
        assert [(s, u) for s, u in self.failures
                if not (s == 404 and u.removeprefix(self.base) in allowed_missing)] == []

    def close(self) -> None:
        self.context.close()


@pytest.fixture()
def watched(browser: Browser, demo: Demo) -> Iterator[Watched]:
    w = Watched(browser, demo.base)
    yield w
    w.close()


def _log_in(w: Watched, demo: Demo, path: str = "/") -> Page:
    page = w.page
    page.goto(f"{demo.base}{path}")
    expect(page.locator("#login")).to_be_visible()
    page.fill("#login-username", demo.username)
    page.fill("#login-password", demo.password)
    page.click("#login-submit")
    expect(page.locator("#app")).to_be_visible()
    expect(page.locator("#map .st")).to_have_count(N_STATIONS)
    return page


def _open_alerts(demo: Demo) -> list[dict]:
    return demo.poll("/api/v1/alerts?state=active&limit=1000") or []


def test_storm_alert_is_shown_and_acknowledged_from_the_page(watched: Watched, demo: Demo):
    ARTIFACTS.mkdir(exist_ok=True)
    assert wait_for(lambda: bool(_open_alerts(demo)), 90, 0.5), "the storm raised no alert"
    page = _log_in(watched, demo)
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.locator("h1")).to_have_text("即墨区智慧水务 · 值班台")
    expect(page.locator("#live")).to_have_class(re.compile(r"\bon\b"))  # the SSE stream took the token
    expect(page.locator("#map .st:not([data-state=normal]):not([data-state=stale])").first).to_be_attached()

    # The storm's alerts, as the API has them, are in the list: the first active one with its button.
    item = page.locator("#alerts li.alert[data-state=active]").first
    expect(item.locator("button.ack")).to_have_text("确认")
    # Both attributes of one element at once: the storm re-renders the list, and a locator is looked up anew on
    # every call, so two calls could read two different items.
    alert_id, station_id = item.evaluate("e => [Number(e.dataset.alertId), e.dataset.stationId]")
    alert = demo.get(f"/api/v1/alerts/{alert_id}")
    assert alert["rule"] and alert["station_id"] == station_id
    page.screenshot(path=str(ARTIFACTS / "dashboard-zh.png"))

    page.locator(f'#alerts li.alert[data-alert-id="{alert_id}"] button.ack').click()
    # The API holds the acknowledgement by the signed-in user; the state says so unless the storm moved the alert
    # on since (an escalation makes it active again, a clearing clears it), which its history then shows.
    assert wait_for(lambda: any(e["event"] == "acknowledged"
                                for e in (demo.poll(f"/api/v1/alerts/{alert_id}") or {}).get("events", [])),
                    10, 0.2), "the click did not acknowledge the alert"
    after = demo.get(f"/api/v1/alerts/{alert_id}")
    events = [e["event"] for e in after["events"]]
    acked = events.index("acknowledged")
    assert after["acknowledged_by"] == demo.username or set(events[acked + 1:]) & {"escalated", "cleared"}, after
    if not set(events[acked + 1:]) & {"escalated", "cleared", "closed", "reopened"}:
        assert after["state"] == "acknowledged", after
        expect(page.locator(f'#alerts li.alert[data-alert-id="{alert_id}"]')).to_have_attribute(
            "data-state", "acknowledged")
    page.screenshot(path=str(ARTIFACTS / "dashboard-acknowledged.png"))

    # The station panel: the alerting station's readings with its reference lines.
    page.locator(f'#alerts li.alert[data-alert-id="{alert_id}"] .alert-main').click()
    expect(page.locator("#station")).to_be_visible()
    expect(page.locator("#chart .series, #chart .bars rect, #chart .empty").first).to_be_attached()
    page.locator("#station").screenshot(path=str(ARTIFACTS / "dashboard-station.png"))
    page.screenshot(path=str(ARTIFACTS / "dashboard-full.png"), full_page=True)
    watched.check_clean()


def test_an_e_mail_link_opens_the_page_on_its_alert(watched: Watched, demo: Demo):
    """The alert e-mail links to /#alert={id}: after the login the page marks that alert and shows its station."""
    assert wait_for(lambda: bool(_open_alerts(demo)), 90, 0.5), "the storm raised no alert"
    alert = _open_alerts(demo)[-1]
    alert_id = alert["id"]
    page = _log_in(watched, demo, f"/#alert={alert_id}")
    expect(page.locator("#station")).to_be_visible()
    expect(page.locator("#station-meta")).to_contain_text(alert["station_id"])
    # Still open (the storm may have cleared it meanwhile, and then the page says so instead):
    row_or_note = page.locator(f'#alerts li.alert.focus[data-alert-id="{alert_id}"], #toasts .toast-info')
    expect(row_or_note.first).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "dashboard-linked-alert.png"))

    page.evaluate("location.hash = '#alert=999999999'")  # a link to nothing: said, not a broken page
    expect(page.locator("#toasts .toast-error")).to_contain_text("999999999")
    watched.check_clean(allowed_missing=("/api/v1/bulletin", "/api/v1/alerts/999999999"))


def test_language_switch_from_chinese_to_english(watched: Watched, demo: Demo):
    page = _log_in(watched, demo)
    expect(page.locator("#rain table")).to_be_visible()
    expect(page.locator("#rain th").first).to_have_text("雨量站")
    page.click("#lang-switch")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("h1")).to_have_text("Jimo Smart Water · Duty Desk")
    expect(page.locator("#lang-switch")).to_have_text("中文")
    expect(page.locator("#rain th").first).to_have_text("Gauge")
    expect(page.locator("#reservoirs th").first).to_have_text("Reservoir")
    if page.locator("#alerts button.ack").count():
        expect(page.locator("#alerts button.ack").first).to_have_text("Acknowledge")
    page.screenshot(path=str(ARTIFACTS / "dashboard-en.png"))
    page.reload()  # the choice is kept
    expect(page.locator("h1")).to_have_text("Jimo Smart Water · Duty Desk")
    watched.check_clean()


def test_public_bulletin_needs_no_login(watched: Watched, demo: Demo):
    """The last complete month by default (the demo seeds its patrols), numeric rates, towns ranked, a month
    picker, and every number under its own header."""
    page = watched.page
    page.goto(f"{demo.base}/bulletin")
    expect(page.locator("h1")).to_have_text("河长巡河情况公示")
    expect(page.locator("#chiefs-table")).to_be_visible()
    expect(page.locator("#towns-table")).to_be_visible()
    body = httpx.get(f"{demo.base}/api/v1/bulletin", timeout=10).json()
    expect(page.locator("#period")).to_contain_text(body["period"]["label"])
    assert page.locator("#month").input_value() == body["period"]["month"]
    assert page.locator("#towns-table tbody tr").count() == 17
    assert page.locator("#towns-table tbody tr").first.locator("td").first.inner_text() == "1"
    rates = page.locator("#chiefs-table tbody td:last-child").all_inner_texts()
    assert rates and all(r.strip().endswith("%") for r in rates), rates[:5]  # no "—": every chief had periods due
    # Numbers sit under their headers: each right-aligned header ends where its column's cells end.
    for tid in ("#chiefs-table", "#towns-table"):
        heads = page.locator(f"{tid} thead th")
        cells = page.locator(f"{tid} tbody tr").first.locator("td")
        for k in range(heads.count()):
            hb, cb = heads.nth(k).bounding_box(), cells.nth(k).bounding_box()
            assert hb and cb and abs(hb["x"] - cb["x"]) < 1 and abs(hb["width"] - cb["width"]) < 1
            if "num" in (heads.nth(k).get_attribute("class") or ""):
                assert heads.nth(k).evaluate("e => getComputedStyle(e).textAlign") == "right", (tid, k)
    page.screenshot(path=str(ARTIFACTS / "bulletin.png"))
    # Another month from the picker: the page asks for it and says so.
    page.locator("#month").fill("2025-06")
    page.locator("#month").dispatch_event("change")
    expect(page.locator("#period")).to_contain_text("2025-06-01 – 2025-06-30")
    assert not any(s == 401 for s, _ in watched.failures)  # it asked for nothing that needs a token
    watched.check_clean()
