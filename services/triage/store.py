"""Triage's tickets in MongoDB: the writer's copy of every ticket (collection ``tickets``)."""

from __future__ import annotations

from collections.abc import Sequence

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from civicbus.events import Ticket
from civicbus.mongo import insert_missing

TICKETS_COLLECTION = "tickets"


class TicketStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self._tickets = db[TICKETS_COLLECTION]

    async def ensure_indexes(self) -> None:
        await self._tickets.create_index([("source_event_id", ASCENDING)])
        await self._tickets.create_index([("state", ASCENDING), ("lead_unit", ASCENDING)])

    async def create(self, tickets: Sequence[Ticket]) -> tuple[list[Ticket], set[str]]:
        """Insert the tickets that do not exist yet, in one bulk write.

        Returns every ticket as stored — for one that existed already (a redelivered event), the stored version,
        so what is published again is what was published first — and how many existed.
        """
        if not tickets:
            return [], set()
        created = await insert_missing(
            self._tickets, {ticket.ticket_id: ticket.model_dump(mode="python") for ticket in tickets}
        )
        existing_ids = [ticket.ticket_id for ticket in tickets if ticket.ticket_id not in created]
        stored: dict[str, Ticket] = {}
        if existing_ids:
            async for document in self._tickets.find({"_id": {"$in": existing_ids}}):
                document.pop("_id")
                stored[document["ticket_id"]] = Ticket.model_validate(document)
        return [stored.get(ticket.ticket_id, ticket) for ticket in tickets], set(existing_ids)

    async def get(self, ticket_id: str) -> Ticket | None:
        document = await self._tickets.find_one({"_id": ticket_id})
        if document is None:
            return None
        document.pop("_id")
        return Ticket.model_validate(document)
