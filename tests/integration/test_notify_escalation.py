"""Reminders, escalation steps and quiet hours on simulated time: the clock is moved, one timer tick runs, and what
arrived at the local receiver is checked."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from pymongo import AsyncMongoClient

from civicbus.events import EventKind, ResponseLevel, Severity, TicketState
from ops.webhook_receiver import WebhookSink

from .conftest import eventually
from .notify_support import NotifyUnderTest, SimClock, SmtpRecorder, ticket_event, utc, write_config

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def setup(stack, tmp_path_factory) -> AsyncIterator[tuple[NotifyUnderTest, WebhookSink]]:
    sink = await WebhookSink().start()
    config = write_config(tmp_path_factory.mktemp("notify") / "config", sink.base_url, SmtpRecorder().port)
    notify = await NotifyUnderTest(stack.bootstrap, stack.mongo_url, config,
                                   SimClock(utc(2026, 11, 26, 1))).start()  # 09:00 in Shanghai
    yield notify, sink
    await notify.stop()
    await notify.drop()
    await sink.stop()


@pytest.fixture(scope="module")
async def db(setup) -> AsyncIterator:
    client = AsyncMongoClient(setup[0].mongo_url, tz_aware=True)
    yield client[setup[0].db_name]
    await client.close()


def titles(sink: WebhookSink, path: str, ticket_id: str) -> list[str]:
    return [item.body["title"] for item in sink.to(path) if item.body["ticket_id"] == ticket_id]


async def known(db, ticket_id: str, version: int) -> None:
    """Wait until notify has taken in the ticket at this version (and filed its timers)."""
    async def check() -> bool:
        document = await db["notify_tickets"].find_one({"_id": ticket_id})
        return bool(document and document["version"] >= version)

    await eventually(check, what=f"notify to know {ticket_id} v{version}")


async def test_reminder_then_escalation_steps_in_order_stopping_when_signed_for(setup, db):
    notify, sink = setup
    start = notify.clock.now
    routed = ticket_event(EventKind.ticket_routed, start, lead="sifa", leader="liwenhua", sign_for=timedelta(hours=1))
    ticket_id = routed.ticket.ticket_id
    await notify.publish([routed])
    await known(db, ticket_id, 1)
    await eventually(lambda: asyncio.sleep(0, result=titles(sink, "/robot/sifa", ticket_id)), what="the new ticket")
    due = routed.ticket.sign_for_due
    unit = lambda: titles(sink, "/robot/sifa", ticket_id)  # noqa: E731
    leader = lambda: titles(sink, "/leader/liwenhua", ticket_id)  # noqa: E731

    await notify.tick(start + timedelta(minutes=47))
    assert unit() == ["【新工单】拖欠工资"]
    await notify.tick(start + timedelta(minutes=49))  # 80 % of the hour allowed
    assert unit() == ["【新工单】拖欠工资", "【到期提醒】拖欠工资"]
    reminder = sink.to("/robot/sifa")[-1].body
    assert reminder["transition"] == "ticket.reminder" and "签收时限将于11月26日 10:00到期" in reminder["text"]

    await notify.tick(due + timedelta(minutes=1))  # step 1: the unit
    assert unit()[-1] == "【工单超期（第1级）】拖欠工资" and leader() == []
    await notify.tick(due + timedelta(minutes=119))
    assert leader() == []
    await notify.tick(due + timedelta(minutes=121))  # step 2: the leader in charge, 120 minutes on
    assert leader() == ["【超期升级（第2级）】拖欠工资"]
    assert "司法所未在签收时限（11月26日 10:00）内签收，已超期2小时" in sink.to("/leader/liwenhua")[-1].body["text"]
    await notify.tick(due + timedelta(minutes=125))  # the overlap reads those buckets again: nothing twice
    assert len(unit()) == 3 and len(leader()) == 1

    signed = ticket_event(EventKind.ticket_acknowledged, due + timedelta(minutes=130), ticket=routed.ticket,
                          state=TicketState.acknowledged, acknowledged_at=due + timedelta(minutes=130))
    await notify.publish([signed])
    await known(db, ticket_id, 2)
    await notify.tick(due + timedelta(minutes=481))  # step 3 would have told the main leaders
    for main_leader in ("wangjianguo", "chenlixin"):
        assert titles(sink, f"/leader/{main_leader}", ticket_id) == []
    assert len(unit()) == 3 and len(leader()) == 1


async def test_heightened_response_brings_every_step_forward(setup, db):
    notify, sink = setup
    start = notify.clock.now + timedelta(minutes=1)
    routed = ticket_event(EventKind.ticket_routed, start, lead="xinfang", leader="liwenhua",
                          response_level=ResponseLevel.heightened, sign_for=timedelta(hours=1))
    ticket_id = routed.ticket.ticket_id
    await notify.publish([routed])
    await known(db, ticket_id, 1)
    due = routed.ticket.sign_for_due
    # 一级响应 policy: 0, 60, 180 minutes; halved by deadlines.yaml escalation_factor 0.5 → 0, 30, 90.
    await notify.tick(due + timedelta(minutes=29))
    assert titles(sink, "/leader/liwenhua", ticket_id) == []
    await notify.tick(due + timedelta(minutes=31))
    assert titles(sink, "/leader/liwenhua", ticket_id) == ["【超期升级（第2级）】拖欠工资"]
    assert "升级策略：一级响应升级" in sink.to("/leader/liwenhua")[-1].body["text"]
    await notify.tick(due + timedelta(minutes=89))
    assert titles(sink, "/leader/wangjianguo", ticket_id) == []
    await notify.tick(due + timedelta(minutes=91))
    for main_leader in ("wangjianguo", "chenlixin"):
        assert titles(sink, f"/leader/{main_leader}", ticket_id) == ["【超期升级（第3级）】拖欠工资"]


async def test_quiet_hours_hold_routine_messages_for_a_morning_digest_but_never_emergencies(setup, db):
    notify, sink = setup
    night = utc(2026, 11, 26, 15)  # 23:00 in Shanghai
    await notify.tick(night)
    routine = ticket_event(EventKind.ticket_routed, night, lead="sifa", leader="liwenhua",
                           sign_for=timedelta(hours=12))
    emergency = ticket_event(EventKind.ticket_routed, night, lead="xinfang", leader="liwenhua",
                             severity=Severity.critical, sign_for=timedelta(hours=12))
    await notify.publish([routine, emergency])
    await eventually(lambda: asyncio.sleep(0, result=titles(sink, "/robot/xinfang", emergency.ticket.ticket_id)),
                     what="the emergency, at night")

    async def held() -> bool:
        document = await db["notifications"].find_one({"_id": notify.key(routine, "sifa")})
        return bool(document and document["status"] == "held")

    await eventually(held, what="the routine message held")
    assert titles(sink, "/robot/sifa", routine.ticket.ticket_id) == []

    await notify.tick(utc(2026, 11, 26, 22, 0))  # 06:00: still quiet
    assert not [item for item in sink.to("/robot/sifa") if item.body["title"].startswith("【消息汇总】")]
    await notify.tick(utc(2026, 11, 26, 23, 32))  # 07:32: quiet hours are over
    digests = [item.body for item in sink.to("/robot/sifa") if item.body["title"].startswith("【消息汇总】")]
    assert len(digests) == 1 and digests[0]["title"] == "【消息汇总】共1条"
    assert "免打扰时段暂存的消息" in digests[0]["text"] and routine.ticket.ticket_id in digests[0]["text"]
    document = await db["notifications"].find_one({"_id": notify.key(routine, "sifa")})
    assert document["status"] == "delivered" and document["digest"].startswith("digest:")


async def test_each_leader_gets_one_daily_digest_of_open_and_overdue_tickets_in_their_charge(setup, db):
    notify, sink = setup
    def daily(path: str) -> list[dict]:
        return [item.body for item in sink.to(path)
                if item.body["title"].startswith("【每日汇总】") and "2026年11月27日" in item.body["text"]]

    assert daily("/leader/liwenhua") == []  # 07:32 was before daily_digest.at
    overdue = [document["ticket"]["ticket_id"] async for document in db["notify_tickets"].find({})
               if document["ticket"]["response_level"] == "heightened"]
    await notify.tick(utc(2026, 11, 27, 0, 5))  # 08:05 in Shanghai
    await notify.tick(utc(2026, 11, 27, 0, 20))
    # The four tickets of this module are in 李文华's charge: the signed-for one, the heightened one (overdue,
    # not signed for), and the night's two (due at 11:00).
    [digest] = daily("/leader/liwenhua")
    assert digest["title"] == "【每日汇总】在办4件，超期1件"
    assert "分管范围内在办工单4件，其中待签收3件、办理中1件、已超期1件" in digest["text"]
    assert f"1. {overdue[0]} 拖欠工资（主办：信访办，超期未签收）" in digest["text"]
    for main_leader in ("wangjianguo", "chenlixin"):
        [summary] = daily(f"/leader/{main_leader}")
        assert "全街道在办工单4件" in summary["text"]
    assert daily("/leader/zhaozhiqiang") == []  # nothing in his charge


async def test_a_ticket_taken_in_late_gets_its_overdue_step_but_no_stale_reminder(setup, db):
    """Behind a backlog (an outage), a ticket whose deadline passed an hour ago reaches notify only after the timers
    ticked past it: its escalation step still fires at the next tick, its reminder is not sent after the fact."""
    notify, sink = setup
    now = notify.clock.advance(days=1)
    await notify.tick(now)  # the timers have ticked up to now
    routed = ticket_event(EventKind.ticket_routed, now - timedelta(hours=2), lead="sifa", leader="liwenhua",
                          sign_for=timedelta(hours=1))
    ticket_id = routed.ticket.ticket_id
    await notify.publish([routed])
    await known(db, ticket_id, 1)
    await eventually(lambda: asyncio.sleep(0, result=titles(sink, "/robot/sifa", ticket_id)), what="the new ticket")

    await notify.tick(notify.clock.advance(minutes=1))
    assert titles(sink, "/robot/sifa", ticket_id) == ["【新工单】拖欠工资", "【工单超期（第1级）】拖欠工资"]
