"""The dashboard (数据驾驶舱) in a real browser and the exports read back, on a scenario with known numbers.

Lifecycle events with fixed times are published to civic.tickets; the running reporting service projects them;
headless Chromium (Playwright driving /usr/bin/chromium) opens /dashboard and the charts must show the scenario's
numbers, then refresh in place when one more ticket arrives. A screenshot is left in tests/artifacts/. The xlsx
exports are read back with openpyxl.

The scenario's events carry their own source, and the page and the exports are filtered by it (``source=``), so
the other tests' tickets in the same topics and database do not count.

Week 42 of 2026 (Mon 12 Oct – Sun 18 Oct):

- A1 西溪村 扬尘, lead 西溪村: routed Mon 09:00, one repeat (重复件) Mon 12:00, signed 10:00, resolved Tue 10:00.
- A2 西溪村 扬尘, lead 西溪村: routed Tue 09:00, signed 10:00, resolve due Wed 17:30: marked overdue, still open.
- A3 南塘村 秸秆焚烧, lead 南塘村: routed Wed 09:00, never signed: its sign-for limit (Wed 17:30) and resolve limit
  (Fri 16 Oct 17:30) marked missed; overdue now.
- A4 南塘村 欠薪, lead 劳动保障所: routed Thu 09:00, signed 09:30, resolved 16:00.
- A5 星河社区 噪声, lead 星河社区: routed Fri 09:00, signed 11:00, resolved 16:00.
- P1 (week 41) 西溪村 扬尘, lead 西溪村: routed Fri 9 Oct 09:00, signed 09:30, resolved 15:00.
- A6 永丰村 扬尘, routed Sat 17 Oct 09:00: published only once the page is showing, to see it refresh.

So week 42: 5 created, 3 resolved, 4 of the 5 due for sign-for signed in time (响应率 80 %, the week before 100 %);
per village 西溪村 2, 南塘村 2, 星河社区 1; per category 生态环保 4, 劳资纠纷 1; 2 overdue, A2 the longest. The
browser runs in London time: the page still shows the district's (Asia/Shanghai).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from io import BytesIO
from pathlib import Path
from urllib.parse import unquote
from zoneinfo import ZoneInfo

import httpx
import pytest
from openpyxl import load_workbook

from civicbus.auth import Role, create_key
from civicbus.events import (
    EventKind,
    Repeat,
)

from .browser import CHROMIUM, needs_chromium, watched_page
from .ticket_stories import TicketStory, publish_stories

pytestmark = pytest.mark.integration
SHANGHAI = ZoneInfo("Asia/Shanghai")
SOURCE = f"dashboard.{uuid.uuid4().hex[:8]}"
WEEK_DAY = "2026-10-14"  # a day of the scenario's week
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
AREA_NAMES = {"xixi": "西溪村", "nantang": "南塘村", "xinghe": "星河社区", "yongfeng": "永丰村"}


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 10, day, hour, minute, tzinfo=SHANGHAI)


class Story(TicketStory):
    def __init__(self, label: str, category: str, category_name: str, area: str, lead: str, routed: datetime,
                 resolve_due: datetime) -> None:
        super().__init__(
            f"SF-{label}-{SOURCE}", SOURCE, routed, title=f"{AREA_NAMES[area]}{category_name.split('/')[-1]}（{label}）",
            content=f"{category_name}（驾驶舱场景 {label}）", category=category, category_name=category_name,
            area=area, area_name=AREA_NAMES[area], lead_unit=lead, sign_for_due=routed.replace(hour=17, minute=30),
            resolve_due=resolve_due)
        self.step(EventKind.ticket_routed, routed)


DUST, STRAW = ("environment.dust", "生态环保/扬尘"), ("environment.straw", "生态环保/秸秆焚烧")
WAGES, NOISE = ("labor.wage_arrears", "劳资纠纷/欠薪"), ("environment.noise", "生态环保/噪声")


def scenario() -> list[Story]:
    a1 = Story("A1", *DUST, "xixi", "xixi", at(12, 9), at(14, 17, 30)).signed(at(12, 10))
    a1.step(EventKind.ticket_grouped, at(12, 12), event={"events_joined": 1}, event_count=2,
            last_event_at=at(12, 12), repeats=[Repeat(event_id=f"{SOURCE}-r1", at=at(12, 12))])
    a1.resolved(at(13, 10))
    a2 = Story("A2", *DUST, "xixi", "xixi", at(13, 9), at(14, 17, 30)).signed(at(13, 10))
    a2.step(EventKind.ticket_overdue, at(14, 17, 31), event={"deadline": "resolve"}, overdue=["resolve"])
    a3 = Story("A3", *STRAW, "nantang", "nantang", at(14, 9), at(16, 17, 30))
    a3.step(EventKind.ticket_overdue, at(14, 17, 31), event={"deadline": "sign_for"}, overdue=["sign_for"])
    a3.step(EventKind.ticket_overdue, at(16, 17, 31), event={"deadline": "resolve"}, overdue=["sign_for", "resolve"])
    a4 = Story("A4", *WAGES, "nantang", "laobao", at(15, 9), at(22, 17, 30)).signed(at(15, 9, 30)).resolved(at(15, 16))
    a5 = Story("A5", *NOISE, "xinghe", "xinghe", at(16, 9), at(23, 17, 30)).signed(at(16, 11)).resolved(at(16, 16))
    p1 = Story("P1", *DUST, "xixi", "xixi", at(9, 9), at(13, 17, 30)).signed(at(9, 9, 30)).resolved(at(9, 15))
    return [a1, a2, a3, a4, a5, p1]


LATE_ARRIVAL = Story("A6", *DUST, "yongfeng", "yongfeng", at(17, 9), at(30, 17, 30))  # 2026-10-30: overdue now too


@pytest.fixture(scope="module")
async def published(stack, services, mongo) -> list[Story]:
    stories = scenario()
    await publish_stories(stack, mongo, stories, "the dashboard scenario's events")
    return stories


@pytest.fixture(scope="module")
def reporting_url(services) -> str:
    return services["reporting"].base_url


def _chart_rows(rows: list[dict[str, str]]) -> dict[str, str]:
    return {row["key"]: row["value"] for row in rows}


CHART_ROWS = """name => [...document.querySelectorAll(`table.chart-data[data-chart="${name}"] tbody tr`)]
    .map(row => ({key: row.dataset.key, value: row.dataset.value, cells: [...row.cells].map(cell => cell.textContent)}))"""
CHART_DATA = """id => echarts.getInstanceByDom(document.getElementById(id)).getOption().series
    .map(series => ({name: series.name, data: series.data}))"""


async def test_weekly_exports_carry_the_scenario(published, reporting_url, api_key):
    async with httpx.AsyncClient(base_url=reporting_url, headers={"X-API-Key": api_key}, timeout=60) as client:
        response = await client.get("/v1/exports/weekly.xlsx", params={"at": WEEK_DAY, "source": SOURCE})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith(
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
        disposition = response.headers["content-disposition"]
        assert 'filename="weekly-report-2026-10-12.xlsx"' in disposition
        assert unquote(disposition.split("filename*=UTF-8''")[1]) == "示范街道每周一会商报告（2026年第42周）.xlsx"

        workbook = load_workbook(BytesIO(response.content))
        key = [row for row in workbook["关键指标"].iter_rows(values_only=True)]
        assert key[0][0] == "示范街道每周一会商报告（2026年第42周）"
        assert ("响应率", 0.8, 1.0, -0.2, "变差") in key
        assert ("新增工单", 5, 1, 4, None) in key
        assert ("办结", 3, 1, 2, None) in key
        trend = {row[0]: row for row in workbook["周趋势"].iter_rows(min_row=5, values_only=True)}
        assert trend["2026年第42周"][3] == 5 and trend["2026年第41周"][3] == 1
        overdue = list(workbook["超期工单"].iter_rows(min_row=5, values_only=True))
        assert [row[2] for row in overdue] == ["西溪村扬尘（A2）", "南塘村秸秆焚烧（A3）"]
        assert [row[7] for row in overdue] == ["2026-10-14 17:30", "2026-10-16 17:30"], "deadlines in local time"
        definitions = {row[0]: row for row in workbook["指标口径"].iter_rows(min_row=5, values_only=True)}
        assert definitions["响应率"][1:3] == ("按期签收数", "应签收数") and "应办结" in definitions["超期率"][3]
        assert workbook["超期工单"]["A1"].value == "超期未办结工单（共 2 件）"
        recurring = list(workbook["重复反弹"].iter_rows(min_row=5, values_only=True))
        assert [(row[2], row[5], row[6]) for row in recurring] == [("西溪村扬尘（A1）", 1, 0)]
        boards = [(row[0], row[1], row[3], row[5]) for row in workbook["红黑榜"].iter_rows(min_row=5, values_only=True)]
        assert ("村", "红榜", "西溪村", 1.0) in boards and ("村", "黑榜", "南塘村", 0.0) in boards
        assert ("站所", "红榜", "劳动保障所", 1.0) in boards and ("社区", "红榜", "星河社区", 1.0) in boards

        page = await client.get("/v1/exports/weekly.html", params={"at": WEEK_DAY, "source": SOURCE})
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "<title>示范街道每周一会商报告（2026年第42周）</title>" in page.text
        assert '<td class="number">80.0%</td>' in page.text and "-20.0 个百分点" in page.text
        assert "西溪村扬尘（A2）" in page.text and "@media print" in page.text
        assert '<td class="due">2026-10-14 17:30</td>' in page.text, "the deadline in local time"


async def test_quarterly_assessment_ranks_the_units_of_the_scenario(published, reporting_url, api_key):
    async with httpx.AsyncClient(base_url=reporting_url, headers={"X-API-Key": api_key}, timeout=60) as client:
        response = await client.get("/v1/exports/quarterly.xlsx", params={"at": WEEK_DAY, "source": SOURCE})
    assert response.status_code == 200, response.text
    assert "filename*=UTF-8''" in response.headers["content-disposition"]
    assert unquote(response.headers["content-disposition"].split("''")[1]) == "示范街道2026年第4季度考核表.xlsx"
    workbook = load_workbook(BytesIO(response.content))
    assert workbook.sheetnames == ["科室", "站所", "村", "社区", "全街道", "指标口径"]
    villages = workbook["村"]
    assert villages["A1"].value == "示范街道2026年第4季度考核表（村）"
    header = next(villages.iter_rows(min_row=4, max_row=4, values_only=True))
    rows = {row[1]: row for row in villages.iter_rows(min_row=5, values_only=True)}
    assert set(rows) == {"西溪村", "南塘村"}
    response_rate = header.index("响应率")
    # 西溪村: P1, A1, A2 created and signed in time, P1 and A1 resolved; 南塘村: A3 never signed (missed Wed).
    assert rows["西溪村"][:4] == (1, "西溪村", 3, 2)
    assert rows["西溪村"][response_rate:response_rate + 2] == (1.0, 1)
    assert rows["南塘村"][:4] == (2, "南塘村", 1, 0)
    assert rows["南塘村"][response_rate:response_rate + 2] == (0.0, 2)
    stations = {row[1]: row for row in workbook["站所"].iter_rows(min_row=5, values_only=True)}
    assert stations["劳动保障所"][:4] == (1, "劳动保障所", 1, 1)


async def test_exports_are_for_those_who_may_compare_units(published, reporting_url, mongo, api_key):
    unit_key = await create_key(mongo, "西溪村-dashboard-test", Role.unit, unit="xixi")
    async with httpx.AsyncClient(base_url=reporting_url, timeout=30) as client:
        refused = await client.get("/v1/exports/weekly.xlsx", headers={"X-API-Key": unit_key})
        anonymous = await client.get("/v1/exports/quarterly.xlsx")
        unknown_figure = await client.get("/v1/exports/weekly.html", params={"rank_by": "happiness"},
                                          headers={"X-API-Key": api_key})
        page = await client.get("/dashboard")
        echarts = await client.get("/dashboard/static/vendor/echarts.min.js")
        unknown = await client.get("/dashboard/static/dashboard.py")
    assert refused.status_code == 403 and "无权" in refused.json()["detail"]
    assert anonymous.status_code == 401
    assert unknown_figure.status_code == 422 and "未知指标" in unknown_figure.json()["detail"]
    assert page.status_code == 200 and "示范街道基层治理事件中心" in page.text  # the page holds no data
    assert 'data-timezone="Asia/Shanghai"' in page.text, "the page shows times in the district's zone"
    assert echarts.status_code == 200 and "echarts" in echarts.text[:2000].lower()
    assert unknown.status_code == 404


# Last: it publishes one more ticket (A6) into the scenario's week, which the exports above do not count.
@needs_chromium
async def test_the_dashboard_draws_the_scenario_and_refreshes_in_place(published, reporting_url, api_key, stack,
                                                                       mongo):
    from playwright.async_api import async_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    query = f"period=week&at={WEEK_DAY}&source={SOURCE}&refresh=5"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        context = await browser.new_context(viewport={"width": 1600, "height": 1250}, locale="zh-CN",
                                            timezone_id="Europe/London")
        page, errors = await watched_page(context)  # the page runs under its Content-Security-Policy
        try:
            # Without a key: a clear prompt in Chinese, and no data.
            served = await page.goto(f"{reporting_url}/dashboard?{query}")
            assert "script-src 'self';" in served.headers["content-security-policy"]
            prompt = page.locator("#key-prompt")
            await prompt.wait_for(state="visible")
            assert "请输入 API 密钥" in await prompt.inner_text()
            assert await page.title() == "示范街道基层治理事件中心 · 数据驾驶舱"

            # A wrong key is refused with a Chinese message; the right one, handed over in the fragment, is taken
            # out of the address bar and kept in the tab's session only.
            await page.fill("#key-input", "cbk_wrong")
            await page.click("#key-form button[type=submit]")
            await page.wait_for_function("() => document.getElementById('key-message').textContent.includes('无效')")
            await page.goto(f"{reporting_url}/dashboard?{query}#key={api_key}")
            await page.wait_for_function("() => Number(document.body.dataset.loads) >= 1")
            assert api_key not in page.url
            assert await page.evaluate("sessionStorage.getItem('civicbus.apiKey')") == api_key
            assert await page.locator("#key-prompt").is_hidden()
            assert await page.locator("#period-label").inner_text() == "2026年第42周（2026-10-12 至 2026-10-18）"

            # Key figures.
            assert await page.get_attribute('.kpi[data-code="created"]', "data-value") == "5"
            assert await page.get_attribute('.kpi[data-code="resolved"]', "data-value") == "3"
            assert await page.get_attribute('.kpi[data-code="overdue_open"]', "data-value") == "2"
            response = page.locator('.kpi[data-code="response_rate"]')
            assert await response.get_attribute("data-value") == "0.8"
            assert "80.0%" in await response.inner_text()
            assert "较上期↓20.0个百分点" in await response.inner_text()
            assert "应签收" in await response.get_attribute("title"), "the 口径 as the figure's tooltip"
            shown = await page.locator("#status").inner_text()
            now = datetime.now(SHANGHAI)
            assert any(f"数据更新于 {moment:%H:%M}" in shown for moment in (now, now - timedelta(minutes=1))), \
                f"the district's time, not London's: {shown}"

            # Rankings (响应率): the three units that signed everything in time, then 南塘村 with none.
            ranking = await page.evaluate(CHART_ROWS, "rankings")
            assert [row["key"] for row in ranking] == ["laobao", "xinghe", "xixi", "nantang"]
            assert [row["value"] for row in ranking] == ["1", "1", "1", "0"]
            series = await page.evaluate(CHART_DATA, "chart-rankings")
            assert series[0]["data"] == [100, 100, 100, 0]

            # Trend: this week's days against last week's.
            trend = await page.evaluate(CHART_DATA, "chart-trend")
            assert trend[0] == {"name": "本期新增", "data": [1, 1, 1, 1, 1, 0, 0]}
            assert trend[1] == {"name": "上期新增", "data": [0, 0, 0, 0, 1, 0, 0]}
            assert trend[2] == {"name": "本期办结", "data": [0, 1, 0, 1, 1, 0, 0]}

            # Categories (root) and villages/communities on the map.
            assert _chart_rows(await page.evaluate(CHART_ROWS, "categories")) == {"environment": "4", "labor": "1"}
            pie = await page.evaluate(CHART_DATA, "chart-categories")
            assert sorted(item["value"] for item in pie[0]["data"]) == [1, 4]
            areas = _chart_rows(await page.evaluate(CHART_ROWS, "areas"))
            assert len(areas) == 12  # every village and community of the configuration is on the map
            assert {key: value for key, value in areas.items() if value != "0"} == {
                "xixi": "2", "nantang": "2", "xinghe": "1"}
            map_data = {item["name"]: item["value"] for item in (await page.evaluate(CHART_DATA, "chart-areas"))[0]["data"]}
            assert map_data["西溪村"] == 2 and map_data["永丰村"] == 0

            # Overdue tickets, the longest overdue first.
            overdue = await page.locator("#overdue tbody tr").all_inner_texts()
            assert len(overdue) == 2
            assert "西溪村扬尘（A2）" in overdue[0] and "南塘村秸秆焚烧（A3）" in overdue[1]
            assert await page.locator("#overdue-total").inner_text() == "共 2 件"

            await page.wait_for_timeout(1500)  # the charts' entry animations
            await page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

            # One more ticket arrives: the page shows it at its next refresh, without reloading.
            await page.evaluate("window.notReloaded = true")
            loads = int(await page.get_attribute("body", "data-loads"))
            await publish_stories(stack, mongo, [LATE_ARRIVAL], "the late ticket")
            await page.wait_for_function(
                "() => document.querySelector('.kpi[data-code=\"created\"]').dataset.value === '6'", timeout=60_000)
            assert await page.evaluate("window.notReloaded") is True
            assert int(await page.get_attribute("body", "data-loads")) > loads
            areas = _chart_rows(await page.evaluate(CHART_ROWS, "areas"))
            assert areas["yongfeng"] == "1"

            # Another period from the buttons: the month holds the week before as well.
            await page.click('.periods button[data-period="month"]')
            await page.wait_for_function("() => document.body.dataset.period === '2026年10月'")
            assert await page.get_attribute('.kpi[data-code="created"]', "data-value") == "7"
            assert await page.evaluate("window.cspViolations") == []
            assert not errors, errors
        finally:
            await browser.close()
