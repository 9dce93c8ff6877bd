"""Intake's other front doors, through the real broker to a routed ticket: the civic.intake topic (valid, malformed
and redelivered records) and upstream 12345 work orders mapped by configuration."""

from __future__ import annotations

import uuid

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from civicbus.events import DeadLetter

from .conftest import eventually, read_topic

pytestmark = pytest.mark.integration


async def _routed(mongo, event_id: str) -> dict:
    async def find() -> dict | None:
        ticket = await mongo["tickets"].find_one({"source_event_id": event_id})
        return ticket if ticket and ticket["state"] == "routed" else None

    return await eventually(find, what=f"the routed ticket of event {event_id}")


async def _send(stack, key: bytes, *values: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(f"{stack.prefix}civic.intake", value, key=key)
    finally:
        await producer.stop()


async def test_events_published_on_the_intake_topic_are_admitted_and_the_malformed_dead_lettered(stack, services, mongo):
    key = f"upstream-{uuid.uuid4().hex[:6]}".encode()
    marker = uuid.uuid4().hex[:6]
    good = {"type": "complaint", "source": "wangge-app", "idempotency_key": f"k-{marker}",
            "content": f"龙潭水库下游小河有人偷排废水，河水发黑发臭 {marker}", "caller_phone": "13912340000"}
    alarm_without_device = {"type": "alarm", "source": "iot", "content": "烟感", "alarm_type": "smoke"}
    too_long = {"type": "complaint", "source": "wangge-app", "content": "长" * 6000}
    unmappable = {"type": "work_order", "platform": "hotline12345", "order": {"sqnr": "没有工单编号"}}
    await _send(stack, key, b'{"type": "complaint", "content": ', orjson.dumps(alarm_without_device),
                orjson.dumps(too_long), orjson.dumps(unmappable), orjson.dumps(good), orjson.dumps(good))

    async def admitted() -> list[dict]:
        # Other tests put malformed records on civic.events on purpose: look only at this test's.
        records = await read_topic(stack, "civic.events")
        return [orjson.loads(record.value) for record in records if marker.encode() in (record.value or b"")]

    events = await eventually(admitted, what="the valid record on civic.events")
    ticket = await _routed(mongo, events[0]["event_id"])
    assert ticket["category"].startswith("environment")
    assert events[0]["source"] == "wangge-app" and events[0]["data"]["caller_phone"] == "13912340000"
    assert {event["event_id"] for event in events} == {events[0]["event_id"]}, "the resent record is the same event"
    assert await mongo["tickets"].count_documents({"source_event_id": events[0]["event_id"]}) == 1

    async def dead_letters() -> list[DeadLetter]:
        records = await read_topic(stack, "civic.dlq")
        letters = [DeadLetter.model_validate_json(record.value) for record in records if record.key == key]
        return letters if len(letters) == 4 else []

    letters = sorted(await eventually(dead_letters, what="four dead letters"), key=lambda letter: letter.original_offset)
    assert all(letter.service == "intake" and letter.original_topic == f"{stack.prefix}civic.intake" for letter in letters)
    broken, no_device, long_content, no_number = letters
    assert broken.error_kind == "invalid" and "JSON" in broken.reason
    assert no_device.error_kind == "invalid" and "device_id" in no_device.reason
    assert long_content.error_kind == "invalid" and "content" in long_content.reason and "5000" in long_content.reason
    assert no_number.error_kind == "processing" and "gdbh" in no_number.reason


ORDER = {
    "lyqd": "01",
    "ldrxm": "李女士",
    "ldhm": "13912345678",
    "sfzh": "330102199001011234",
    "sxfl": {"dm": "0303", "mc": "扬尘"},
    "fsdz": "南塘老街",
    "sqnr": "工地夜间施工，渣土车进出扬尘很大",
    "blsx": "2026-12-31 18:00:00",
}


async def test_a_12345_work_order_is_mapped_by_configuration_and_routed(http, services, mongo, stack):
    number = f"ZJ12345-{uuid.uuid4().hex[:8]}"
    intake = services["intake"].base_url
    response = await http.post(f"{intake}/v1/upstream/hotline12345/work-orders", json={**ORDER, "gdbh": number})
    assert response.status_code == 202, response.text
    event_id = response.json()["event_id"]
    resent = await http.post(f"{intake}/v1/upstream/hotline12345/work-orders", json={**ORDER, "gdbh": number})
    assert resent.json()["event_id"] == event_id, "a resent work order is the same event"

    ticket = await _routed(mongo, event_id)
    assert ticket["external_id"] == number and ticket["event_source"] == "12345"
    assert ticket["category"] == "environment.dust" and ticket["explanation"]["category"]["method"] == "upstream_code"
    assert ticket["area"] == "nantang"
    assert ticket["caller_phone"] == "13912345678", "kept on the ticket for the unit's 回访 callback"

    records = await read_topic(stack, "civic.events")
    event = next(orjson.loads(record.value) for record in records if event_id.encode() in (record.value or b""))
    assert event["data"]["channel"] == "12345电话" and event["data"]["due_at"] == "2026-12-31T18:00:00+08:00"
    assert not any(b"330102199001011234" in (record.value or b"") for record in records), "the ID number is never published"

    # The same work order handed in through Kafka is the same event again: no second ticket.
    order = {"type": "work_order", "platform": "hotline12345", "order": {**ORDER, "gdbh": number}}
    await _send(stack, number.encode(), orjson.dumps(order))
    refused = await http.post(f"{intake}/v1/upstream/hotline12345/work-orders", json={**ORDER, "lyqd": "01"})
    assert refused.status_code == 422 and any("gdbh" in problem for problem in refused.json()["detail"])
    unknown = await http.post(f"{intake}/v1/upstream/elsewhere/work-orders", json=ORDER)
    assert unknown.status_code == 404

    async def republished() -> bool:
        records = await read_topic(stack, "civic.events")
        return sum(f'"event_id":"{event_id}"'.encode() in (record.value or b"") for record in records) >= 3

    await eventually(republished, what="the Kafka copy of the work order admitted as the same event")
    assert await mongo["tickets"].count_documents({"source_event_id": event_id}) == 1
