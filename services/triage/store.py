"""Triage's tickets in MongoDB: the writer's copy of every ticket (``tickets``) and the index of open problems
(``ticket_groups``: an alarm fingerprint or a complaint's category and place → the ticket gathering it).

Every access is by ``_id`` (see civicbus.mongo). Writes are safe without transactions because each group and each
ticket has one writer: everything that touches them travels on ``civic.commands`` keyed by the shard of their
problem, so one triage consumer owns them. The update that joins alarms to a ticket also records the partition's
offset it reached (``group_offsets``) and adds to the count of joins not announced yet (``unannounced``) in the same
document, so a batch read again after a crash skips what it already joined, and the next announcement
(``ticket.grouped``) counts every join since the last one announced — whatever the batches look like the second time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from civicbus.events import OPEN_STATES, Repeat, Ticket
from civicbus.mongo import bulk_write, find_by_ids, insert_missing, upsert_by_id

from .groups import alarm_group, repeat_group

TICKETS_COLLECTION = "tickets"
GROUPS_COLLECTION = "ticket_groups"
INTERNAL_FIELDS = ("_id", "group_offsets", "repeat_event_ids", "recent_event_ids", "applied_commands", "unannounced")
RECENT_ALARM_IDS = 1000
"""How many of the latest alarm ids an alarm ticket remembers: the same alarm sent again by its platform (a retry
with the same id, at a new offset) within that many repeats is recognised. Older repeats are only counted."""


@dataclass
class StoredTicket:
    ticket: Ticket
    group_offsets: dict[str, int] = field(default_factory=dict)
    repeat_event_ids: set[str] = field(default_factory=set)
    recent_event_ids: list[str] = field(default_factory=list)
    applied_commands: set[str] = field(default_factory=set)
    unannounced: int = 0  # events joined since the last announcement (ticket.grouped) was published

    def holds(self, event_id: str) -> bool:
        """Whether this event made or already joined the ticket."""
        return (
            event_id == self.ticket.source_event_id
            or event_id in self.repeat_event_ids
            or event_id in self.recent_event_ids
        )

    @property
    def is_open(self) -> bool:
        return self.ticket.state in OPEN_STATES


@dataclass
class AlarmJoin:
    """Alarms joining one open ticket in one batch."""

    ticket_id: str
    recent: list[str]  # the ticket's remembered alarm ids, to which this batch's are added
    offsets: dict[str, int] = field(default_factory=dict)  # partition → highest offset joined
    count: int = 0
    last_at: datetime | None = None


def _stored(document: dict[str, Any]) -> StoredTicket:
    return StoredTicket(
        Ticket.model_validate({key: value for key, value in document.items() if key not in INTERNAL_FIELDS}),
        {partition: int(offset) for partition, offset in document.get("group_offsets", {}).items()},
        set(document.get("repeat_event_ids", [])),
        list(document.get("recent_event_ids", [])),
        set(document.get("applied_commands", [])),
        int(document.get("unannounced", 0)),
    )


class TicketStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self.db = db
        self._tickets = db[TICKETS_COLLECTION]
        self._groups = db[GROUPS_COLLECTION]

    async def create(
        self, tickets: Sequence[Ticket], group_offsets: dict[str, dict[str, int]] | None = None
    ) -> tuple[list[Ticket], set[str]]:
        """Insert the tickets that do not exist yet and point their groups at them.

        Returns every ticket as stored — for one that existed already (a redelivered event), the stored version,
        so what is published again is what was published first — and the ids of those that existed.
        """
        if not tickets:
            return [], set()
        offsets = group_offsets or {}
        created = await insert_missing(
            self._tickets,
            {
                ticket.ticket_id: {
                    **ticket.model_dump(mode="python"),
                    "group_offsets": offsets.get(ticket.ticket_id, {}),
                    "repeat_event_ids": [],
                    "recent_event_ids": [ticket.source_event_id] if ticket.fingerprint else [],
                }
                for ticket in tickets
            },
        )
        # A ticket made now takes over its groups; one that existed (made before a crash, maybe before its groups
        # pointed at it) claims only a group that points nowhere — a later ticket of the group keeps it.
        groups = {
            group: {"$set" if ticket.ticket_id in created else "$setOnInsert":
                    {"ticket_id": ticket.ticket_id, "since": ticket.created_at}}
            for ticket in tickets
            for group in self.groups_of(ticket)
        }
        if groups:
            await upsert_by_id(self._groups, groups)
        existing_ids = [ticket.ticket_id for ticket in tickets if ticket.ticket_id not in created]
        stored = await self.get_many(existing_ids)
        return [stored[ticket.ticket_id].ticket if ticket.ticket_id in stored else ticket for ticket in tickets], set(
            existing_ids
        )

    @staticmethod
    def groups_of(ticket: Ticket) -> list[str]:
        groups = []
        if ticket.fingerprint:
            groups.append(alarm_group(ticket.fingerprint))
        if ticket.repeat_key:
            groups.append(repeat_group(ticket.repeat_key))
        return groups

    async def get_many(self, ticket_ids: Iterable[str]) -> dict[str, StoredTicket]:
        return {ticket_id: _stored(document) for ticket_id, document in (await find_by_ids(self._tickets, ticket_ids)).items()}

    async def tickets_of(self, groups: Iterable[str]) -> dict[str, StoredTicket]:
        """group → the latest ticket of its problem (open or not), for the groups that have one."""
        pointers = await find_by_ids(self._groups, groups)
        tickets = await self.get_many(pointer["ticket_id"] for pointer in pointers.values())
        return {group: tickets[pointer["ticket_id"]] for group, pointer in pointers.items()
                if pointer["ticket_id"] in tickets}

    async def join_alarms(self, joins: Sequence[AlarmJoin]) -> None:
        """Add each join's alarms to its ticket and record the partition's offset reached, in one update each."""
        await bulk_write(
            self._tickets,
            [
                UpdateOne(
                    {"_id": join.ticket_id},
                    {
                        "$inc": {"event_count": join.count, "unannounced": join.count},
                        "$max": {
                            "last_event_at": join.last_at,
                            **{f"group_offsets.{partition}": offset for partition, offset in join.offsets.items()},
                        },
                        # Computed by the ticket's one writer from what it read ($push's $slice is ignored by
                        # FerretDB v1).
                        "$set": {"recent_event_ids": join.recent[-RECENT_ALARM_IDS:]},
                    },
                )
                for join in joins
            ],
        )

    async def join_repeats(self, repeats: Sequence[tuple[str, Repeat]]) -> None:
        """Link complaints to open tickets as 重复件 (the caller skipped those the ticket holds already)."""
        await bulk_write(
            self._tickets,
            [
                UpdateOne(
                    {"_id": ticket_id},
                    {
                        "$inc": {"event_count": 1, "unannounced": 1},
                        "$max": {"last_event_at": repeat.at},
                        "$push": {"repeats": repeat.model_dump(mode="python")},
                        "$addToSet": {"repeat_event_ids": repeat.event_id},
                    },
                )
                for ticket_id, repeat in repeats
            ],
        )

    async def announced(self, ticket_ids: Iterable[str]) -> None:
        """The tickets' joins were announced: the next announcement counts from here. A crash before this write
        announces them again under the same event id (it names the state reached), which consumers skip."""
        await bulk_write(self._tickets, [UpdateOne({"_id": ticket_id}, {"$set": {"unannounced": 0}})
                                         for ticket_id in ticket_ids])
