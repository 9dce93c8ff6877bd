"""Every figure on a hand-checked scenario, through the real broker and store: lifecycle events with fixed times are
published to civic.tickets, the running reporting service projects them, and the reports must equal the figures
worked out by hand below. Then the read models are rebuilt from the topics (twice) and must give the same figures,
and unit keys must not read what is not theirs.

The scenario's events carry their own source (``SOURCE``), so filtering by it isolates them from the other tests'
tickets in the same topics and database.

Week 45 of 2026 (Mon 2 Nov – Sun 8 Nov), office hours 08:30–17:30, no holiday:

- T1 西溪村 扬尘, lead 西溪村: routed Mon 09:00, 2 repeats grouped Mon 12:00, signed Mon 10:00 (due Mon 17:30),
  resolved Tue 10:00 (due Wed 17:30; 10 working hours), callback Wed: resolved, 满意 → closed.
- T2 南塘村 秸秆焚烧, lead 南塘村: routed Mon 14:00, signed Mon 17:00 (due 16:00: late, before the sweep marked
  it), overdue Thu 17:31, resolved Fri 11:00 (due Thu 17:30: late — Thursday's; 33 working hours), callback Fri:
  not resolved, 不满意 → rework.
- T3 西溪村 欠薪, lead 劳动保障所, assisted by 西溪村: routed Tue 09:30, signed 11:30, resolved Wed 16:30
  (16 working hours), callback Thu: resolved, 基本满意 → closed; reopened Fri 10:00 (反弹).
- T4 南塘村 秸秆焚烧, routed to 西溪村 Wed 09:00, returned by 西溪村 Wed 11:00 (before its sign-for limit: not
  due for 西溪村) and routed on to 南塘村, signed Wed 14:00 (due 17:30), not resolved by its deadline Fri 17:30:
  marked overdue Fri 17:31, overdue now.
- T5 信访 without a place: manual Thu 10:00, reassigned to 应急办 Thu 11:00, not signed for by 17:30: marked
  overdue Thu 17:31 (its resolve limit, Thu 12 Nov, is next week's).
- T6 南塘村 欠薪 of 12,000 yuan, lead 劳动保障所: routed Fri 09:00, signed 09:30, resolved 16:00 (7 working hours)
  with all 12,000 recovered. (T3 involved 86,500 yuan, 60,000 recovered — but it was reopened, so it is not
  resolved any more and its recovery is not counted.)
- T0 (previous week) 西溪村 扬尘: routed Thu 29 Oct 09:00, signed 10:00 in time, resolve due Fri 30 Oct 17:30:
  marked overdue 17:31, overdue now.

"Now" is Mon 9 Nov 09:00.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from civicbus.auth import Role, create_key
from civicbus.district import load_district
from civicbus.events import (
    Callback,
    EventKind,
    Repeat,
    Satisfaction,
    TicketState,
)
from civicbus.settings import DEFAULT_CONFIG_DIR
from services.reporting.config import load_reporting_config
from services.reporting.rebuild import rebuild, replay
from services.reporting.report import Period, ReportFilter, Reports

from .conftest import eventually, start_service
from .ticket_stories import TicketStory, publish_stories

pytestmark = pytest.mark.integration
SHANGHAI = ZoneInfo("Asia/Shanghai")
SOURCE = f"handcheck.{uuid.uuid4().hex[:8]}"
ONLY = ReportFilter(source=SOURCE)
NOW = datetime(2026, 11, 9, 9, 0, tzinfo=SHANGHAI)
WEEK = Period.parse("week", date(2026, 11, 4))


def at(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=SHANGHAI)


class Story(TicketStory):
    names = {"xixi": "西溪村", "nantang": "南塘村"}

    def __init__(self, label: str, category: str, category_name: str, area: str, created: datetime,
                 **fields: Any) -> None:
        super().__init__(f"SF-{label}-{SOURCE}", SOURCE, created, title=f"{label} {category_name}",
                         content=f"{category_name}（核算场景 {label}）", category=category,
                         category_name=category_name, area=area, area_name=self.names.get(area, ""), **fields)


def scenario() -> list[Story]:
    dust, straw = ("environment.dust", "生态环保/扬尘"), ("environment.straw", "生态环保/秸秆焚烧")
    t0 = Story("T0", *dust, "xixi", at(29, 9, month=10), sign_for_due=at(29, 17, 30, month=10),
               resolve_due=at(30, 17, 30, month=10))
    t0.step(EventKind.ticket_routed, at(29, 9, month=10), lead_unit="xixi")
    t0.step(EventKind.ticket_acknowledged, at(29, 10, month=10), state=TicketState.acknowledged,
            acknowledged_at=at(29, 10, month=10))
    t0.step(EventKind.ticket_overdue, at(30, 17, 31, month=10), event={"deadline": "resolve"}, overdue=["resolve"])

    t1 = Story("T1", *dust, "xixi", at(2, 9), sign_for_due=at(2, 17, 30), resolve_due=at(4, 17, 30))
    t1.step(EventKind.ticket_routed, at(2, 9), lead_unit="xixi")
    t1.step(EventKind.ticket_acknowledged, at(2, 10), state=TicketState.acknowledged, acknowledged_at=at(2, 10))
    t1.step(EventKind.ticket_grouped, at(2, 12), event={"events_joined": 2}, event_count=3, last_event_at=at(2, 12),
            repeats=[Repeat(event_id=f"{SOURCE}-r1", at=at(2, 11)), Repeat(event_id=f"{SOURCE}-r2", at=at(2, 12))])
    t1.step(EventKind.ticket_resolved, at(3, 10), state=TicketState.resolved, resolved_at=at(3, 10))
    t1.step(EventKind.ticket_callback_recorded, at(4, 10), state=TicketState.closed, closed_at=at(4, 10),
            callback=Callback(resolved=True, satisfaction=Satisfaction.satisfied, at=at(4, 10)))

    t2 = Story("T2", *straw, "nantang", at(2, 14), sign_for_due=at(2, 16), resolve_due=at(5, 17, 30))
    t2.step(EventKind.ticket_routed, at(2, 14), lead_unit="nantang")
    t2.step(EventKind.ticket_acknowledged, at(2, 17), state=TicketState.acknowledged, acknowledged_at=at(2, 17))
    t2.step(EventKind.ticket_overdue, at(5, 17, 31), event={"deadline": "resolve"}, overdue=["resolve"])
    t2.step(EventKind.ticket_resolved, at(6, 11), state=TicketState.resolved, resolved_at=at(6, 11))
    t2.step(EventKind.ticket_callback_recorded, at(6, 15), state=TicketState.acknowledged, resolved_at=None,
            resolve_due=at(13, 17, 30), rework_count=1,
            callback=Callback(resolved=False, satisfaction=Satisfaction.dissatisfied, at=at(6, 15)))

    t3 = Story("T3", "labor.wage_arrears", "劳资纠纷/欠薪", "xixi", at(3, 9, 30), sign_for_due=at(3, 17, 30),
               resolve_due=at(10, 17, 30), amount_involved=86500.0)
    t3.step(EventKind.ticket_routed, at(3, 9, 30), lead_unit="laobao", assist_units=["xixi"])
    t3.step(EventKind.ticket_acknowledged, at(3, 11, 30), state=TicketState.acknowledged,
            acknowledged_at=at(3, 11, 30))
    t3.step(EventKind.ticket_resolved, at(4, 16, 30), state=TicketState.resolved, resolved_at=at(4, 16, 30),
            amount_recovered=60000.0)
    t3.step(EventKind.ticket_callback_recorded, at(5, 9), state=TicketState.closed, closed_at=at(5, 9),
            callback=Callback(resolved=True, satisfaction=Satisfaction.basically_satisfied, at=at(5, 9)))
    t3.step(EventKind.ticket_reopened, at(6, 10), state=TicketState.routed, reopen_count=1, acknowledged_at=None,
            resolved_at=None, closed_at=None, resolve_due=at(13, 17, 30))

    t6 = Story("T6", "labor.wage_arrears", "劳资纠纷/欠薪", "nantang", at(6, 9), sign_for_due=at(6, 17, 30),
               resolve_due=at(13, 17, 30), amount_involved=12000.0)
    t6.step(EventKind.ticket_routed, at(6, 9), lead_unit="laobao")
    t6.step(EventKind.ticket_acknowledged, at(6, 9, 30), state=TicketState.acknowledged,
            acknowledged_at=at(6, 9, 30))
    t6.step(EventKind.ticket_resolved, at(6, 16), state=TicketState.resolved, resolved_at=at(6, 16),
            amount_recovered=12000.0)

    t4 = Story("T4", *straw, "nantang", at(4, 9), sign_for_due=at(4, 17, 30), resolve_due=at(6, 17, 30),
               caller_phone="13800004444")
    t4.step(EventKind.ticket_routed, at(4, 9), lead_unit="xixi")
    t4.step(EventKind.ticket_returned, at(4, 11), lead_unit="nantang", returned_by=["xixi"])
    t4.step(EventKind.ticket_acknowledged, at(4, 14), state=TicketState.acknowledged, acknowledged_at=at(4, 14))
    t4.step(EventKind.ticket_overdue, at(6, 17, 31), event={"deadline": "resolve"}, overdue=["resolve"])

    t5 = Story("T5", "petition.visit", "信访维稳/越级上访", "", at(5, 10), sign_for_due=at(5, 17, 30),
               resolve_due=at(12, 17, 30))
    t5.step(EventKind.ticket_manual, at(5, 10), state=TicketState.manual)
    t5.step(EventKind.ticket_reassigned, at(5, 11), state=TicketState.routed, lead_unit="yingji")
    t5.step(EventKind.ticket_overdue, at(5, 17, 31), event={"deadline": "sign_for"}, overdue=["sign_for"])
    return [t0, t1, t2, t3, t4, t5, t6]


STORIES = scenario()
BY_LABEL = {story.id.split("-")[1]: story for story in STORIES}


@pytest.fixture(scope="module")
async def published(stack, services, mongo) -> list[Story]:
    await publish_stories(stack, mongo, STORIES, "the scenario's events")
    return STORIES


@pytest.fixture(scope="module")
def reports(mongo) -> Reports:
    return Reports(mongo, load_district(DEFAULT_CONFIG_DIR), load_reporting_config(DEFAULT_CONFIG_DIR),
                   now=lambda: NOW)


def figures(body: dict[str, Any]) -> dict[str, Any]:
    return {item["code"]: item["value"] for item in body["figures"]}


async def test_every_figure_of_the_week_as_worked_out_by_hand(published, reports):
    body = await reports.summary(WEEK, ONLY)
    assert body["period"] == {"kind": "week", "since": "2026-11-02", "until": "2026-11-08", "label": "2026年第45周"}
    assert body["previous"]["label"] == "2026年第44周"
    counts = body["counts"]
    assert {name: counts[name] for name in (
        "created", "manual", "routed", "returned", "assisted", "repeats", "acknowledged", "acknowledged_in_time",
        "overdue_sign_for", "due_sign_for", "resolved", "resolved_in_time", "overdue_resolve", "resolved_late",
        "due_resolve", "resolved_of_due", "callbacks", "callback_resolved", "callback_rated", "satisfied",
        "basically_satisfied", "dissatisfied", "closed", "reopened")} == {
        "created": 6, "manual": 1, "routed": 7, "returned": 1, "assisted": 1, "repeats": 2, "acknowledged": 5,
        "acknowledged_in_time": 4, "overdue_sign_for": 2, "due_sign_for": 6, "resolved": 4, "resolved_in_time": 3,
        "overdue_resolve": 2, "resolved_late": 1, "due_resolve": 5, "resolved_of_due": 4, "callbacks": 3,
        "callback_resolved": 2, "callback_rated": 3, "satisfied": 1, "basically_satisfied": 1, "dissatisfied": 1,
        "closed": 2, "reopened": 1}
    assert figures(body) == {
        # 应签收 6: T1, T3, T4 (南塘村), T6 signed in time; T2 signed late, T5 not signed by its limit. T4's routing
        # to 西溪村, returned before its limit, was never due.
        "response_rate": 0.6667,  # 4 ÷ 6
        # 应办结 5: T1, T3, T6 resolved in time; T2 (due Thu, resolved late Fri) and T4 (due Fri, open) missed.
        "closure_rate": 0.8,  # T1, T3, T6, T2 ÷ 5
        "on_time_closure_rate": 0.6,  # T1, T3, T6 ÷ 5
        "resolution_rate": 0.6667,  # T1, T3 ÷ 3 callbacks
        "satisfaction_rate": 0.6,  # (1 × 满意 + 0.8 × 基本满意 + 0 × 不满意) ÷ 3, weights of reporting.yaml
        "overdue_rate": 0.4,  # T2, T4 ÷ 5
        "return_rate": 0.1429,  # 1 ÷ 7 routings
        "recurrence_rate": 0.5,  # T3 reopened ÷ 2 closed
        "median_handling_hours": 13.0,  # 7, 10, 16, 33 working hours
        "p90_handling_hours": 27.9,  # 16 + 0.7 × (33 − 16)
    }
    previous = {item["code"]: (item["previous"], item["change"]) for item in body["figures"]}
    assert previous["response_rate"] == (1.0, -0.3333)  # T0 signed in time
    assert previous["closure_rate"] == (0.0, 0.8)  # T0's limit, Fri 30 Oct, passed unresolved
    assert previous["satisfaction_rate"] == (None, None)
    assert body["amounts"] == {"tickets": 2, "involved": 98500.0, "resolved_tickets": 1, "recovered": 12000.0}
    assert body["previous_amounts"] == {"tickets": 0, "involved": 0, "resolved_tickets": 0, "recovered": 0}


async def test_filters_combine(published, reports):
    straw = await reports.summary(WEEK, ReportFilter(source=SOURCE, category="environment.straw"))
    assert (straw["counts"]["routed"], straw["counts"]["due_sign_for"]) == (3, 2)  # T2; T4 to 西溪村, then 南塘村
    assert figures(straw)["response_rate"] == 0.5  # T4 in time, T2 late
    environment = await reports.summary(WEEK, ReportFilter(source=SOURCE, category="environment", area="nantang"))
    assert environment["counts"]["due_resolve"] == 2 and figures(environment)["closure_rate"] == 0.5  # T2 of T2, T4
    laobao = await reports.summary(WEEK, ReportFilter(source=SOURCE, unit="laobao"))
    assert figures(laobao) == {
        "response_rate": 1.0, "closure_rate": 1.0, "on_time_closure_rate": 1.0, "resolution_rate": 1.0,
        "satisfaction_rate": 0.8, "overdue_rate": 0.0, "return_rate": 0.0, "recurrence_rate": 1.0,
        "median_handling_hours": 11.5, "p90_handling_hours": 15.1}  # T6 in 7 h, T3 in 16 h
    wages = await reports.summary(WEEK, ReportFilter(source=SOURCE, category="labor.wage_arrears", area="nantang"))
    assert wages["amounts"] == {"tickets": 1, "involved": 12000.0, "resolved_tickets": 1, "recovered": 12000.0}
    nothing = await reports.summary(WEEK, ReportFilter(source=f"{SOURCE}.other"))
    assert figures(nothing)["response_rate"] is None and nothing["counts"]["created"] == 0


async def test_rankings_between_peers(published, reports):
    units = await reports.rankings("unit", WEEK, ONLY, rank_by="response_rate")
    assert [(item["rank"], item["key"], item["value"]) for item in units["items"]] == [
        (1, "laobao", 1.0), (2, "xixi", 1.0), (3, "nantang", 0.5), (4, "yingji", 0.0)]
    xixi = units["items"][1]["counts"]
    assert (xixi["routed"], xixi["due_sign_for"]) == (2, 1), "T4, returned before its limit, is not due for 西溪村"
    assert units["items"][1]["name"] == "西溪村" and units["items"][1]["counts"]["returned"] == 1
    villages = await reports.rankings("unit", WEEK, ONLY, kind="village", rank_by="response_rate")
    assert [item["key"] for item in villages["items"]] == ["xixi", "nantang"]
    areas = await reports.rankings("area", WEEK, ONLY, rank_by="closure_rate")
    assert [(item["key"], item["value"]) for item in areas["items"]] == [("xixi", 1.0), ("nantang", 0.6667)]
    categories = await reports.rankings("category", WEEK, ONLY, rank_by="response_rate")
    assert [(item["key"], item["name"], item["value"]) for item in categories["items"]] == [
        ("labor", "劳资纠纷", 1.0), ("environment", "生态环保", 0.6667), ("petition", "信访维稳", 0.0)]
    slowest = await reports.rankings("unit", WEEK, ONLY, rank_by="median_handling_hours")
    assert [(item["key"], item["value"]) for item in slowest["items"]] == [
        ("xixi", 10.0), ("laobao", 11.5), ("nantang", 33.0)]


async def test_trend_overdue_and_recurring(published, reports):
    trend = await reports.trend("day", 3, date(2026, 11, 4), ONLY)
    assert [(point["since"], point["counts"]["created"]) for point in trend["points"]] == [
        ("2026-11-02", 2), ("2026-11-03", 1), ("2026-11-04", 1)]
    weekly = await reports.trend("week", 2, date(2026, 11, 4), ONLY)
    assert [point["figures"]["response_rate"] for point in weekly["points"]] == [1.0, 0.6667]
    overdue = await reports.overdue(ONLY)
    assert [(item["ticket_id"], item["overdue_hours"], item["state_name"]) for item in overdue["items"]] == [
        (BY_LABEL["T0"].id, 231.5, "办理中"), (BY_LABEL["T4"].id, 63.5, "办理中")]
    assert overdue["items"][1]["lead_unit_name"] == "南塘村"
    recurring = await reports.recurring(WEEK, ONLY)
    assert [(item["ticket_id"], item["repeats"], item["reopened"]) for item in recurring["items"]] == [
        (BY_LABEL["T1"].id, 2, 0), (BY_LABEL["T3"].id, 0, 1)]


async def test_a_unit_key_reads_only_its_own(published, services, mongo):
    base = services["reporting"].base_url

    async def key(role: Role, unit: str = "") -> dict[str, str]:
        return {"X-API-Key": await create_key(mongo, f"handcheck {role} {unit}", role, unit)}

    nantang, xixi = await key(Role.unit, "nantang"), await key(Role.unit, "xixi")
    auditor, system, nowhere = await key(Role.auditor), await key(Role.system), await key(Role.unit)
    week = {"period": "week", "at": "2026-11-04", "source": SOURCE}
    async with httpx.AsyncClient(base_url=base, timeout=15) as client:
        assert (await client.get(f"/v1/tickets/{BY_LABEL['T3'].id}", headers=nantang)).status_code == 404
        assert (await client.get(f"/v1/tickets/{BY_LABEL['T3'].id}", headers=xixi)).status_code == 200, "assisting"
        own = await client.get(f"/v1/tickets/{BY_LABEL['T4'].id}", headers=nantang)
        assert own.status_code == 200 and [entry["kind"] for entry in own.json()["timeline"]] == [
            "ticket.routed", "ticket.returned", "ticket.acknowledged", "ticket.overdue"]
        listing = (await client.get("/v1/tickets", params={"source": SOURCE}, headers=nantang)).json()
        assert {item["ticket_id"] for item in listing["items"]} == {BY_LABEL["T2"].id, BY_LABEL["T4"].id}
        assisted = (await client.get("/v1/tickets", params={"source": SOURCE, "category": "labor"},
                                     headers=xixi)).json()
        assert [item["ticket_id"] for item in assisted["items"]] == [BY_LABEL["T3"].id], "led by 劳动保障所, assisted"
        refused = await client.get("/v1/summary", params={**week, "unit": "xixi"}, headers=nantang)
        assert refused.status_code == 403 and "其他单位" in refused.json()["detail"]
        mine = (await client.get("/v1/summary", params=week, headers=nantang)).json()
        assert mine["filters"]["unit"] == "nantang" and mine["counts"]["routed"] == 2
        ranked = (await client.get("/v1/rankings/unit", params=week, headers=nantang)).json()
        assert [(item["rank"], item["key"]) for item in ranked["items"]] == [(3, "nantang")]
        assert (await client.get("/v1/overdue", params={"source": SOURCE}, headers=xixi)).json()["items"][0][
            "ticket_id"] == BY_LABEL["T0"].id
        recurring = (await client.get("/v1/recurring", params=week, headers=xixi)).json()
        assert BY_LABEL["T3"].id in [item["ticket_id"] for item in recurring["items"]], "assisted by 西溪村"
        assert (await client.get("/v1/summary", params=week, headers=auditor)).status_code == 200
        backwards = await client.get("/v1/summary", params={"period": "custom", "since": "2026-11-08",
                                                            "until": "2026-11-02"}, headers=auditor)
        assert backwards.status_code == 422 and backwards.json()["detail"], "a period the reports cannot answer"
        unknown = await client.get("/v1/rankings/unit", params={**week, "rank_by": "nothing"}, headers=auditor)
        assert unknown.status_code == 422 and "未知指标" in unknown.json()["detail"]
        assert own.json()["caller_phone"] == "13800004444", "the lead unit calls back: it sees the number whole"
        audited = await client.get(f"/v1/tickets/{BY_LABEL['T4'].id}", headers=auditor)
        assert audited.json()["caller_phone"] == "138****4444", "an auditor reads personal data masked"
        audited_list = (await client.get("/v1/tickets", params={"source": SOURCE}, headers=auditor)).json()
        assert "13800004444" not in str(audited_list) and "138****4444" in str(audited_list)
        assert (await client.get("/v1/summary", params=week, headers=system)).status_code == 403
        assert (await client.get("/v1/tickets", headers=nowhere)).status_code == 403, "a unit key without its unit"
        openapi = (await client.get("/openapi.json")).json()
        assert "example" in openapi["paths"]["/v1/summary"]["get"]["responses"]["200"]["content"]["application/json"]


async def _snapshot(reports: Reports) -> list[Any]:
    return [await reports.summary(WEEK, ONLY), await reports.summary(WEEK.previous(), ONLY),
            *[await reports.rankings(scope, WEEK, ONLY) for scope in ("unit", "area", "category")],
            await reports.trend("day", 14, date(2026, 11, 8), ONLY), await reports.overdue(ONLY),
            await reports.recurring(WEEK, ONLY)]


async def _documents(db) -> dict[str, list[dict]]:
    return {name: sorted(await db[name].find({}).to_list(None), key=lambda document: document["_id"])
            for name in ("ticket_views", "ticket_notifications", "report_counters", "ticket_facts")}


async def test_rebuilt_from_the_topics_gives_the_same_figures_and_a_second_replay_changes_nothing(
        published, reports, stack, mongo):
    settings = stack.settings("reporting")
    other = mongo.client[f"{stack.db_name}_rebuilt"]
    try:
        await other["report_counters"].insert_one({"_id": "stale", "day": "2026-11-02", "created": ["x:99"]})
        result = await rebuild(settings, other, "Asia/Shanghai")
        assert result.read["civic.tickets"] >= sum(len(story.events) for story in STORIES)
        rebuilt = Reports(other, reports.district, load_reporting_config(DEFAULT_CONFIG_DIR), now=lambda: NOW)
        assert await _snapshot(rebuilt) == await _snapshot(reports)
        assert await other["report_counters"].find_one({"_id": "stale"}) is None, "the read models were cleared"
        first = await _documents(other)
        await replay(settings, other, "Asia/Shanghai")
        assert await _documents(other) == first, "replaying the same events again changed nothing"
    finally:
        await mongo.client.drop_database(other.name)


async def test_new_satisfaction_weights_apply_without_a_restart(stack, tmp_path):
    folder = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, folder, ignore=shutil.ignore_patterns("training"))
    reporting = await start_service(stack, "reporting", config_dir=folder)
    try:
        reports: Reports = reporting.app.state.reports
        basically = {"basically_satisfied": 1, "callback_rated": 1}

        def satisfaction() -> float | None:
            return reports.book.values(basically, [])["satisfaction_rate"]

        assert satisfaction() == 0.8
        weights = folder / "reporting.yaml"
        await asyncio.sleep(1.1)  # a new modification time
        weights.write_text(weights.read_text(encoding="utf-8").replace("basically_satisfied: 0.8",
                                                                       "basically_satisfied: 0.6"), encoding="utf-8")
        await eventually(lambda: asyncio.sleep(0, result=satisfaction() == 0.6), timeout=20,
                         what="the new weights in force")
    finally:
        await reporting.stop()
