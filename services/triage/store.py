"""Triage's tickets in MongoDB: the writer's copy of every ticket (``tickets``) and the index of open problems
(``ticket_groups``: an alarm fingerprint or a complaint's category and place → the ticket gathering it).

Every access is by ``_id`` (see civicbus.mongo). Writes are safe without transactions because each group and each
ticket has one writer: everything that touches them travels on ``civic.commands`` keyed by the shard of their
problem, so one triage consumer owns them, reads them, plans (``planner.py``) and writes what it planned. A ticket
keeps, beside itself, what makes its joins idempotent: the alarm ids it remembers and the offset each partition
reached (``recent_event_ids``, ``group_offsets``), the 重复件 it links (``repeat_event_ids``) and the count of joins
not announced yet (``unannounced``) — written in the same document as the joins, so a batch read again after a crash
finds what it already joined, and the next announcement (``ticket.grouped``) counts every join since the last one
announced, whatever the batches look like the second time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from civicbus.events import Ticket
from civicbus.mongo import bulk_write, find_by_ids, insert_missing, upsert_by_id

from .planner import Pointer, StoredTicket

TICKETS_COLLECTION = "tickets"
GROUPS_COLLECTION = "ticket_groups"
INTERNAL_FIELDS = ("_id", "group_offsets", "repeat_event_ids", "recent_event_ids", "applied_commands", "unannounced")
JOINED_FIELDS = {"event_count", "last_event_at", "repeats"}
"""The ticket's fields that joins change; only the events' consumer writes them (commands never set them)."""


def _stored(document: dict[str, Any]) -> StoredTicket:
    return StoredTicket(
        Ticket.model_validate({key: value for key, value in document.items() if key not in INTERNAL_FIELDS}),
        {partition: int(offset) for partition, offset in document.get("group_offsets", {}).items()},
        set(document.get("repeat_event_ids", [])),
        list(document.get("recent_event_ids", [])),
        set(document.get("applied_commands", [])),
        int(document.get("unannounced", 0)),
    )


def _join_bookkeeping(stored: StoredTicket) -> dict[str, Any]:
    return {
        "group_offsets": stored.group_offsets,
        "repeat_event_ids": sorted(stored.repeat_event_ids),
        "recent_event_ids": stored.recent_event_ids,
        "unannounced": stored.unannounced,
    }


class TicketStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self.db = db
        self._tickets = db[TICKETS_COLLECTION]
        self._groups = db[GROUPS_COLLECTION]

    async def insert(self, tickets: Sequence[StoredTicket]) -> set[str]:
        """Make the tickets (as their batch's joins leave them) that do not exist yet; returns the ids made."""
        return await insert_missing(self._tickets, {
            stored.ticket.ticket_id: {**stored.ticket.model_dump(mode="python"), **_join_bookkeeping(stored)}
            for stored in tickets
        })

    async def point(self, pointers: Mapping[str, Pointer]) -> None:
        """Point each group at its ticket."""
        await upsert_by_id(self._groups, {group: {"$set": {"ticket_id": pointer.ticket_id, "since": pointer.since}}
                                          for group, pointer in pointers.items()})

    async def get_many(self, ticket_ids: Iterable[str]) -> dict[str, StoredTicket]:
        return {ticket_id: _stored(document) for ticket_id, document in (await find_by_ids(self._tickets, ticket_ids)).items()}

    async def tickets_of(self, groups: Iterable[str]) -> dict[str, StoredTicket]:
        """group → the latest ticket of its problem (open or not), for the groups that have one."""
        pointers = await find_by_ids(self._groups, groups)
        tickets = await self.get_many(pointer["ticket_id"] for pointer in pointers.values())
        return {group: tickets[pointer["ticket_id"]] for group, pointer in pointers.items()
                if pointer["ticket_id"] in tickets}

    async def update_joins(self, tickets: Sequence[StoredTicket]) -> None:
        """Write the joins of stored tickets as planned: computed by the tickets' one writer from what it read, so
        the same plan written twice leaves the same document."""
        await bulk_write(self._tickets, [
            UpdateOne({"_id": stored.ticket.ticket_id},
                      {"$set": {**stored.ticket.model_dump(mode="python", include=JOINED_FIELDS),
                                **_join_bookkeeping(stored)}})
            for stored in tickets
        ])

    async def announced(self, ticket_ids: Iterable[str]) -> None:
        """The tickets' joins were announced: the next announcement counts from here. A crash before this write
        announces them again under the same event id (it names the state reached), which consumers skip."""
        await bulk_write(self._tickets, [UpdateOne({"_id": ticket_id}, {"$set": {"unannounced": 0}})
                                         for ticket_id in ticket_ids])
