"""Scenarios written as ticket stories: each story is one ticket's lifecycle events with fixed times, published
straight to civic.tickets as triage would publish them, so reporting's figures can be worked out by hand."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from pymongo.asynchronous.database import AsyncDatabase

from civicbus.events import EventKind, TicketEvent, TicketState
from tests.factories import make_ticket

from .conftest import Stack, eventually


class TicketStory:
    """One ticket's transitions, each a TicketEvent carrying the ticket as it is after it."""

    def __init__(self, ticket_id: str, source: str, created: datetime, **fields: Any) -> None:
        self.ticket = make_ticket(ticket_id=ticket_id, event_source=source, created_at=created, **fields)
        self.events: list[TicketEvent] = []

    @property
    def id(self) -> str:
        return self.ticket.ticket_id

    def step(self, kind: EventKind, moment: datetime, event: dict[str, Any] | None = None,
             **changes: Any) -> TicketStory:
        """The ticket as it is after ``kind`` (the first event carries the ticket as created)."""
        if self.events or changes:
            self.ticket = self.ticket.model_copy(update={**changes, "version": self.ticket.version + 1})
        self.events.append(TicketEvent(kind=kind, source="civicbus.triage", occurred_at=moment, recorded_at=moment,
                                       ticket=self.ticket, **(event or {})))
        return self

    def signed(self, moment: datetime) -> TicketStory:
        return self.step(EventKind.ticket_acknowledged, moment, state=TicketState.acknowledged, acknowledged_at=moment)

    def resolved(self, moment: datetime) -> TicketStory:
        return self.step(EventKind.ticket_resolved, moment, state=TicketState.resolved, resolved_at=moment)


async def publish_stories(stack: Stack, mongo: AsyncDatabase, stories: list[TicketStory], what: str) -> None:
    """Publish every story's events, keyed by ticket, and wait until the reporting service projected the last."""
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
    await producer.start()
    try:
        for story in stories:
            for event in story.events:
                await producer.send_and_wait(f"{stack.prefix}civic.tickets", event.encode(),
                                             key=event.partition_key.encode())
    finally:
        await producer.stop()
    last_events = {story.id: story.events[-1].event_id for story in stories}

    async def projected() -> bool:
        views = await mongo["ticket_views"].find({"_id": {"$in": list(last_events)}}).to_list(None)
        applied = {view["_id"]: {entry["event_id"] for entry in view.get("timeline", [])} for view in views}
        return all(last in applied.get(ticket_id, set()) for ticket_id, last in last_events.items())

    await eventually(projected, what=f"{what} projected by the reporting service")
