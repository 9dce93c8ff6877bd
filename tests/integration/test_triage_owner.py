"""Triage's ticket owner on the real store: a join read again after a crash is announced as it would have been."""

from __future__ import annotations

import uuid
from collections import defaultdict
from types import SimpleNamespace

import pytest
from pymongo import AsyncMongoClient

from civicbus.district import load_district
from civicbus.events import Alarm, AlarmRaised, EventKind, Location, TicketEvent
from civicbus.kafka import Consumed
from civicbus.settings import DEFAULT_CONFIG_DIR
from civicbus.topics import TICKETS
from services.triage.decide import TriageEngine
from services.triage.handler import TriageHandler
from services.triage.response_level import ResponseLevelState
from services.triage.store import TicketStore
from services.triage.triager import Triager

pytestmark = pytest.mark.integration


class Publisher:
    """Keeps what is published on civic.tickets; fails while ``down`` (a crash between the writes and the publish)."""

    def __init__(self) -> None:
        self.tickets: dict[str, TicketEvent] = {}
        self.down = False

    async def publish(self, topic, events) -> None:
        if self.down and events:
            raise ConnectionError("broker gone")
        if topic is TICKETS:
            self.tickets.update((event.event_id, event) for event in events)


async def _owner(stack, alarms: int):
    engine = TriageEngine(load_district(DEFAULT_CONFIG_DIR))
    client = AsyncMongoClient(stack.mongo_url, tz_aware=True)
    db = client[f"owner_{uuid.uuid4().hex[:8]}"]
    publisher = Publisher()
    level = ResponseLevelState(defaultdict(lambda: None))  # type: ignore[arg-type]
    owner = TriageHandler(engine, TicketStore(db), publisher, level)
    device = f"SMK-{uuid.uuid4().hex[:6]}"
    events = [AlarmRaised(source="iot.smoke", data=Alarm(content="烟感报警", device_id=device, alarm_type="smoke",
                                                         location=Location(lat=30.8399, lon=120.0375)))
              for _ in range(alarms)]
    triager = Triager(lambda: engine, Publisher(), level)
    records = [Consumed(triager.triage(Consumed(event, None)), SimpleNamespace(topic="civic.commands", partition=2,
                                                                              offset=offset))
               for offset, event in enumerate(events)]
    return client, db, publisher, owner, records


def _joined(publisher: Publisher) -> int:
    """What reporting counts: events_joined of each distinct ticket.grouped event."""
    return sum(event.events_joined for event in publisher.tickets.values() if event.kind is EventKind.ticket_grouped)


async def test_a_join_read_again_after_a_crash_is_announced_with_its_count(stack):
    client, db, publisher, owner, records = await _owner(stack, 11)
    try:
        await owner(records[:1])  # the first alarm opens the ticket
        publisher.down = True
        with pytest.raises(ConnectionError):
            await owner(records[1:])  # ten join; the announcement never leaves
        publisher.down = False
        await owner(records[1:])  # read again: the joins are found applied
        await owner(records[1:])  # and once more, as a second crash would
        assert _joined(publisher) == 10, "reporting counts each repeat exactly once"
        assert await db["tickets"].count_documents({}) == 1
        assert (await db["tickets"].find_one({}))["event_count"] == 11
    finally:
        await client.drop_database(db.name)
        await client.close()


async def test_joins_lost_with_a_crash_are_announced_with_the_next_ones_when_batches_differ(stack):
    """Read again, the batch may hold more than before: the joins applied before the crash and the new ones are
    announced together (announcing only the new ones lost the others' count)."""
    client, db, publisher, owner, records = await _owner(stack, 16)
    try:
        await owner(records[:1])
        publisher.down = True
        with pytest.raises(ConnectionError):
            await owner(records[1:11])
        publisher.down = False
        await owner(records[1:16])  # ten found applied, five new
        assert _joined(publisher) == 15
    finally:
        await client.drop_database(db.name)
        await client.close()


async def test_a_ticket_made_before_a_crash_gets_the_joins_the_crash_lost(stack, monkeypatch):
    """The batch made the ticket, then died before its group pointed at it and before joining the rest of the storm:
    read again, the ticket exists already; its group must point at it and the joins be made (they were skipped as
    'applied then', and the next alarms opened a second ticket)."""
    import services.triage.store as store_module

    client, db, publisher, owner, records = await _owner(stack, 8)
    upsert = store_module.upsert_by_id

    async def crash(*args, **kwargs):
        monkeypatch.setattr(store_module, "upsert_by_id", upsert)  # only once
        raise ConnectionError("died after making the ticket")

    monkeypatch.setattr(store_module, "upsert_by_id", crash)
    try:
        with pytest.raises(ConnectionError):
            await owner(records[:6])
        await owner(records[:6])
        await owner(records[6:])
        (ticket,) = await db["tickets"].find({}).to_list(None)
        assert ticket["event_count"] == 8
        assert _joined(publisher) == 7
    finally:
        await client.drop_database(db.name)
        await client.close()
