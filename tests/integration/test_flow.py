"""The thin flow end to end, real all the way: HTTP → intake → Kafka → triage → Kafka → notify (webhook to a real
local receiver) and reporting (MongoDB) → the reporting API."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from civicbus.mongo import counter_value
from services.reporting.projections import counter_id

from .conftest import eventually, local_day

pytestmark = pytest.mark.integration


async def _ticket_for(http, services, event_id: str) -> dict:
    reporting = services["reporting"].base_url

    async def find() -> dict | None:
        listing = (await http.get(f"{reporting}/v1/tickets", params={"limit": 500})).json()
        for item in listing["items"]:
            if item["source_event_id"] == event_id:
                return (await http.get(f"{reporting}/v1/tickets/{item['ticket_id']}")).json()
        return None

    return await eventually(find, what=f"the ticket of event {event_id}")


async def _post(http, services, kind: str, body: dict, **headers: str) -> dict:
    response = await http.post(f"{services['intake'].base_url}/v1/{kind}", json=body, headers=headers)
    assert response.status_code == 202, response.text
    return response.json()


async def test_complaint_is_routed_notified_and_counted(http, services, sink, mongo):
    external = f"12345-{uuid.uuid4().hex[:6]}"
    accepted = await _post(http, services, "complaints", {
        "external_id": external,
        "title": "欠薪求助",
        "content": "我在南塘老街的装修工地干了两个月，老板拖欠工资不给，请帮忙讨薪。联系电话13912345678",
        "caller_phone": "13912345678",
    })
    ticket = await _ticket_for(http, services, accepted["event_id"])

    assert ticket["category"] == "labor.wage_arrears"
    assert ticket["lead_unit"] == "laobao"
    assert ticket["area"] == "nantang", "located by the address text (南塘老街)"
    assert ticket["state"] == "routed"
    assert ticket["external_id"] == external
    assert ticket["explanation"]["route_path"][-1].startswith("劳资纠纷")
    assert "拖欠工资" in ticket["explanation"]["category"]["keywords"]
    assert ticket["sign_for_due"] < ticket["resolve_due"]
    assert [step["kind"] for step in ticket["timeline"]] == ["ticket.routed"]

    # The unit's robot got the message, in Chinese, with the caller's number masked.
    async def delivered() -> list:
        return [item for item in sink.to("/robot/laobao") if item.body["ticket_id"] == ticket["ticket_id"]]

    (message,) = await eventually(delivered, what="the webhook message to 劳动保障所")
    assert "【示范街道·新工单】" in message.body["text"]
    assert "劳资纠纷" in message.body["text"]
    assert "13912345678" not in message.body["text"] and "139****5678" in message.body["text"]
    assert message.headers["idempotency-key"] == message.body["notification_id"]

    # Reporting recorded the delivery on the ticket, and counted the ticket for the unit and the area.
    async def notified() -> dict | None:
        view = await _ticket_for(http, services, accepted["event_id"])
        return view if view["notifications"] else None

    view = await eventually(notified, what="the notification on the ticket view")
    assert view["notifications"][0]["status"] == "delivered"
    day = local_day(ticket["created_at"])
    routed_token = f"{ticket['timeline'][0]['event_id']}:1"
    shares = await mongo["report_counters"].find({"day": day, "unit": "laobao", "area": "nantang",
                                                  "category": ticket["category"],
                                                  "source": ticket["event_source"]}).to_list(None)
    (counted,) = [share["_id"] for share in shares if routed_token in share.get("routed", [])]
    assert counted.startswith(counter_id(day, "laobao", "nantang", ticket["category"], ticket["event_source"], "t")), \
        "the routed event is counted once, for the lead unit in its area, in its tickets partition's share"
    laobao_cells = await mongo["report_counters"].find({"day": day, "unit": "laobao"}).to_list(None)
    summary = (await http.get(f"{services['reporting'].base_url}/v1/summary",
                              params={"unit": "laobao", "period": "day", "at": day})).json()
    assert summary["counts"]["routed"] == sum(counter_value(item, "routed") for item in laobao_cells) >= 1
    by_area = (await http.get(f"{services['reporting'].base_url}/v1/summary",
                              params={"area": "nantang", "period": "day", "at": day})).json()
    assert by_area["counts"]["routed"] >= 1


async def test_alarm_located_by_gcj02_coordinates_goes_to_its_community(http, services, sink, district):
    import eviltransform

    area = next(area for area in district.areas if area.unit.id == "xinghe")
    point = area.geometry.representative_point()
    gcj_lat, gcj_lon = eviltransform.wgs2gcj(point.y, point.x)
    accepted = await _post(http, services, "alarms", {
        "title": "烟感报警",
        "content": "烟感探测器报警：星河湾5幢",
        "severity": "high",
        "device_id": f"SMK-{uuid.uuid4().hex[:6]}",
        "alarm_type": "smoke",
        "location": {"lat": gcj_lat, "lon": gcj_lon, "crs": "gcj02"},
    })
    ticket = await _ticket_for(http, services, accepted["event_id"])
    assert (ticket["category"], ticket["area"], ticket["lead_unit"]) == ("safety.fire", "xinghe", "xinghe")
    assert "xiaofang" in ticket["assist_units"]
    assert ticket["deadline_policy"] == "alarm"
    assert ticket["explanation"]["location"]["method"] == "polygon"

    async def both_told() -> bool:
        tickets = lambda path: {item.body["ticket_id"] for item in sink.to(path)}  # noqa: E731
        return ticket["ticket_id"] in tickets("/robot/xinghe") and ticket["ticket_id"] in tickets("/robot/xiaofang")

    await eventually(both_told, what="messages to the community (lead) and the fire station (assist)")


async def test_inspection_finding_is_routed_on_the_inspection_clock(http, services):
    accepted = await _post(http, services, "inspections", {
        "content": "企业消防通道被货物堵塞，灭火器过期",
        "inspection_type": "安全生产",
        "inspector": "网格员 张敏",
        "target": "示范五金制品有限公司",
        "address": "经开大道88号",
    })
    ticket = await _ticket_for(http, services, accepted["event_id"])
    assert ticket["category"].startswith("safety.")
    assert ticket["lead_unit"] == "yingji"
    assert ticket["deadline_policy"] == "inspection"
    assert ticket["area"] == "yuanqu"


async def test_unplaceable_complaint_goes_to_manual_dispatch_and_the_dispatcher_hears_of_it(http, services, sink):
    accepted = await _post(http, services, "complaints", {"content": "今天天气怎么样"})
    ticket = await _ticket_for(http, services, accepted["event_id"])
    assert ticket["state"] == "manual" and ticket["lead_unit"] == ""
    assert ticket["explanation"]["manual_reason"]

    async def dispatcher_told() -> list:
        return [item for item in sink.to("/robot/pingan") if item.body["ticket_id"] == ticket["ticket_id"]]

    (message,) = await eventually(dispatcher_told, what="the message to the dispatcher")
    assert "待人工派单" in message.body["text"]


async def test_a_retried_post_with_the_same_idempotency_key_makes_one_ticket(http, services, mongo):
    body = {"content": "东湖路金色家园门口占道经营，摊贩堵路", "external_id": f"retry-{uuid.uuid4().hex[:6]}"}
    key = uuid.uuid4().hex
    first = await _post(http, services, "complaints", body, **{"Idempotency-Key": key})
    second = await _post(http, services, "complaints", body, **{"Idempotency-Key": key})
    assert first["event_id"] == second["event_id"]
    ticket = await _ticket_for(http, services, first["event_id"])
    assert await mongo["tickets"].count_documents({"source_event_id": first["event_id"]}) == 1
    assert len(ticket["timeline"]) == 1


async def test_apis_require_a_key_but_health_and_metrics_do_not(services):
    import httpx

    async with httpx.AsyncClient() as anonymous:
        for name, service in services.items():
            assert (await anonymous.get(f"{service.base_url}/healthz")).status_code == 200
            ready = await anonymous.get(f"{service.base_url}/readyz")
            assert ready.status_code == 200 and ready.json()["checks"] == {"kafka": "ok", "mongo": "ok"}, name
            metrics = (await anonymous.get(f"{service.base_url}/metrics")).text
            assert "civicbus_events_consumed_total" in metrics
            if name == "triage":  # the sample lists 2027's 元旦 alone: ready, but the gap is said
                assert "2027" in ready.json()["notes"]["calendar"]
        refused = await anonymous.post(f"{services['intake'].base_url}/v1/complaints", json={"content": "x"})
        assert refused.status_code == 401
        assert "API 密钥" in refused.json()["detail"]
        wrong = await anonymous.get(f"{services['reporting'].base_url}/v1/tickets", headers={"X-API-Key": "cbk_wrong"})
        assert wrong.status_code == 401


async def test_invalid_submission_is_refused_with_the_field_named(http, services):
    response = await http.post(f"{services['intake'].base_url}/v1/alarms", json={"content": "烟感"})
    assert response.status_code == 422
    assert {"device_id", "alarm_type"} <= {error["loc"][-1] for error in response.json()["detail"]}


async def test_each_service_publishes_its_asyncapi_document(http, services):
    document = (await http.get(f"{services['triage'].base_url}/asyncapi.json")).json()
    assert document["asyncapi"].startswith("3.")
    assert any("civic.events" in channel.get("address", "") for channel in document["channels"].values())


async def test_a_batch_with_a_bad_item_accepts_the_rest_and_says_why_per_item(http, services, mongo):
    intake = services["intake"].base_url
    key = f"batch-{uuid.uuid4().hex[:6]}"
    items = [
        {"type": "complaint", "content": "茶山路垃圾堆放多日无人清运", "idempotency_key": key},
        {"type": "alarm", "content": "烟感"},  # no device_id, no alarm_type
        {"type": "inspection", "content": "河道排污口有污水直排", "inspection_type": "生态环保"},
        {"type": "weather", "content": "下雨"},
    ]
    response = await http.post(f"{intake}/v1/events/batch", json=items)
    assert response.status_code == 200
    answer = response.json()
    assert (answer["accepted"], answer["invalid"]) == (2, 2)
    assert [result["status"] for result in answer["results"]] == ["accepted", "invalid", "accepted", "invalid"]
    assert any("device_id" in error for error in answer["results"][1]["errors"])
    for result in (answer["results"][0], answer["results"][2]):
        await eventually(lambda r=result: mongo["tickets"].find_one({"source_event_id": r["event_id"]}),
                         what="a ticket for each accepted item")

    ndjson = "\n".join(__import__("json").dumps(item, ensure_ascii=False) for item in items[:1])
    again = await http.post(f"{intake}/v1/events/batch", content=ndjson.encode(),
                            headers={"Content-Type": "application/x-ndjson"})
    assert again.json()["results"][0]["event_id"] == answer["results"][0]["event_id"], "the same key, the same event"
    broken = await http.post(f"{intake}/v1/events/batch", content=b"[{", headers={"Content-Type": "application/json"})
    assert broken.status_code == 400 and "JSON" in broken.json()["detail"]


async def test_oversized_requests_are_refused_whether_announced_or_streamed(http, services):
    intake = services["intake"].base_url
    big = b"[" + b",".join([b'{"type": "complaint", "content": "' + "噪".encode() * 300 + b'"}'] * 1200) + b"]"
    assert len(big) > 1_000_000
    announced = await http.post(f"{intake}/v1/events/batch", content=big, headers={"Content-Type": "application/json"})
    assert announced.status_code == 413 and "请求过大" in announced.json()["detail"]

    async def chunks():
        for start in range(0, len(big), 65536):
            yield big[start : start + 65536]

    streamed = await http.post(f"{intake}/v1/events/batch", content=chunks(), headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413 and "请求过大" in streamed.json()["detail"]
    long_field = await http.post(f"{intake}/v1/complaints", json={"content": "长" * 6000})
    assert long_field.status_code == 422 and long_field.json()["detail"][0]["loc"][-1] == "content"


async def test_a_receiver_that_fails_at_first_gets_the_message_on_a_retry(http, services, sink, mongo):
    async def quiet() -> bool:  # the earlier tests' messages are out: the two failures must be this ticket's
        before = len(sink.received)
        await asyncio.sleep(1.0)
        return len(sink.received) == before

    await eventually(quiet, what="the earlier tests' messages to be sent")
    sink.fail_first = 2  # the next two webhook requests answer 503
    accepted = await _post(http, services, "complaints", {"content": "超市出售过期食品", "address": "新桥农贸市场"})
    ticket = await _ticket_for(http, services, accepted["event_id"])

    async def all_delivered() -> list | None:
        notes = await mongo["notifications"].find({"ticket_id": ticket["ticket_id"]}).to_list(None)
        return notes if notes and all(note["status"] == "delivered" for note in notes) else None

    notes = await eventually(all_delivered, what="every message delivered despite the failures")
    results = [attempt["result"] for note in notes for attempt in note["attempts"]]
    assert results.count("http_error") == 2 and results.count("ok") == len(notes)
    assert sink.fail_first == 0
