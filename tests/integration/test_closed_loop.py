"""The closed loop through the real broker and store: every transition and refusal by HTTP, idempotent commands,
re-routing after 退单, the timeline, and overdue events exactly once across two sweeper replicas."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from civicbus.auth import Role, create_key
from civicbus.events import TicketEvent
from services.triage.learned_cli import classifier_app
from services.triage.overdue import OverdueSweeper
from services.triage.store import TicketStore

from .conftest import eventually, local_day, read_topic

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def keys(mongo) -> dict[str, dict[str, str]]:
    async def key(name: str, role: Role, unit: str = "") -> dict[str, str]:
        return {"X-API-Key": await create_key(mongo, name, role, unit)}

    return {
        "laobao": await key("劳动保障所 张三", Role.unit, "laobao"),
        "sifa": await key("司法所 李四", Role.unit, "sifa"),
        "dispatcher": await key("综治中心 王五", Role.unit, "pingan"),
        "leader": await key("郑秀英", Role.leader),
    }


async def _new_ticket(http, services, mongo, content: str, **extra) -> dict:
    response = await http.post(f"{services['intake'].base_url}/v1/complaints", json={"content": content, **extra})
    event_id = response.json()["event_id"]
    return await eventually(lambda: mongo["tickets"].find_one({"source_event_id": event_id}), what="the ticket")


async def _command(http, services, ticket_id: str, path: str, headers: dict, body: dict | None = None,
                   command_id: str | None = None):
    headers = {**headers, **({"Command-Id": command_id} if command_id else {})}
    return await http.post(f"{services['intake'].base_url}/v1/tickets/{ticket_id}/{path}", json=body or {},
                           headers=headers)


async def test_every_transition_and_refusal_by_http(http, services, mongo, keys):
    ticket = await _new_ticket(http, services, mongo, "工地老板拖欠农民工工资两个月，要求帮忙讨薪")
    ticket_id = ticket["ticket_id"]
    assert ticket["lead_unit"] == "laobao"
    go = lambda path, who, body=None, **kw: _command(http, services, ticket_id, path, keys[who], body, **kw)  # noqa: E731

    early = await go("resolve", "laobao", {"result": "已处理"})
    assert early.status_code == 409
    assert early.json()["code"] == "wrong_state" and "须先签收" in early.json()["message"]
    # A unit with no business with the ticket is told it does not exist, and nothing is written on it.
    assert (await go("sign-for", "sifa")).json()["code"] == "ticket_not_found"

    signed = await go("sign-for", "laobao", {"note": "已安排人员"}, command_id="sign-1")
    assert signed.status_code == 200 and signed.json()["state"] == "acknowledged"
    again = await go("sign-for", "laobao", {"note": "已安排人员"}, command_id="sign-1")
    assert again.status_code == 200 and again.json() == signed.json(), "same command id, same answer"

    until = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    assert (await go("extension-requests", "laobao", {"until": until, "note": "需协调住建部门"})).status_code == 200
    assert (await go("extension-decisions", "laobao", {"grant": True})).json()["code"] == "not_allowed"
    assert (await go("extension-decisions", "leader", {"grant": True})).status_code == 200
    assert (await go("notes", "laobao", {"note": "已约谈企业负责人"})).status_code == 200
    assert (await go("supervise", "leader", {"note": "请本周内办结"})).status_code == 200
    assert (await go("resolve", "laobao", {"result": "已追回工资3.2万元", "attachments": ["https://x/1.jpg"]})).status_code == 200
    rework = await go("callback", "dispatcher", {"resolved": False, "note": "群众反映仍未到账"})
    assert rework.json()["state"] == "acknowledged", "不满意 → 重办"
    assert (await go("resolve", "laobao", {"result": "工资已全部到账"})).status_code == 200
    closed = await go("callback", "dispatcher", {"resolved": True, "satisfaction": "satisfied"})
    assert closed.json()["state"] == "closed"
    assert (await go("notes", "laobao", {"note": "补充"})).json()["code"] == "wrong_state"
    reopened = await go("reopen", "dispatcher", {"note": "问题反弹"})
    assert reopened.json()["state"] == "routed"

    stored = await mongo["tickets"].find_one({"_id": ticket_id})
    assert stored["reopen_count"] == 1 and stored["rework_count"] == 1 and stored["supervision_count"] == 1
    # Reopening set new deadlines from now: not the extension's (30 days out), never earlier than the first ones
    # (after office hours both count from the next working morning, so they may be equal).
    assert ticket["resolve_due"] <= stored["resolve_due"] < datetime.fromisoformat(until)

    reporting = services["reporting"].base_url

    async def full_timeline() -> list | None:
        view = (await http.get(f"{reporting}/v1/tickets/{ticket_id}")).json()
        return view["timeline"] if len(view.get("timeline", [])) >= 14 else None

    async def explain() -> str:
        view = (await http.get(f"{reporting}/v1/tickets/{ticket_id}")).json()
        return f"timeline so far: {sorted((entry['at'], entry['kind']) for entry in view.get('timeline', []))}"

    timeline = await eventually(full_timeline, what="every transition and refusal on the timeline", explain=explain)
    kinds = [entry["kind"] for entry in sorted(timeline, key=lambda entry: entry["at"])]
    assert kinds.count("ticket.acknowledged") == 1, "the repeated sign-for changed nothing"
    assert kinds.count("ticket.command_refused") == 3
    assert {"ticket.extension_requested", "ticket.extension_decided", "ticket.note_added", "ticket.supervised",
            "ticket.resolved", "ticket.callback_recorded", "ticket.reopened"} <= set(kinds)
    refusal = next(entry for entry in timeline if entry["refusal_code"] == "wrong_state")
    assert refusal["actor"] == "劳动保障所 张三" and "须先签收" in refusal["note"]


async def test_a_workbench_command_names_the_person_and_other_keys_cannot_pose_as_one(http, services, mongo, keys):
    from urllib.parse import quote

    workbench = {"X-API-Key": await create_key(mongo, "工作台", Role.workbench)}

    def person(account: str, name: str, role: str, unit: str = "") -> dict[str, str]:
        return {"X-Actor-Account": account, "X-Actor-Name": quote(name), "X-Actor-Role": role, "X-Actor-Unit": unit}

    ticket = await _new_ticket(http, services, mongo, "装修公司拖欠工人工资一个月未付")
    ticket_id = ticket["ticket_id"]
    assert ticket["lead_unit"] == "laobao"
    nobody = await _command(http, services, ticket_id, "sign-for", workbench)
    assert nobody.status_code == 400 and "X-Actor-Account" in nobody.json()["detail"], "a workbench key names a person"
    zhang = {**workbench, **person("zhangsan", "张三", "unit", "laobao")}
    signed = await _command(http, services, ticket_id, "sign-for", zhang, {"note": "已签收"})
    assert signed.status_code == 200 and signed.json()["state"] == "acknowledged", signed.text
    noted = await _command(http, services, ticket_id, "notes", zhang,
                           {"note": "现场核实", "attachments": ["https://files.example.org/site.jpg"]})
    assert noted.status_code == 200
    # A unit's own key naming someone else in the headers acts as itself: only workbench keys speak for a person.
    posing = await _command(http, services, ticket_id, "notes", {**keys["laobao"], **person("root", "管理员", "admin")},
                            {"note": "补充材料"})
    assert posing.status_code == 200
    wang = {**workbench, **person("wangwu", "王五", "unit", "pingan")}
    moved = await _command(http, services, ticket_id, "reassign", wang,
                           {"unit": "sifa", "assist_units": ["laobao", "xixi"], "note": "属劳资纠纷调解"})
    assert moved.status_code == 200, moved.text
    stored = await mongo["tickets"].find_one({"_id": ticket_id})
    assert stored["lead_unit"] == "sifa" and stored["assist_units"] == ["laobao", "xixi"]
    assert stored["attachments"] == ["https://files.example.org/site.jpg"]
    answer = await mongo["command_answers"].find_one({"_id": moved.json()["command_id"]})
    assert answer["status"] == "applied", "intake keeps the answers it gives"

    async def timeline() -> list | None:
        view = (await http.get(f"{services['reporting'].base_url}/v1/tickets/{ticket_id}")).json()
        entries = sorted(view.get("timeline", []), key=lambda entry: entry["at"])
        return entries if len(entries) >= 5 else None

    actors = [(entry["kind"], entry["actor"]) for entry in await eventually(timeline, what="the workbench's steps")]
    assert actors[1:] == [("ticket.acknowledged", "张三（劳动保障所）"), ("ticket.note_added", "张三（劳动保障所）"),
                          ("ticket.note_added", "劳动保障所 张三"), ("ticket.reassigned", "王五（平安办（综治中心））")]


async def test_a_returned_ticket_is_routed_again_without_the_unit_and_the_new_unit_is_told(http, services, mongo, keys, sink):
    ticket = await _new_ticket(http, services, mongo, "装修公司拖欠工人工资")
    response = await _command(http, services, ticket["ticket_id"], "return", keys["laobao"],
                              {"reason": "overlapping_duties", "note": "属劳动争议，应由司法所调解"})
    assert response.status_code == 200
    stored = await mongo["tickets"].find_one({"_id": ticket["ticket_id"]})
    assert stored["returned_by"] == ["laobao"]
    assert stored["lead_unit"] != "laobao"
    if stored["state"] == "manual":
        path, expected = "/robot/pingan", "待人工派单"
    else:
        path, expected = f"/robot/{stored['lead_unit']}", "退单改派"

    async def told() -> list:
        return [m for m in sink.to(path) if m.body["ticket_id"] == ticket["ticket_id"] and expected in m.body["text"]]

    await eventually(told, what="the message to whoever has the ticket now")
    refused = await _command(http, services, "SF-NO-SUCH", "sign-for", keys["laobao"])
    assert refused.status_code == 409 and refused.json()["code"] == "ticket_not_found"


async def test_overdue_events_are_published_once_per_deadline_across_two_sweepers(http, services, mongo, stack):
    ticket = await _new_ticket(http, services, mongo, f"工地脚手架倒塌有人被困 {uuid.uuid4().hex[:4]}",
                               severity="critical")
    ticket_id = ticket["ticket_id"]
    publisher = services["triage"].app.state.runtime.publisher
    replicas = [OverdueSweeper(mongo, TicketStore(mongo), publisher) for _ in range(2)]
    sign_for_missed = ticket["sign_for_due"] + timedelta(minutes=1)
    for _ in range(2):  # two rounds: a restart, or the next sweep, finds nothing new
        await asyncio.gather(*(replica.sweep(sign_for_missed) for replica in replicas))
    resolve_missed = ticket["resolve_due"] + timedelta(minutes=1)
    await asyncio.gather(*(replica.sweep(resolve_missed) for replica in replicas))

    async def overdue_events() -> list | None:
        events = [TicketEvent.model_validate_json(record.value) for record in await read_topic(stack, "civic.tickets")]
        mine = [event for event in events if event.kind == "ticket.overdue" and event.ticket.ticket_id == ticket_id]
        return mine if len(mine) >= 2 else None

    events = await eventually(overdue_events, what="the overdue events")
    await asyncio.sleep(1)
    events = await overdue_events()
    assert sorted(event.deadline for event in events) == ["resolve", "sign_for"], "exactly one per deadline"
    stored = await mongo["tickets"].find_one({"_id": ticket_id})
    assert sorted(stored["overdue"]) == ["resolve", "sign_for"]


async def test_the_same_complaint_after_closure_reopens_the_ticket_as_a_recurrence(http, services, mongo, keys):
    body = {"content": "商铺油烟直排，熏得开不了窗", "address": "金域华府"}
    ticket = await _new_ticket(http, services, mongo, **body)
    ticket_id = ticket["ticket_id"]
    lead = ticket["lead_unit"]
    lead_key = {"X-API-Key": await create_key(mongo, f"{lead} 经办人", Role.unit, lead)}
    assert (await _command(http, services, ticket_id, "sign-for", lead_key)).status_code == 200
    assert (await _command(http, services, ticket_id, "resolve", lead_key, {"result": "已加装油烟净化器"})).status_code == 200
    closed = await _command(http, services, ticket_id, "callback", keys["dispatcher"],
                            {"resolved": True, "satisfaction": "basically_satisfied"})
    assert closed.json()["state"] == "closed"

    again = await http.post(f"{services['intake'].base_url}/v1/complaints",
                            json={**body, "content": "油烟又来了，问题没解决"})
    event_id = again.json()["event_id"]

    async def reopened() -> dict | None:
        stored = await mongo["tickets"].find_one({"_id": ticket_id})
        return stored if stored["state"] == "routed" and stored["reopen_count"] == 1 else None

    stored = await eventually(reopened, what="the ticket reopened as a recurrence (反弹)")
    assert [repeat["event_id"] for repeat in stored["repeats"]] == [event_id]
    assert await mongo["tickets"].count_documents({"source_event_id": event_id}) == 0, "no new ticket"


async def test_commands_are_documented_with_their_reason_codes(services):
    import httpx

    async with httpx.AsyncClient() as client:
        document = (await client.get(f"{services['intake'].base_url}/openapi.json")).json()
    operation = document["paths"]["/v1/tickets/{ticket_id}/sign-for"]["post"]
    assert "409" in operation["responses"]
    for code, (chinese, english) in __import__("civicbus.refusals", fromlist=["x"]).REFUSAL_TEXTS.items():
        assert f"`{code}` | {chinese} | {english}" in operation["description"]


async def test_every_refusal_reaches_the_caller_through_the_real_pipeline(http, services, mongo, keys, stack, tmp_path):
    past_due = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    late = await _new_ticket(http, services, mongo, "老板拖欠农民工工资", due_at=past_due)
    assert late["lead_unit"] == "laobao" and late["state"] == "routed"
    ticket = await _new_ticket(http, services, mongo, "公司拖欠员工工资")
    ticket_id = ticket["ticket_id"]
    later = (datetime.now(UTC) + timedelta(days=40)).isoformat()
    earlier = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()

    async def refusal(ticket_id: str, path: str, who: str, body: dict | None = None) -> str:
        response = await _command(http, services, ticket_id, path, keys[who], body)
        assert response.status_code == 409, response.text
        answer = response.json()
        assert answer["message"] and answer["message_en"], "every refusal says why, in Chinese and English"
        return answer["code"]

    assert await refusal(late["ticket_id"], "extension-requests", "laobao", {"until": later, "note": "x"}) == "deadline_passed"
    assert await refusal(ticket_id, "extension-requests", "laobao", {"until": earlier, "note": "x"}) == "invalid_extension"
    assert await refusal(ticket_id, "extension-decisions", "leader", {"grant": True}) == "no_pending_extension"
    ok = await _command(http, services, ticket_id, "extension-requests", keys["laobao"], {"until": later, "note": "需调查"})
    assert ok.status_code == 200
    assert await refusal(ticket_id, "extension-requests", "laobao", {"until": later, "note": "再次"}) == "extension_pending"
    denied = await _command(http, services, ticket_id, "extension-decisions", keys["leader"], {"grant": False})
    assert denied.status_code == 200
    assert await refusal(ticket_id, "return", "laobao", {"reason": "other"}) == "missing_field"
    assert await refusal(ticket_id, "reassign", "dispatcher", {"unit": "nowhere"}) == "unknown_unit"
    assert await refusal(ticket_id, "reassign", "dispatcher", {"unit": "laobao"}) == "same_unit"
    assert await refusal(ticket_id, "reassign", "laobao", {"unit": "sifa"}) == "not_allowed"
    moved = await _command(http, services, ticket_id, "reassign", keys["dispatcher"], {"unit": "sifa", "note": "属调解"})
    assert moved.status_code == 200 and moved.json()["state"] == "routed"
    stored = await mongo["tickets"].find_one({"_id": ticket_id})
    assert stored["lead_unit"] == "sifa" and stored["pending_extension"] is None
    # 司法所 handles 纠纷警情 only: the move from 欠薪 is a labelled example for the classifier.
    correction = await mongo["classifier_corrections"].find_one({"ticket_id": ticket_id})
    assert correction is not None and correction["_id"] == moved.json()["command_id"]
    assert (correction["text"], correction["label"], correction["original"], correction["kind"]) == (
        "公司拖欠员工工资", "police.dispute", "labor.wage_arrears", "reassign")
    exported = tmp_path / "corrections.csv"
    env = {"CIVICBUS_MONGO_URL": stack.mongo_url, "CIVICBUS_MONGO_DB": stack.db_name}
    result = await asyncio.to_thread(CliRunner().invoke, classifier_app, ["corrections", "-o", str(exported)], env=env)
    assert result.exit_code == 0, result.output
    assert f"{ticket_id},公司拖欠员工工资,police.dispute,公共安全/纠纷警情" in exported.read_text(encoding="utf-8-sig")
    too_long = await _command(http, services, "SF" + "9" * 70, "sign-for", keys["laobao"])
    assert too_long.status_code == 422 and "ticket_id" in too_long.text, "a clear error, not a 500"


async def test_upstream_systems_may_send_commands_straight_to_kafka(http, services, mongo, stack):
    from aiokafka import AIOKafkaProducer

    from civicbus.events import Action, Actor, TicketCommand

    ticket = await _new_ticket(http, services, mongo, "冒充客服诈骗电话，被骗两千元")
    command = TicketCommand(source="upstream-12345", ticket_id=ticket["ticket_id"], action=Action.sign_for,
                            actor=Actor(name="派出所 值班", role="unit", unit=ticket["lead_unit"]))
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(f"{stack.prefix}civic.commands", command.encode(), key=command.partition_key.encode())
    finally:
        await producer.stop()

    async def signed() -> dict | None:
        stored = await mongo["tickets"].find_one({"_id": ticket["ticket_id"]})
        return stored if stored["state"] == "acknowledged" else None

    await eventually(signed, what="the command from Kafka applied")
    answer = (await http.get(f"{services['intake'].base_url}/v1/commands/{command.event_id}")).json()
    assert answer["status"] == "applied" and answer["transition"] == "ticket.acknowledged"


async def test_the_figures_follow_the_loop(http, services, mongo, keys):
    ticket = await _new_ticket(http, services, mongo, "包工头拖欠装修工人工资", amount=45000)
    assert ticket["lead_unit"] == "laobao" and ticket["amount_involved"] == 45000
    for path, who, body in [("sign-for", "laobao", {}),
                            ("resolve", "laobao", {"result": "已结清", "amount_recovered": 45000}),
                            ("callback", "dispatcher", {"resolved": True, "satisfaction": "basically_satisfied"})]:
        assert (await _command(http, services, ticket["ticket_id"], path, keys[who], body)).status_code == 200
    reporting = services["reporting"].base_url

    async def counted() -> dict | None:
        body = (await http.get(f"{reporting}/v1/rankings/unit", params={"kind": "station"})).json()
        row = next((item for item in body["items"] if item["key"] == "laobao"), None)
        return body if row and row["counts"]["callbacks"] >= 2 and row["counts"]["basically_satisfied"] else None

    body = await eventually(counted, what="laobao's callbacks counted")
    row = next(item for item in body["items"] if item["key"] == "laobao")
    counts, figures = row["counts"], row["figures"]
    # The sample district counts 基本满意 as 0.8 (config/sample/reporting.yaml).
    satisfied = counts["satisfied"] + 0.8 * counts["basically_satisfied"]
    assert figures["satisfaction_rate"] == round(satisfied / counts["callback_rated"], 4)
    # 响应率 divides by what fell due (应签收): signed in time, or past the sign-for limit.
    assert counts["due_sign_for"] == counts["acknowledged_in_time"] + counts["overdue_sign_for"] >= 1
    assert figures["response_rate"] == round(counts["acknowledged_in_time"] / counts["due_sign_for"], 4)
    assert all(item["key"] in {"scjg", "laobao", "sifa", "paichusuo", "xiaofang"} for item in body["items"]), \
        "kind=station ranks stations against stations"
    assert body["items"][0]["rank"] == 1 and body["rank_by"] == "response_rate"
    today = datetime.fromisoformat(local_day(datetime.now(UTC))).date()
    around_today = {"period": "custom", "since": str(today - timedelta(days=1)), "until": str(today)}
    wages = (await http.get(f"{reporting}/v1/summary", params={**around_today, "category": "labor.wage_arrears",
                                                               "unit": "laobao"})).json()
    assert wages["amounts"]["involved"] >= 45000 and wages["amounts"]["recovered"] >= 45000, "欠薪 amounts counted"
    assert [item["value"] for item in body["items"]] == sorted((item["value"] for item in body["items"]), reverse=True)


async def test_a_command_decided_before_a_crash_is_the_ground_for_the_next_one(http, services, mongo):
    """Triage recorded its decision on a sign-for but crashed before writing the ticket; the sign-for comes again
    with a resolve in the same batch: the resolve applies to the signed ticket, and both are on it."""
    from types import SimpleNamespace

    from civicbus.district import load_district
    from civicbus.events import Action, Actor, TicketCommand
    from civicbus.kafka import Consumed
    from civicbus.settings import DEFAULT_CONFIG_DIR
    from services.triage.commands import CommandHandler
    from services.triage.decide import TriageEngine

    ticket = await _new_ticket(http, services, mongo, f"拖欠农民工工资三个月 {uuid.uuid4().hex[:4]}")
    ticket_id = ticket["ticket_id"]
    before_crash = await mongo["tickets"].find_one({"_id": ticket_id})
    engine = TriageEngine(load_district(DEFAULT_CONFIG_DIR))
    handler = CommandHandler(lambda: engine, TicketStore(mongo), services["triage"].app.state.runtime.publisher,
                             mongo)
    actor = Actor(name="劳动保障所 张三", role="unit", unit=ticket["lead_unit"])
    sign_for = TicketCommand(source="test", ticket_id=ticket_id, action=Action.sign_for, actor=actor)
    resolve = TicketCommand(source="test", ticket_id=ticket_id, action=Action.resolve, actor=actor, result="已追回")

    record = SimpleNamespace(partition=0)
    await handler([Consumed(sign_for, record)])
    await mongo["tickets"].replace_one({"_id": ticket_id}, before_crash)  # the ticket's write was lost
    outcome = await handler([Consumed(sign_for, record), Consumed(resolve, record)])

    assert outcome.duplicates == 1 and not outcome.failed
    stored = await mongo["tickets"].find_one({"_id": ticket_id})
    assert stored["state"] == "resolved" and stored["acknowledged_at"] is not None
    assert set(stored["applied_commands"]) >= {sign_for.event_id, resolve.event_id}
    decision = await mongo["command_results"].find_one({"_id": resolve.event_id})
    assert decision["status"] == "applied"
