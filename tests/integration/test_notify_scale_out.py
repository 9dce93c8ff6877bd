"""Notify with replicas and through crashes, on the real broker: two instances in one consumer group share the
partitions of civic.tickets and one stopping mid-burst sends nothing twice; a process that dies between sending and
recording — twice in a row — never makes a message go out twice and loses no count (the key ends ``unconfirmed``,
its result published once)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client import REGISTRY
from pymongo import AsyncMongoClient
from pymongo.errors import AutoReconnect

from civicbus.events import EventKind, NotificationResult
from civicbus.kafka import create_topics
from civicbus.mongo import find_by_ids
from civicbus.settings import KafkaConsumerSettings
from civicbus.topics import TICKETS
from ops.webhook_receiver import WebhookSink

from .conftest import Stack, eventually, read_topic
from .notify_support import NotifyUnderTest, SimClock, SmtpRecorder, ticket_event, utc, write_config

pytestmark = pytest.mark.integration
FINAL = {"delivered", "failed", "unconfirmed"}
# A failed batch comes again quickly.
CONSUMER = KafkaConsumerSettings(retry_backoff_s=0.2, retry_backoff_max_s=0.5)


@pytest.fixture
async def sink() -> AsyncIterator[WebhookSink]:
    receiver = await WebhookSink().start()
    yield receiver
    await receiver.stop()


@pytest.fixture
async def notify(stack, sink, tmp_path) -> AsyncIterator[NotifyUnderTest]:
    config = write_config(tmp_path / "config", sink.base_url, SmtpRecorder().port)
    instance = NotifyUnderTest(stack.bootstrap, stack.mongo_url, config, SimClock(utc(2026, 11, 25, 2)),
                               overrides={"consumer": CONSUMER})  # 10:00 in Shanghai: not quiet
    await create_topics(stack.bootstrap, instance.prefix)
    instance.topics_created = True
    yield instance
    await instance.stop()
    await instance.drop()


@pytest.fixture
async def db(notify) -> AsyncIterator[Any]:
    client = AsyncMongoClient(notify.mongo_url, tz_aware=True)
    yield client[notify.db_name]
    await client.close()


def burst(notify: NotifyUnderTest, count: int) -> list:
    """``count`` new tickets for two units with webhook robots, one message each."""
    return [ticket_event(EventKind.ticket_routed, notify.clock.now, lead=("sifa", "xinfang")[number % 2],
                         leader="liwenhua") for number in range(count)]


def keys_of(notify: NotifyUnderTest, events: list) -> list[str]:
    return [notify.key(event, event.ticket.lead_unit) for event in events]


def arrivals(sink: WebhookSink) -> Counter:
    """How often each notification key reached its receiver (the burst's; the leaders' daily digests, which the
    simulated morning also sends, are not counted)."""
    return Counter(key for item in sink.received if not (key := item.headers["idempotency-key"]).startswith("daily:"))


def unconfirmed() -> float:
    return REGISTRY.get_sample_value("civicbus_notifications_total",
                                     {"service": "notify", "channel": "webhook", "outcome": "unconfirmed"}) or 0.0


async def statuses(db, keys: list[str]) -> Counter:
    return Counter(document["status"] for document in (await find_by_ids(db["notifications"], keys)).values())


async def results(notify: NotifyUnderTest) -> list[NotificationResult]:
    topics = Stack(notify.bootstrap, notify.mongo_url, notify.prefix, notify.db_name)
    return [NotificationResult.model_validate_json(record.value)
            for record in await read_topic(topics, "civic.notifications")]


def crash_at_record(app: Any) -> None:
    """The process dies after sending and publishing, before its record: every record fails as MongoDB away would
    (a transient failure, so the batch is read again, and the tick raises)."""
    async def record(_: Any) -> None:
        raise AutoReconnect("injected: the process stops before its record")
    app.state.pipeline._record = record


async def test_two_crashes_between_send_and_record_send_nothing_twice_and_lose_no_count(notify, sink, db):
    events = burst(notify, 12)
    keys = keys_of(notify, events)
    await notify.publish(events)  # before the start: one batch gets them all, and it never gets past its record
    await notify.start(prepare=crash_at_record)
    await eventually(lambda: asyncio.sleep(0, result=set(keys) <= set(arrivals(sink))), what="every message sent")
    assert await statuses(db, keys) == {"pending": 12}, "sent, never recorded"
    await notify.stop()

    before = unconfirmed()
    await notify.start(prepare=crash_at_record)  # a new process, which dies at its record too
    await eventually(lambda: asyncio.sleep(0, result=unconfirmed() - before >= 12),
                     what="the second process to resolve the twelve keys")
    await notify.stop()
    assert await statuses(db, keys) == {"pending": 12}

    await notify.start()
    await eventually(lambda: statuses_are(db, keys, {"unconfirmed": 12}), what="every key unconfirmed, final")
    await asyncio.sleep(1.0)  # a duplicate would come right behind
    assert set(arrivals(sink).values()) == {1} and set(arrivals(sink)) == set(keys), "each message sent once"
    assert set(Counter(item.headers["idempotency-key"] for item in sink.received).values()) == {1}, \
        "the daily digests the simulated morning sends too, once"

    # Reporting counts by event id: each key has results under one id only, so it is counted exactly once.
    found = await results(notify)
    ids: dict[str, set[str]] = {}
    for result in found:
        ids.setdefault(result.ticket_id, set()).add(result.event_id)
    assert sorted(ids) == sorted(event.ticket.ticket_id for event in events)
    assert all(len(event_ids) == 1 for event_ids in ids.values())
    assert {result.kind for result in found} == {EventKind.notification_delivered}
    await notify.stop()


async def statuses_are(db, keys: list[str], wanted: dict[str, int]) -> bool:
    return await statuses(db, keys) == Counter(wanted)


async def test_mongodb_failing_between_claim_and_send_delays_the_message_without_losing_it(notify, sink, db):
    """In a live process, a claim it never began to send is still its own to send when the batch comes again."""
    failures = []

    def fail_once_before_sending(app: Any) -> None:
        pipeline = app.state.pipeline
        store_rates = pipeline._store_rates

        async def flaky(*args: Any) -> None:
            if not failures:
                failures.append(1)
                raise AutoReconnect("injected: MongoDB away between claim and send")
            await store_rates(*args)
        pipeline._store_rates = flaky

    [event] = burst(notify, 1)
    await notify.start(prepare=fail_once_before_sending)
    await notify.publish([event])
    await eventually(lambda: statuses_are(db, keys_of(notify, [event]), {"delivered": 1}), what="the message sent")
    assert failures and arrivals(sink) == {notify.key(event, "sifa"): 1}
    await notify.stop()


async def test_a_retry_whose_process_dies_twice_before_its_record_is_made_once(notify, sink, db):
    sink.failing_paths.add("/robot/sifa")
    [event] = burst(notify, 1)
    key = notify.key(event, "sifa")
    await notify.start()
    await notify.publish([event])
    await eventually(lambda: statuses_are(db, [key], {"retrying": 1}), what="the first attempt failed")
    sink.failing_paths.discard("/robot/sifa")
    await notify.tick(notify.clock.now)  # the morning's daily digests go now, so that only the retry is left
    await notify.stop()

    due = notify.clock.advance(minutes=5)
    for _ in range(2):  # claimed and sent, then the process dies; then a new one dies resolving it
        await notify.start(prepare=crash_at_record)
        with pytest.raises(AutoReconnect):
            await notify.tick(due)
        await notify.stop()
        assert await statuses(db, [key]) == {"retrying": 1}
    await notify.start()
    await notify.tick(due)
    document = await db["notifications"].find_one({"_id": key})
    assert document["status"] == "unconfirmed"
    assert [attempt["result"] for attempt in document["attempts"]] == ["http_error", "unconfirmed"]
    await notify.tick(notify.clock.advance(minutes=10))
    assert arrivals(sink) == {key: 1}
    found = [result for result in await results(notify) if result.ticket_id == event.ticket.ticket_id]
    assert len({result.event_id for result in found}) == 1 and found[0].attempts == 2
    await notify.stop()


async def test_two_replicas_share_the_partitions_and_one_stopping_mid_burst_sends_nothing_twice(notify, sink, db):
    notify.overrides["consumer"] = CONSUMER.model_copy(update={"max_records": 4})  # a burst is many batches
    first, second = notify, notify.replica()
    await first.start()
    await second.start()
    try:
        await _share_a_burst(notify, first, second, sink, db)
    finally:
        await second.stop()


async def _share_a_burst(notify: NotifyUnderTest, first: NotifyUnderTest, second: NotifyUnderTest,
                         sink: WebhookSink, db: Any) -> None:
    await eventually(lambda: asyncio.sleep(0, result=first.owned() | second.owned() == set(range(TICKETS.partitions))
                                           and not first.owned() & second.owned()),
                     what="the two replicas to split the partitions")
    early, late = burst(notify, 40), burst(notify, 40)
    keys = keys_of(notify, early + late)
    await first.publish(early)
    await eventually(lambda: asyncio.sleep(0, result=len(sink.received) >= 10), what="the burst under way")
    await asyncio.gather(first.stop(), second.publish(late))  # one replica stops mid-burst

    await eventually(lambda: asyncio.sleep(0, result=set(arrivals(sink)) == set(keys)), timeout=90,
                     what="every message of the burst")
    await eventually(lambda: statuses_are(db, keys, {"delivered": 80}), what="every key delivered")
    assert second.owned() == set(range(TICKETS.partitions)), "the remaining replica took every partition"
    assert await second.tick(notify.clock.advance(minutes=10)) == 0
    await asyncio.sleep(1.0)  # a duplicate would come right behind
    assert set(arrivals(sink).values()) == {1}, "no message delivered twice"
    found = await results(notify)
    assert len({result.event_id for result in found}) == 80
