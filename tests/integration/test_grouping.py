"""Grouping through the real broker and store: an alarm storm makes one ticket; repeated complaints are 重复件."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaProducer

from civicbus.events import Alarm, AlarmRaised, Location

from civicbus.mongo import counter_value

from .conftest import eventually, local_day

pytestmark = pytest.mark.integration

STORM = 3000


async def _view(mongo, **query) -> dict | None:
    return await mongo["ticket_views"].find_one(query)


async def test_an_alarm_storm_from_one_sensor_makes_one_ticket(stack, services, mongo, sink):
    device = f"SMK-{uuid.uuid4().hex[:6]}"
    other_device = f"SMK-{uuid.uuid4().hex[:6]}"
    where = Location(lat=30.8399, lon=120.0375)  # 文昌社区
    storm = [
        AlarmRaised(source="iot.smoke", data=Alarm(content="烟感报警：学府苑2幢", severity="high", device_id=device,
                                                   alarm_type="smoke", location=where))
        for _ in range(STORM)
    ]
    other = AlarmRaised(source="iot.smoke", data=Alarm(content="烟感报警：文昌阁", device_id=other_device,
                                                       alarm_type="smoke", location=where))
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        topic = f"{stack.prefix}civic.events"
        futures = [await producer.send(topic, event.encode(), key=event.partition_key.encode())
                   for event in [*storm, other]]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()

    async def storm_gathered() -> dict | None:
        view = await _view(mongo, fingerprint=f"{device}|smoke")
        return view if view and view.get("event_count") == STORM else None

    view = await eventually(storm_gathered, timeout=60, what=f"{STORM} alarms gathered into one ticket")
    assert view["source_event_id"] == storm[0].event_id, "the first alarm opened the ticket"
    assert await mongo["tickets"].count_documents({"fingerprint": f"{device}|smoke"}) == 1
    assert (view["lead_unit"], view["category"]) == ("wenchang", "safety.fire")
    assert [step["kind"] for step in view["timeline"]] == ["ticket.routed"], "repeats are counts, not steps"
    assert view["last_event_at"] >= view["created_at"]

    other_view = await eventually(lambda: _view(mongo, fingerprint=f"{other_device}|smoke"), what="the other sensor")
    assert other_view["ticket_id"] != view["ticket_id"] and other_view["event_count"] == 1

    # The unit heard of the storm once, not 3,000 times; the repeats are counted for the unit.
    async def repeats_counted() -> dict | None:
        cells = await mongo["report_counters"].find({"day": local_day(view["created_at"]), "unit": "wenchang"}
                                                    ).to_list(None)
        return cells if sum(counter_value(cell, "repeats") for cell in cells) == STORM - 1 else None

    await eventually(repeats_counted, what="the storm's repeats counted for 文昌社区")
    assert len([m for m in sink.to("/robot/wenchang") if m.body["ticket_id"] == view["ticket_id"]]) == 1


async def test_a_redelivered_storm_counts_nothing_twice(stack, services, mongo):
    device = f"GAS-{uuid.uuid4().hex[:6]}"
    alarms = [AlarmRaised(source="iot.gas", data=Alarm(content="燃气泄漏报警", device_id=device, alarm_type="gas",
                                                       address="东湖路金色家园5幢")) for _ in range(50)]
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        topic = f"{stack.prefix}civic.events"
        for event in alarms:
            await producer.send(topic, event.encode(), key=event.partition_key.encode())
        await producer.flush()

        async def gathered() -> dict | None:
            ticket = await mongo["tickets"].find_one({"fingerprint": f"{device}|gas"})
            return ticket if ticket and ticket["event_count"] == 50 else None

        await eventually(gathered, what="50 gas alarms in one ticket")
        # The same 50 events again (same ids): at-least-once delivery upstream, or a replay.
        for event in alarms:
            await producer.send(topic, event.encode(), key=event.partition_key.encode())
        marker = AlarmRaised(source="iot.gas", data=Alarm(content="燃气泄漏报警", device_id=device, alarm_type="gas"))
        await producer.send_and_wait(topic, marker.encode(), key=marker.partition_key.encode())
    finally:
        await producer.stop()

    async def marker_joined() -> dict | None:
        ticket = await mongo["tickets"].find_one({"fingerprint": f"{device}|gas"})
        return ticket if ticket and ticket["event_count"] > 50 else None

    ticket = await eventually(marker_joined, what="the new alarm after the replayed ones")
    assert ticket["event_count"] == 51, "the replayed alarms were recognised; only the new one counted"
    assert await mongo["tickets"].count_documents({"fingerprint": f"{device}|gas"}) == 1


async def test_repeated_complaints_about_one_place_are_linked_as_repeats(http, services, mongo):
    intake = services["intake"].base_url
    place = "星河湾"
    bodies = [
        {"content": "小区楼下烧烤店油烟很大，熏得开不了窗", "address": f"{place}3幢", "external_id": f"A-{uuid.uuid4().hex[:4]}"},
        {"content": "又来投诉：油烟问题还是没人管", "address": f"{place}小区", "external_id": f"B-{uuid.uuid4().hex[:4]}"},
        {"content": "烧烤油烟扰民严重", "address": place, "external_id": f"C-{uuid.uuid4().hex[:4]}"},
    ]
    accepted = []
    for body in bodies:
        response = await http.post(f"{intake}/v1/complaints", json=body)
        assert response.status_code == 202
        accepted.append(response.json()["event_id"])
        await asyncio.sleep(0.3)  # in order, as a citizen would call again

    async def linked() -> dict | None:
        view = await _view(mongo, source_event_id=accepted[0])
        return view if view and view.get("event_count") == 3 else None

    view = await eventually(linked, what="the two later complaints linked to the first ticket")
    assert view["repeat_key"].endswith(f"/{place}")
    assert [repeat["external_id"] for repeat in view["repeats"]] == [bodies[1]["external_id"], bodies[2]["external_id"]]
    assert await mongo["tickets"].count_documents({"repeat_key": view["repeat_key"]}) == 1

    # Another category at the same place is another problem: its own ticket.
    response = await http.post(f"{intake}/v1/complaints", json={"content": "门口占道经营，摊贩堵路", "address": place})
    other_event = response.json()["event_id"]

    async def explain() -> str:
        ticket = await mongo["tickets"].find_one({"source_event_id": other_event})
        linked = await mongo["tickets"].find_one({"repeat_event_ids": other_event})
        return f"triage ticket: {ticket and ticket['ticket_id']}, linked to: {linked and linked['ticket_id']}"

    other = await eventually(lambda: _view(mongo, source_event_id=other_event), what="other ticket", explain=explain)
    assert other["ticket_id"] != view["ticket_id"] and other["event_count"] == 1
