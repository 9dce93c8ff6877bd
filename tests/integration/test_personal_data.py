"""Personal data (个人信息) through the running services: masked wherever it leaves for someone who may not see it
whole — robots, leaders' and auditors' reads, exports, the public Open311 feed, a refused body and the logs — found
by no search that would confirm it, and stored nowhere the README does not name.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from io import BytesIO
from xml.etree import ElementTree

import httpx
import pytest
from openpyxl import load_workbook

from civicbus.auth import Role, create_key

from .conftest import eventually

pytestmark = pytest.mark.integration

PHONE = "13800138000"
# The forms people write the same number in, an ID number of each generation, an e-mail and a name.
WRITTEN = "电话+86 138 0013 8000、138-0013-8000、１３８００１３８０００，身份证110101198512120016、110101851212001，" \
          "邮箱zhang.san@example.com，联系人张三丰"
RAW = ("13800138000", "0013 8000", "0013-8000", "００１３", "198512120016", "851212001", "zhang.san@", "张三丰")


def _raw_in(text: str) -> list[str]:
    return [raw for raw in RAW if raw in text]


@pytest.fixture(scope="module")
async def keys(mongo) -> dict[str, dict[str, str]]:
    async def key(role: Role, unit: str = "") -> dict[str, str]:
        return {"X-API-Key": await create_key(mongo, f"personal data {role} {unit}", role, unit)}

    return {"leader": await key(Role.leader), "auditor": await key(Role.auditor), "admin": await key(Role.admin),
            "system": await key(Role.system), "xixi": await key(Role.unit, "xixi")}


@pytest.fixture(scope="module")
async def views(mongo) -> dict[str, str]:
    """Two tickets in reporting's read model, led by 西溪村: one overdue, one repeated this week, personal data in
    their titles and contents."""
    marker = uuid.uuid4().hex[:8].upper()
    now = datetime.now(UTC)
    common = {"category": "environment.noise", "category_name": "生态环保/噪声污染", "lead_unit": "xixi",
              "assist_units": [], "area": "xixi", "area_name": "西溪村", "event_source": "personal-data-test",
              "created_at": now - timedelta(days=3), "caller_phone": PHONE}
    overdue, recurring = f"SF{marker}OVERDUE", f"SF{marker}REPEATS"
    await mongo["ticket_views"].insert_many([
        {**common, "_id": overdue, "ticket_id": overdue, "state": "acknowledged", "title": f"夜间噪声 {WRITTEN}",
         "content": f"反映人来电 {WRITTEN}", "resolve_due": now - timedelta(hours=5)},
        {**common, "_id": recurring, "ticket_id": recurring, "state": "routed", "title": f"广场舞噪声 {WRITTEN}",
         "content": "每晚扰民", "resolve_due": now + timedelta(days=3),
         "repeats": [{"event_id": f"{marker}-repeat", "at": now - timedelta(minutes=5)}]},
    ])
    return {"overdue": overdue, "recurring": recurring}


@pytest.mark.parametrize("role", ["leader", "auditor"])
async def test_leaders_and_auditors_read_overdue_recurring_and_exports_masked(services, keys, views, role):
    async with httpx.AsyncClient(base_url=services["reporting"].base_url, timeout=30, headers=keys[role]) as client:
        overdue = (await client.get("/v1/overdue", params={"area": "xixi"})).text
        recurring = (await client.get("/v1/recurring", params={"area": "xixi"})).text
        assert views["overdue"] in overdue and views["recurring"] in recurring
        assert "138****8000" in overdue and "138****8000" in recurring
        assert _raw_in(overdue) == [] and _raw_in(recurring) == []
        page = await client.get("/v1/exports/weekly.html")
        assert page.status_code == 200 and views["overdue"] in page.text and _raw_in(page.text) == []
        workbook = load_workbook(BytesIO((await client.get("/v1/exports/weekly.xlsx")).content))
        cells = "\n".join(str(cell) for sheet in workbook for row in sheet.iter_rows(values_only=True)
                          for cell in row if cell is not None)
        assert views["overdue"] in cells and views["recurring"] in cells and _raw_in(cells) == []
    # The unit that calls back still reads its ticket whole.
    async with httpx.AsyncClient(base_url=services["reporting"].base_url, timeout=30, headers=keys["xixi"]) as client:
        assert "138-0013-8000" in (await client.get("/v1/overdue", params={"area": "xixi"})).text


async def test_a_search_never_finds_what_the_reader_sees_masked(services, keys, views):
    async def found(who: str, q: str) -> list[str]:
        async with httpx.AsyncClient(base_url=services["reporting"].base_url, timeout=30, headers=keys[who]) as client:
            answer = (await client.get("/v1/tickets", params={"q": q, "source": "personal-data-test"})).json()
        assert answer["total"] == len(answer["items"])
        return sorted(item["ticket_id"] for item in answer["items"])

    assert await found("auditor", "0013-8000") == [], "the number is masked for an auditor: no search confirms it"
    assert await found("leader", "张三丰") == []
    assert await found("leader", "zhang.san@example.com") == []
    assert await found("leader", "夜间噪声") == [views["overdue"]], "what the leader sees is still found"
    assert await found("admin", "0013-8000") == sorted(views.values())
    assert await found("xixi", "0013-8000") == sorted(views.values()), "the lead unit calls back: it sees them"


async def test_robots_get_every_written_form_masked_and_nothing_keeps_the_phone_but_the_ticket(
        http, services, sink, mongo, keys):
    marker = uuid.uuid4().hex[:6]
    accepted = await http.post(f"{services['intake'].base_url}/v1/complaints", headers=keys["system"], json={
        "title": f"欠薪求助 {marker}", "caller_phone": PHONE, "caller_name": "张三丰",
        # No place named: nothing another test filed can take it as a 重复件.
        "content": f"我在装修工地干了两个月，老板拖欠工资不给，请帮忙讨薪。{WRITTEN}",
    })
    assert accepted.status_code == 202, accepted.text
    event_id = accepted.json()["event_id"]
    ticket = await eventually(lambda: mongo["tickets"].find_one({"source_event_id": event_id}), what="the ticket")
    assert ticket["caller_phone"] == PHONE

    async def delivered() -> list:
        return [item for item in sink.received
                if isinstance(item.body, dict) and item.body.get("ticket_id") == ticket["ticket_id"]]

    messages = await eventually(delivered, what="the robots' messages")
    assert all("138****8000" in str(message.body) for message in messages)
    assert _raw_in(str([message.body for message in messages])) == []

    lead = {"X-API-Key": await create_key(mongo, f"personal data {ticket['lead_unit']}", Role.unit, ticket["lead_unit"])}
    signed = await http.post(f"{services['intake'].base_url}/v1/tickets/{ticket['ticket_id']}/sign-for",
                             headers={**lead, "Command-Id": f"sign-{marker}"}, json={"note": "已签收"})
    assert signed.status_code in (200, 202), signed.text
    command_id = signed.json()["command_id"]
    record = await eventually(lambda: mongo["command_results"].find_one({"_id": command_id}),
                              what="the decision record")
    assert record["status"] == "applied"
    assert PHONE not in str(record), "a decision record keeps no caller_phone"
    snapshot = await eventually(lambda: mongo["notify_tickets"].find_one(
        {"_id": ticket["ticket_id"], "ticket.state": "acknowledged"}), what="notify's snapshot after the sign-for")
    assert PHONE not in str(snapshot), "notify keeps no caller_phone"
    after = await mongo["tickets"].find_one({"_id": ticket["_id"]})
    assert after["state"] == "acknowledged" and after["caller_phone"] == PHONE, "kept for the 回访 callback"
    view = await eventually(lambda: mongo["ticket_views"].find_one({"_id": ticket["_id"], "state": "acknowledged"}),
                            what="the view after the sign-for")
    assert view["caller_phone"] == PHONE, "the lead unit reads it for the callback"


async def test_the_public_open311_feed_shows_no_personal_data(services, mongo, keys):
    base = f"{services['intake'].base_url}/open311/v2"
    posted = await httpx.AsyncClient(timeout=30).post(f"{base}/requests.json", data={
        "api_key": keys["system"]["X-API-Key"], "service_code": "urban.roads",
        "address_string": f"星河社区 联系{PHONE}", "attribute[FACILITY]": "streetlight",
        "first_name": "三丰", "last_name": "张", "phone": PHONE, "email": "zhang.san@example.com",
        "media_url": "https://img.example.com/a.jpg?phone=%2B8613800138000&mail=zhang.san%40example.com",
        "description": f"路灯不亮，我是张三丰，{WRITTEN}",
    })
    assert posted.status_code == 201, posted.text
    request_id = posted.json()[0]["service_request_id"]
    # A request recorded before the policy knew every form, with a status note: masked as served as well.
    older = f"older-{uuid.uuid4().hex[:8]}"
    await mongo["open311_requests"].insert_one({
        "_id": older, "service_code": "urban.roads", "service_name": "道路设施", "description": WRITTEN,
        "address": f"星河社区 {WRITTEN}", "address_id": "", "zipcode": "", "lat": None, "long": None,
        "media_url": f"https://img.example.com/b.jpg?phone={PHONE}", "requested_datetime": datetime.now(UTC),
        "updated_datetime": datetime.now(UTC), "status": "open", "status_notes": f"已办结：{WRITTEN}",
        "agency_responsible": "", "service_notice": "", "expected_datetime": None, "published": True})
    async with httpx.AsyncClient(timeout=30) as anonymous:
        ids = {"service_request_id": f"{request_id},{older}"}
        as_json = await anonymous.get(f"{base}/requests.json", params=ids)
        as_xml = await anonymous.get(f"{base}/requests.xml", params=ids)
    assert len(as_json.json()) == 2 and len(ElementTree.fromstring(as_xml.content).findall("request")) == 2
    for text in (as_json.text, as_xml.text):
        assert _raw_in(text) == [] and "zhang.san%40" not in text and "%2B8613800138000" not in text
        assert "138****8000" in text and "张**" in text
    stored = await mongo["open311_requests"].find_one({"_id": request_id})
    assert _raw_in(str(stored)) == [] and "%2B8613800138000" not in str(stored), "nor is it stored"


class _Collected(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


async def test_a_lone_surrogate_is_refused_with_422_and_logged_nowhere_raw(services, keys):
    body = ('{"content": "\\ud800 ' + WRITTEN + '", "caller_phone": "' + PHONE + '"}').encode()
    collected = _Collected()
    loggers = [logging.getLogger(), logging.getLogger("uvicorn")]  # uvicorn's own loggers do not propagate
    for logger in loggers:
        logger.addHandler(collected)
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            answer = await client.post(f"{services['intake'].base_url}/v1/complaints", content=body,
                                       headers={**keys["system"], "Content-Type": "application/json"})
    finally:
        for logger in loggers:
            logger.removeHandler(collected)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"] and _raw_in(answer.text) == []
    assert _raw_in("\n".join(collected.lines)) == [], "neither our logs nor uvicorn's quote the input"
