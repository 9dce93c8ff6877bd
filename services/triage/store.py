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

The store is the one door to ticket state: the planner's writes (made, joined, pointed), the command handler's
transitions, and the deadline index kept in step with both (``deadline_buckets``: each deadline filed in its minute
bucket, in the share of the civic.commands partition that owns the ticket, read by the overdue sweeper).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from civicbus.events import Ticket
from civicbus.mongo import bulk_write, find_by_ids, insert_missing, upsert_by_id
from civicbus.scheduling import MinuteBuckets
from civicbus.topics import COMMANDS

from .planner import Pointer, StoredTicket

TICKETS_COLLECTION = "tickets"
GROUPS_COLLECTION = "ticket_groups"
DEADLINE_BUCKETS = "deadline_buckets"
SWEEP_STATE = "settings"
SWEEP_STATE_ID = "overdue_sweep"
INTERNAL_FIELDS = ("_id", "group_offsets", "repeat_event_ids", "recent_event_ids", "applied_commands", "unannounced")
JOINED_FIELDS = {"event_count", "last_event_at", "repeats"}
"""The ticket's fields that joins change; only the events' consumer writes them (commands never set them)."""
NOT_SET_BY_COMMANDS = JOINED_FIELDS | {"ticket_id", "version", "caller_phone"}


def deadline_buckets(db: AsyncDatabase) -> MinuteBuckets:
    # One bucket per minute and civic.commands partition: the partition's owner files its tickets' deadlines.
    return MinuteBuckets(db[DEADLINE_BUCKETS], db[SWEEP_STATE], SWEEP_STATE_ID, "swept_until",
                         writers=COMMANDS.partitions)


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
        self._deadlines = deadline_buckets(db)

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

    async def apply_commands(self, transitions: Mapping[str, tuple[Ticket, Sequence[str]]]) -> None:
        """Write each ticket as its applied commands (ticket id → the state after them, the command ids) left it,
        once: the command ids are remembered in the ticket, so a batch read again does not apply them twice."""
        await bulk_write(self._tickets, [
            UpdateOne({"_id": ticket_id},
                      {"$set": {name: value for name, value in ticket.model_dump(mode="python").items()
                                if name not in NOT_SET_BY_COMMANDS},
                       "$inc": {"version": len(command_ids)},
                       "$addToSet": {"applied_commands": {"$each": list(command_ids)}}})
            for ticket_id, (ticket, command_ids) in transitions.items()
        ])

    async def file_deadlines(self, tickets: Iterable[tuple[Ticket, int]]) -> None:
        """File each ticket's deadlines in their minute buckets (idempotent), in the share of the civic.commands
        partition whose owner writes the ticket (given with each ticket)."""
        by_writer: dict[int, list[Ticket]] = defaultdict(list)
        for ticket, partition in tickets:
            by_writer[partition].append(ticket)
        for partition, owned in by_writer.items():
            await self._deadlines.file(
                ((due, f"{ticket.ticket_id}|{deadline}") for ticket in owned
                 for deadline, due in (("sign_for", ticket.sign_for_due), ("resolve", ticket.resolve_due))
                 if due is not None),
                datetime.now(UTC),
                writer=partition,
            )
