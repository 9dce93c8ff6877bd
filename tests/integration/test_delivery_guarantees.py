"""At-least-once delivery made exactly-once in effect: dead letters, redelivery and replays, on the real broker."""

from __future__ import annotations

import asyncio
import uuid

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client import REGISTRY

from civicbus.events import Complaint, ComplaintReceived, DeadLetter
from civicbus.kafka import event_headers

from .conftest import drained, eventually, read_topic

pytestmark = pytest.mark.integration


def consumed(service: str, topic: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "civicbus_events_consumed_total", {"service": service, "topic": topic, "outcome": outcome}
    )
    return value or 0.0


async def _producer(stack) -> AIOKafkaProducer:
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    return producer


async def _ticket_of(mongo, event_id: str) -> dict | None:
    return await mongo["ticket_views"].find_one({"source_event_id": event_id})


async def test_poison_records_are_dead_lettered_with_the_reason_and_the_partition_moves_on(stack, services, mongo):
    key = f"upstream-{uuid.uuid4().hex[:6]}".encode()
    good = ComplaintReceived(source="12345", data=Complaint(content="湖滨路夜市油烟扰民，味道很大"))
    invalid = {**orjson.loads(good.encode()), "event_id": str(uuid.uuid4()), "data": {"content": ""}}
    producer = await _producer(stack)
    try:
        topic = f"{stack.prefix}civic.events"
        # Same key, so the same partition, in this order: the valid event must not be held up by the two before it.
        await producer.send_and_wait(topic, b'{"kind": "complaint.received", "data": {', key=key,
                                     headers=[("content-type", b"application/json")])
        await producer.send_and_wait(topic, orjson.dumps(invalid), key=key)
        await producer.send_and_wait(topic, good.encode(), key=key,
                                     headers=[(k, v.encode()) for k, v in event_headers(good).items()])
    finally:
        await producer.stop()

    ticket = await eventually(lambda: _ticket_of(mongo, good.event_id), what="the valid event's ticket")
    assert ticket["category"].startswith("environment")

    async def dead_letters() -> list[DeadLetter]:
        records = await read_topic(stack, "civic.dlq")
        letters = [DeadLetter.model_validate_json(record.value) for record in records if record.key == key]
        return letters if len(letters) == 2 else []

    malformed, empty = sorted(await eventually(dead_letters, what="two dead letters"), key=lambda l: l.original_offset)
    assert malformed.error_kind == "invalid" and "JSON" in malformed.reason
    assert malformed.original_value.startswith('{"kind": "complaint.received"')
    assert empty.error_kind == "invalid" and "data.content" in empty.reason
    assert empty.original_key == key.decode() and empty.service == "triage"
    assert empty.original_topic == f"{stack.prefix}civic.events"


async def test_what_no_store_could_keep_is_dead_lettered_by_name_and_the_partition_moves_on(stack, services, mongo):
    """Sent straight to civic.events past intake's door: a label key MongoDB cannot take as a field name, and a
    datetime of year 1. Each is dead-lettered naming its field; the complaint after them on the partition becomes a
    ticket (before, a refused label key stopped triage on its partition for good)."""
    key = f"upstream-{uuid.uuid4().hex[:6]}".encode()
    good = ComplaintReceived(source="12345", data=Complaint(content="湖滨路夜市油烟扰民，味道很大"))
    template = orjson.loads(good.encode())
    dotted = {**template, "event_id": str(uuid.uuid4()), "data": {**template["data"], "labels": {"a.b": "x"}}}
    ancient = {**template, "event_id": str(uuid.uuid4()), "occurred_at": "0001-01-01T00:00:00+00:00"}
    producer = await _producer(stack)
    try:
        for payload in (dotted, ancient):
            await producer.send_and_wait(f"{stack.prefix}civic.events", orjson.dumps(payload), key=key)
        await producer.send_and_wait(f"{stack.prefix}civic.events", good.encode(), key=key)
    finally:
        await producer.stop()

    on_a_ticket = {"$or": [{"source_event_id": good.event_id}, {"repeat_event_ids": good.event_id}]}
    await eventually(lambda: mongo["tickets"].find_one(on_a_ticket), what="the complaint after them on a ticket")

    async def dead_letters() -> list[DeadLetter]:
        letters = [DeadLetter.model_validate_json(record.value) for record in await read_topic(stack, "civic.dlq")]
        return [letter for letter in letters if letter.original_key == key.decode()] or []

    letters = sorted(await eventually(dead_letters, what="the dead letters"), key=lambda letter: letter.original_offset)
    assert [letter.error_kind for letter in letters] == ["invalid", "invalid"]
    assert "data.labels" in letters[0].reason and "a.b" in letters[0].reason
    assert "occurred_at" in letters[1].reason and "1970" in letters[1].reason


async def test_a_redelivered_incoming_event_makes_no_second_ticket(stack, services, mongo):
    event = ComplaintReceived(source="12345", data=Complaint(content="永丰路路灯坏了好几天，晚上很黑"))
    producer = await _producer(stack)
    try:
        for _ in range(3):
            await producer.send_and_wait(f"{stack.prefix}civic.events", event.encode(), key=event.partition_key.encode())
    finally:
        await producer.stop()
    view = await eventually(lambda: _ticket_of(mongo, event.event_id), what="the ticket")
    await eventually(
        # The triager decides each copy; the ticket's owner recognises the two redeliveries.
        lambda: asyncio.sleep(0, result=consumed("triage", "civic.commands", "duplicate") >= 2),
        what="triage to see the two redeliveries",
    )
    assert await mongo["tickets"].count_documents({"source_event_id": event.event_id}) == 1
    view = await _ticket_of(mongo, event.event_id)
    assert len(view["timeline"]) == 1


async def test_replaying_the_ticket_topic_changes_no_figure_and_sends_no_message_twice(stack, services, mongo, sink, http):
    # Let everything earlier tests caused settle, then take a snapshot of every figure.
    event = ComplaintReceived(source="12345", data=Complaint(content="文昌路学府苑小区物业乱收停车费"))
    producer = await _producer(stack)
    await producer.send_and_wait(f"{stack.prefix}civic.events", event.encode(), key=event.partition_key.encode())
    await eventually(lambda: _ticket_of(mongo, event.event_id), what="the ticket")

    async def state() -> tuple:
        counters = sorted([*await mongo["report_counters"].find({}).to_list(None),
                           *await mongo["ticket_facts"].find({}).to_list(None)], key=lambda document: document["_id"])
        views = sorted([*await mongo["ticket_views"].find({}).to_list(None),
                        *await mongo["ticket_notifications"].find({}).to_list(None)],
                       key=lambda document: document["_id"])
        return counters, views, len(sink.received)

    async def quiet() -> bool:
        before = await state()
        await asyncio.sleep(1.5)
        return before == await state()

    await eventually(quiet, what="the pipeline to go quiet")
    before = await state()

    records = await read_topic(stack, "civic.tickets")
    assert records
    reporting_duplicates = consumed("reporting", "civic.tickets", "duplicate")
    notify_duplicates = consumed("notify", "civic.tickets", "duplicate")
    try:
        for record in records:
            await producer.send(f"{stack.prefix}civic.tickets", record.value, key=record.key)
        await producer.flush()
    finally:
        await producer.stop()

    await eventually(lambda: drained(stack, "reporting", "civic.tickets"), what="reporting to read every replay")
    await eventually(lambda: drained(stack, "notify", "civic.tickets"), what="notify to read every replay")
    assert consumed("reporting", "civic.tickets", "duplicate") > reporting_duplicates
    assert consumed("notify", "civic.tickets", "duplicate") > notify_duplicates
    counters, views, messages = await state()
    assert counters == before[0], "no figure changed"
    assert views == before[1], "no ticket view changed"
    assert messages == before[2], "no message sent twice"


async def test_an_event_redelivered_after_its_ticket_moved_on_changes_nothing(stack, services, mongo, http):
    """A redelivered complaint whose ticket was signed for meanwhile must neither fail nor rewind the ticket."""
    event = ComplaintReceived(source="12345", data=Complaint(content="公司拖欠员工三个月工资"))
    producer = await _producer(stack)
    topic = f"{stack.prefix}civic.events"
    try:
        await producer.send_and_wait(topic, event.encode(), key=event.partition_key.encode())
        view = await eventually(lambda: _ticket_of(mongo, event.event_id), what="the ticket")
        from civicbus.auth import Role, create_key

        key = {"X-API-Key": await create_key(mongo, "劳保所 经办", Role.unit, view["lead_unit"])}
        signed = await http.post(f"{services['intake'].base_url}/v1/tickets/{view['ticket_id']}/sign-for",
                                 json={}, headers=key)
        assert signed.status_code == 200
        before = consumed("triage", "civic.commands", "duplicate")
        await producer.send_and_wait(topic, event.encode(), key=event.partition_key.encode())
    finally:
        await producer.stop()
    await eventually(lambda: asyncio.sleep(0, result=consumed("triage", "civic.commands", "duplicate") > before),
                     what="triage to recognise the redelivery")
    stored = await mongo["tickets"].find_one({"_id": view["ticket_id"]})
    assert stored["state"] == "acknowledged"
    await asyncio.sleep(1)
    assert (await _ticket_of(mongo, event.event_id))["state"] == "acknowledged", "the view was not rewound"
