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


async def test_a_join_read_again_after_a_crash_is_announced_with_its_count(stack):
    engine = TriageEngine(load_district(DEFAULT_CONFIG_DIR))
    client = AsyncMongoClient(stack.mongo_url, tz_aware=True)
    db = client[f"owner_{uuid.uuid4().hex[:8]}"]
    publisher = Publisher()
    level = ResponseLevelState(defaultdict(lambda: None))  # type: ignore[arg-type]
    owner = TriageHandler(engine, TicketStore(db), publisher, level)
    triager_out = Publisher()
    device = f"SMK-{uuid.uuid4().hex[:6]}"
    alarms = [AlarmRaised(source="iot.smoke", data=Alarm(content="烟感报警", device_id=device, alarm_type="smoke",
                                                         location=Location(lat=30.8399, lon=120.0375)))
              for _ in range(11)]
    triaged = [Triager(lambda: engine, triager_out, level).triage(Consumed(alarm, None)) for alarm in alarms]
    records = [Consumed(event, SimpleNamespace(topic="civic.commands", partition=2, offset=offset))
               for offset, event in enumerate(triaged)]
    try:
        await owner(records[:1])  # the first alarm opens the ticket
        publisher.down = True
        with pytest.raises(ConnectionError):
            await owner(records[1:])  # ten join; the announcement never leaves
        publisher.down = False
        await owner(records[1:])  # read again: the joins are found applied
        await owner(records[1:])  # and once more, as a second crash would
        grouped = [event for event in publisher.tickets.values() if event.kind is EventKind.ticket_grouped]
        assert sum(event.events_joined for event in grouped) == 10, "reporting counts each repeat exactly once"
        assert grouped[-1].ticket.event_count == 11
        assert await db["tickets"].count_documents({}) == 1
    finally:
        await client.drop_database(db.name)
        await client.close()
