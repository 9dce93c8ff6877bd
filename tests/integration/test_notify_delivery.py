"""Notify's channels against real local receivers: exact robot, mail and SMS bodies (with the DingTalk and Feishu
signatures, each with its way to the ticket's workbench page), retries on the timer (not in the batch), a final failure to the fallback channel, a burst digested under
DingTalk's rate limit, and no duplicate after a restart mid-stream or between two attempts."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import urllib.parse
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from pymongo import AsyncMongoClient

from civicbus.district import load_district
from civicbus.events import EventKind, NotificationResult
from civicbus.mongo import find_by_ids
from civicbus.topics import TICKETS
from ops.webhook_receiver import WebhookSink
from services.notify.channels import channel_id
from services.notify.channels.robots import as_markdown_text
from services.notify.config import load_notify_config
from services.notify.messages import MessageRenderer
from services.notify.schedule import RateLimiter

from .conftest import Stack, eventually, read_topic
from .notify_support import NotifyUnderTest, SimClock, SmtpRecorder, ticket_event, utc, write_config
from .test_delivery_guarantees import consumed

pytestmark = pytest.mark.integration
PUBLIC = "https://gd.shifan.example.gov.cn"  # where people reach the workbench (notify's public_base_url)


@pytest.fixture(scope="module")
async def setup(stack, tmp_path_factory) -> AsyncIterator[tuple[NotifyUnderTest, WebhookSink, SmtpRecorder]]:
    sink = await WebhookSink().start()
    smtp = SmtpRecorder()
    controller = smtp.start()
    config = write_config(tmp_path_factory.mktemp("notify") / "config", sink.base_url, smtp.port)
    notify = await NotifyUnderTest(stack.bootstrap, stack.mongo_url, config, SimClock(utc(2026, 11, 25, 2)),
                                   overrides={"public_base_url": PUBLIC}).start()  # 10:00 in Shanghai: not quiet
    yield notify, sink, smtp
    await notify.stop()
    await notify.drop()
    controller.stop()
    await sink.stop()


@pytest.fixture(scope="module")
async def db(setup) -> AsyncIterator:
    notify = setup[0]
    client = AsyncMongoClient(notify.mongo_url, tz_aware=True)
    yield client[notify.db_name]
    await client.close()


def received(sink: WebhookSink, path: str):
    return lambda: asyncio.sleep(0, result=sink.to(path))


async def test_every_channel_gets_its_exact_format_with_personal_data_masked(setup):
    notify, sink, smtp = setup
    event = ticket_event(EventKind.ticket_routed, notify.clock.now)
    await notify.publish([event])
    for path in ("/robot/ding-laobao", "/robot/wecom-laobao", "/robot/feishu-laobao", "/sms/send"):
        await eventually(received(sink, path), what=f"a message at {path}")
    await eventually(lambda: asyncio.sleep(0, result=smtp.mails), what="the e-mail")

    message = MessageRenderer(load_district(notify.config_dir), PUBLIC).render(event, "lead")
    page = f"{PUBLIC}/workbench/tickets/{event.ticket.ticket_id}"
    assert message.title == "【新工单】拖欠工资" and (message.url, message.button) == (page, "签收")
    assert "139****5678" in message.text and "330102********1234" in message.text
    assert "13912345678" not in message.text and "330102199001011234" not in message.text

    # In Markdown (DingTalk, WeCom) nothing of the text is markup: the masks' asterisks are shown full-width.
    shown = as_markdown_text(message.text)
    assert "139＊＊＊＊5678" in shown

    [ding] = sink.to("/robot/ding-laobao")
    query = urllib.parse.parse_qs(ding.query)
    timestamp = query["timestamp"][0]
    expected_sign = base64.b64encode(hmac.new(b"SECtest", f"{timestamp}\nSECtest".encode(), hashlib.sha256).digest())
    assert query["access_token"] == ["tok"] and query["sign"] == [expected_sign.decode()]
    assert ding.body == {"msgtype": "actionCard", "actionCard": {
        "title": message.title, "text": f"#### {message.title}\n\n" + "  \n".join(shown.splitlines()),
        "singleTitle": "签收", "singleURL": page}}

    [wecom] = sink.to("/robot/wecom-laobao")
    assert urllib.parse.parse_qs(wecom.query) == {"key": ["wk"]}
    assert wecom.body == {"msgtype": "markdown", "markdown": {
        "content": f"**{message.title}**\n{shown}\n[点击签收]({page})"}}

    [feishu] = sink.to("/robot/feishu-laobao")
    seconds = feishu.body["timestamp"]
    expected_sign = base64.b64encode(hmac.new(f"{seconds}\nfsecret".encode(), b"", hashlib.sha256).digest()).decode()
    assert feishu.body == {"timestamp": seconds, "sign": expected_sign, "msg_type": "interactive", "card": {
        "header": {"title": {"tag": "plain_text", "content": message.title}, "template": "blue"},
        "elements": [{"tag": "div", "text": {"tag": "plain_text", "content": message.text}},
                     {"tag": "action", "actions": [{"tag": "button", "text": {"tag": "plain_text", "content": "签收"},
                                                    "type": "primary", "url": page}]}]}}

    [sms] = sink.to("/sms/send")
    assert sms.headers["authorization"] == "Bearer sms-token"
    full, link = f"{message.title}\n{message.text}", f"\n签收：{page}"  # the link last and whole, within 300
    content = full + link if len(full + link) <= 300 else full[:300 - len(link) - 1] + "…" + link
    assert sms.body == {"mobile": "13800000117", "content": content, "sign": "示范街道"}

    [mail] = smtp.mails
    assert smtp.logins == ["notify"]
    assert mail["Subject"] == message.title and mail["From"] == "notify@shifan.example.gov.cn"
    assert mail["To"] == "laobao@shifan.example.gov.cn" and mail["X-Civicbus-Ticket"] == event.ticket.ticket_id
    assert mail.get_content() == f"{message.text}\n\n在工作台签收：{page}\n"


async def notification(db, key: str) -> dict:
    return await db["notifications"].find_one({"_id": key})


def results_for(notify: NotifyUnderTest, stack, ticket_id: str, count: int):
    """A check for ``eventually``: the ``count`` results notify published for the ticket."""
    topic_stack = Stack(stack.bootstrap, stack.mongo_url, notify.prefix, notify.db_name)

    async def results() -> list[NotificationResult] | None:
        found = [NotificationResult.model_validate_json(record.value)
                 for record in await read_topic(topic_stack, "civic.notifications")]
        mine = [result for result in found if result.ticket_id == ticket_id]
        return mine if len(mine) >= count else None

    return results


async def test_a_receiver_that_is_down_holds_up_nothing_and_its_final_failure_goes_to_the_fallback(setup, db, stack):
    notify, sink, _ = setup
    sink.failing_paths.add("/robot/gone")
    # One record, two messages: to shiwu (down) and to sifa (up). The old inline retries kept the batch, so the
    # partition, waiting for every attempt to shiwu before sifa's result was published.
    new = ticket_event(EventKind.ticket_routed, notify.clock.now, lead="shiwu")
    event = ticket_event(EventKind.ticket_routed, notify.clock.now, ticket=new.ticket, assist_units=["sifa"])
    failing = notify.key(event, "shiwu")
    await notify.publish([event])
    [delivered] = await eventually(results_for(notify, stack, event.ticket.ticket_id, 1), what="sifa's result")
    assert (delivered.recipient, delivered.kind) == ("sifa", EventKind.notification_delivered)
    document = await notification(db, failing)
    assert document["status"] == "retrying" and [attempt["result"] for attempt in document["attempts"]] == [
        "http_error"], "the batch made one attempt and left the rest to the timer"
    assert document["retry"]["title"] == "【新工单】拖欠工资" and not sink.to("/fallback/duty")

    for attempts in (2, 3, 4):
        await notify.tick(notify.clock.advance(minutes=5))
        document = await notification(db, failing)
        assert len(document["attempts"]) == attempts
    assert document["status"] == "failed" and document["retry"]["title"] == "【新工单】拖欠工资"  # for its fallback
    [fallback] = await eventually(received(sink, "/fallback/duty"), what="the message at the fallback channel")
    assert fallback.body["title"] == "【通知失败】【新工单】拖欠工资"
    assert fallback.body["text"].startswith("【示范街道·通知失败】发给社会事务办公室的通知未能送达（HTTP 503")

    found = await eventually(results_for(notify, stack, event.ticket.ticket_id, 3), what="three results")
    outcome = {(result.recipient, result.kind, result.attempts) for result in found}
    assert outcome == {("sifa", EventKind.notification_delivered, 1), ("shiwu", EventKind.notification_failed, 4),
                       ("fallback", EventKind.notification_delivered, 1)}
    await notify.tick(notify.clock.advance(minutes=5))
    assert len((await notification(db, failing))["attempts"]) == 4 and len(sink.to("/fallback/duty")) == 1, \
        "a message given up on stays given up"


async def test_retries_come_on_the_timer_in_order_and_every_attempt_is_recorded(setup, db, stack):
    notify, sink, _ = setup
    event = ticket_event(EventKind.ticket_routed, notify.clock.now, lead="sifa", leader="liwenhua")
    key = notify.key(event, "sifa")
    mine = lambda: [item for item in sink.to("/robot/sifa")  # noqa: E731
                    if item.body["ticket_id"] == event.ticket.ticket_id]
    sink.fail_first = 2
    await notify.publish([event])

    async def retrying() -> dict | None:
        document = await notification(db, key)
        return document if document and document["status"] == "retrying" else None

    document = await eventually(retrying, what="the first attempt failed and a retry planned")
    assert [attempt["result"] for attempt in document["attempts"]] == ["http_error"]
    await notify.tick(notify.clock.now)
    assert len((await notification(db, key))["attempts"]) == 1, "the retry waits for its backoff"

    await notify.tick(notify.clock.advance(minutes=5))
    document = await notification(db, key)
    assert document["status"] == "retrying" and [a["result"] for a in document["attempts"]] == ["http_error"] * 2
    await notify.tick(notify.clock.advance(minutes=5))
    document = await notification(db, key)
    assert document["status"] == "delivered"
    assert [attempt["result"] for attempt in document["attempts"]] == ["http_error", "http_error", "ok"]
    [message] = mine()
    assert message.body["ticket_id"] == event.ticket.ticket_id
    [result] = await eventually(results_for(notify, stack, event.ticket.ticket_id, 1), what="the result")
    assert (result.kind, result.attempts) == (EventKind.notification_delivered, 3)
    await notify.tick(notify.clock.advance(minutes=5))
    assert len(mine()) == 1


async def test_a_burst_beyond_the_dingtalk_limit_becomes_one_digest_not_a_ban(setup, db):
    notify, sink, _ = setup
    events = [ticket_event(EventKind.ticket_routed, notify.clock.now, lead="jianshe", leader="fengjianhua")
              for _ in range(25)]
    await notify.publish(events)
    keys = [notify.key(event, "jianshe") for event in events]

    async def settled() -> dict | None:
        documents = await find_by_ids(db["notifications"], keys)
        statuses = Counter(document["status"] for document in documents.values())
        return statuses if statuses == {"delivered": 20, "held": 5} else None

    await eventually(settled, what="20 messages sent and 5 held")
    assert len(sink.to("/robot/ding-jianshe")) == 20  # DingTalk's limit: 20 a minute

    await notify.tick(notify.clock.advance(minutes=3))
    digests = [item.body["actionCard"] for item in sink.to("/robot/ding-jianshe")
               if item.body["actionCard"]["title"].startswith("【消息汇总】")]
    # Digests are kept per partition of civic.tickets (one writer each): one per partition that held some.
    assert 1 <= len(digests) <= TICKETS.partitions and len(sink.to("/robot/ding-jianshe")) == 20 + len(digests)
    assert sorted(digest["title"] for digest in digests) == sorted(
        f"【消息汇总】共{digest['text'].count('【新工单】')}条" for digest in digests)
    assert all("发送过于频繁，合并发送" in digest["text"] for digest in digests)
    assert {(digest["singleTitle"], digest["singleURL"]) for digest in digests} == {("查看", f"{PUBLIC}/workbench")}
    documents = await find_by_ids(db["notifications"], keys)
    assert {document["status"] for document in documents.values()} == {"delivered"}
    in_digest = [key for key, document in documents.items() if document.get("digest")]
    assert len(in_digest) == 5
    for key in in_digest:  # each held message in exactly one digest
        assert len([digest for digest in digests if documents[key]["ticket_id"] in digest["text"]]) == 1


async def test_a_robot_that_answers_too_many_gets_the_message_in_the_next_digest(setup, db):
    notify, sink, _ = setup
    notify.clock.advance(minutes=5)  # the burst's minute is long over
    sink.answers["/robot/ding-jianshe"] = [{"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"}]
    event = ticket_event(EventKind.ticket_routed, notify.clock.now, lead="jianshe", leader="fengjianhua")
    before = len(sink.to("/robot/ding-jianshe"))
    await notify.publish([event])

    async def held() -> bool:
        document = await db["notifications"].find_one({"_id": notify.key(event, "jianshe")})
        return bool(document and document["status"] == "held")

    await eventually(held, what="the refused message held for a digest")
    document = await db["notifications"].find_one({"_id": notify.key(event, "jianshe")})
    assert [attempt["result"] for attempt in document["attempts"]] == ["rate_limited"]  # no retries into a ban
    await notify.tick(notify.clock.advance(minutes=2))
    [digest] = sink.to("/robot/ding-jianshe")[before:]
    assert digest.body["actionCard"]["title"] == "【消息汇总】共1条"
    assert event.ticket.ticket_id in digest.body["actionCard"]["text"]


async def test_a_digest_the_robot_refuses_as_too_many_is_retried_not_failed(setup, db):
    notify, sink, _ = setup
    notify.clock.advance(minutes=5)
    too_many = {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"}
    sink.answers["/robot/ding-jianshe"] = [too_many, too_many]  # the message, then its digest
    event = ticket_event(EventKind.ticket_routed, notify.clock.now, lead="jianshe", leader="fengjianhua")
    key = notify.key(event, "jianshe")
    before = len(sink.to("/robot/ding-jianshe"))
    await notify.publish([event])

    async def status() -> str:
        document = await db["notifications"].find_one({"_id": key})
        return document["status"] if document else ""

    async def held() -> bool:
        return await status() == "held"

    await eventually(held, what="the refused message held for a digest")
    await notify.tick(notify.clock.advance(minutes=2))  # the digest is refused too: a retry, not a failure
    assert await status() == "held" and sink.to("/robot/ding-jianshe")[before:] == []
    await notify.tick(notify.clock.advance(minutes=5))
    [digest] = sink.to("/robot/ding-jianshe")[before:]
    assert digest.body["actionCard"]["title"] == "【消息汇总】共1条"
    assert await status() == "delivered"


async def test_a_restart_does_not_forget_the_sends_the_rate_limit_counted_this_minute(setup, db):
    notify, sink, _ = setup
    notify.clock.advance(minutes=5)
    before = len(sink.to("/robot/ding-jianshe"))
    events = [ticket_event(EventKind.ticket_routed, notify.clock.now, lead="jianshe", leader="fengjianhua")
              for _ in range(20)]
    await notify.publish(events)
    await eventually(lambda: asyncio.sleep(0, result=len(sink.to("/robot/ding-jianshe")) - before == 20),
                     what="20 messages, the minute's limit")
    robot = load_notify_config(load_district(notify.config_dir)).channels_of("jianshe")[0]
    # One document per partition (one writer each), summed when read.
    stored = await find_by_ids(db["notify_rates"], [f"rate:{channel_id(robot)}|{partition}"
                                                    for partition in range(TICKETS.partitions)])
    minute = RateLimiter.field(notify.clock.now)
    assert sum(rates.get(minute, 0) for rates in stored.values()) == 20 and len(stored) > 1
    assert all([name for name in rates if name.startswith("m")] == [minute]
               for rates in stored.values() if minute in rates), "a partition that sent dropped its earlier minutes"

    await notify.stop()
    await notify.start()  # a new process: nothing in memory
    late = ticket_event(EventKind.ticket_routed, notify.clock.now, lead="jianshe", leader="fengjianhua")
    await notify.publish([late])

    async def held() -> bool:
        document = await notification(db, notify.key(late, "jianshe"))
        return bool(document and document["status"] == "held")

    await eventually(held, what="the 21st message of the minute held for a digest")
    assert len(sink.to("/robot/ding-jianshe")) - before == 20
    await notify.tick(notify.clock.advance(minutes=2))
    [digest] = sink.to("/robot/ding-jianshe")[before + 20:]
    assert digest.body["actionCard"]["title"] == "【消息汇总】共1条"


async def rewind(notify: NotifyUnderTest) -> None:
    """Set notify's committed offsets back to the start: as if it had crashed before committing anything."""
    topic = f"{notify.prefix}civic.tickets"
    consumer = AIOKafkaConsumer(bootstrap_servers=notify.bootstrap, group_id=f"{notify.prefix}notify.civic.tickets",
                                enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, number) for number in range(TICKETS.partitions)]
        consumer.assign(partitions)
        await consumer.commit({partition: 0 for partition in partitions})
    finally:
        await consumer.stop()


async def test_a_restart_mid_stream_with_everything_redelivered_sends_nothing_twice(setup):
    notify, sink, _ = setup
    first = [ticket_event(EventKind.ticket_routed, notify.clock.now, lead="xinfang", leader="liwenhua")
             for _ in range(20)]
    later = [ticket_event(EventKind.ticket_routed, notify.clock.now, lead="xinfang", leader="liwenhua")
             for _ in range(20)]
    arrived = lambda: {item.body["ticket_id"] for item in sink.to("/robot/xinfang")}  # noqa: E731
    await notify.publish(first)
    await eventually(lambda: asyncio.sleep(0, result=len(arrived()) == 20), what="the first 20 messages")
    await notify.stop()
    await notify.publish(later)  # the stream goes on while notify is down
    await rewind(notify)  # and every record comes again, the first 20 included
    duplicates = consumed("notify", "civic.tickets", "duplicate")
    await notify.start()

    wanted = {event.ticket.ticket_id for event in first + later}
    await eventually(lambda: asyncio.sleep(0, result=wanted <= arrived()), timeout=90, what="all 40 messages")
    await asyncio.sleep(1.0)  # a duplicate would come right behind
    counts = Counter(item.body["ticket_id"] for item in sink.to("/robot/xinfang"))
    assert len(counts) == 40 and set(counts.values()) == {1}
    assert consumed("notify", "civic.tickets", "duplicate") - duplicates >= 20, "the first 20 really came again"


async def test_a_restart_between_two_attempts_neither_loses_the_retry_nor_sends_twice(setup, db, stack):
    notify, sink, _ = setup
    sink.failing_paths.add("/robot/sifa")
    event = ticket_event(EventKind.ticket_routed, notify.clock.now, lead="sifa", leader="liwenhua")
    key = notify.key(event, "sifa")
    mine = lambda: [item for item in sink.to("/robot/sifa")  # noqa: E731
                    if item.body["ticket_id"] == event.ticket.ticket_id]
    await notify.publish([event])

    async def retrying() -> bool:
        document = await notification(db, key)
        return bool(document and document["status"] == "retrying")

    await eventually(retrying, what="the first attempt failed and a retry planned")
    await notify.stop()
    sink.failing_paths.discard("/robot/sifa")  # the receiver is back while notify is down
    await rewind(notify)  # and the record comes again, with every other one of this module
    records = len(await read_topic(Stack(stack.bootstrap, stack.mongo_url, notify.prefix, notify.db_name),
                                   "civic.tickets"))
    duplicates = consumed("notify", "civic.tickets", "duplicate")
    await notify.start()

    await eventually(lambda: asyncio.sleep(0, result=consumed("notify", "civic.tickets", "duplicate") - duplicates
                                           >= records), timeout=90, what="every record redelivered and recognised")
    document = await notification(db, key)
    assert document["status"] == "retrying" and len(document["attempts"]) == 1 and not mine(), \
        "the redelivered record left the message to its retry timer"

    await notify.tick(notify.clock.advance(minutes=5))
    document = await notification(db, key)
    assert document["status"] == "delivered"
    assert [attempt["result"] for attempt in document["attempts"]] == ["http_error", "ok"]
    await notify.tick(notify.clock.advance(minutes=5))
    assert len(mine()) == 1
    [result] = await eventually(results_for(notify, stack, event.ticket.ticket_id, 1), what="the result")
    assert (result.kind, result.attempts) == (EventKind.notification_delivered, 2)
