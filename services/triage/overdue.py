"""Overdue detection (超期): one ``ticket.overdue`` event per ticket per missed deadline, however many triage
replicas sweep and however often they restart. The sweep finds missed deadlines and sends a ``mark_overdue``
command; the ticket's one writer, the command handler, applies it and publishes the event.

Deadlines are filed by the ticket store (store.py) in minute buckets (``deadline_buckets``, ``_id`` = the minute, e.g. ``202611251030``), so a
sweep reads the few buckets since the last sweep by ``_id`` instead of scanning every ticket. A missed deadline is
claimed in ``overdue_claims`` (``_id`` = ticket, deadline and due time) before it is published: of several
replicas only the one whose write created the claim publishes. A claim not yet marked published (a crash between
the two) is sent again by a later sweep under the same command id, which the command handler applies once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from civicbus.events import PENDING_STATES, Action, Actor, EventKind, Ticket, TicketCommand, derived_event_id
from civicbus.kafka import Publisher
from civicbus.logs import get_logger
from civicbus.metrics import TICKETS_OVERDUE
from civicbus.mongo import bulk_write, find_by_ids, insert_missing
from civicbus.scheduling import OVERLAP, run_periodically
from civicbus.topics import COMMANDS

from .store import TicketStore, deadline_buckets

log = get_logger(__name__)
CLAIMS = "overdue_claims"


class OverdueSweeper:
    def __init__(self, db: AsyncDatabase, store: TicketStore, publisher: Publisher,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC), interval: float = 15.0) -> None:
        self._db = db
        self._buckets = deadline_buckets(db)
        self._store = store
        self._publisher = publisher
        self._clock = clock
        self._interval = interval

    async def sweep(self, now: datetime | None = None) -> int:
        """Publish what became overdue up to ``now``; returns how many events this sweep published."""
        now = now or self._clock()
        candidates = await self._buckets.entries_due(now)
        tickets = await self._store.get_many({entry.split("|", 1)[0] for entry in candidates})
        due: dict[str, tuple[Ticket, str, datetime]] = {}
        for entry in candidates:
            ticket_id, deadline = entry.split("|", 1)
            stored = tickets.get(ticket_id)
            if stored is None:
                continue
            ticket = stored.ticket
            moment = ticket.due(deadline)
            if moment is None or moment > now or ticket.state not in PENDING_STATES[deadline] or deadline in ticket.overdue:
                continue  # not due yet, done in time, or moved (an extension) to another bucket
            due[f"{ticket_id}|{deadline}|{moment.isoformat()}"] = (ticket, deadline, moment)
        created = await insert_missing(self._db[CLAIMS], {claim: {"published": False, "claimed_at": now}
                                                          for claim in due})
        unpublished = await find_by_ids(self._db[CLAIMS], [claim for claim in due if claim not in created])
        mine = created | {claim for claim, document in unpublished.items()
                          if not document.get("published") and document["claimed_at"] < now - OVERLAP / 5}
        commands = [self._command(*due[claim]) for claim in sorted(mine)]
        await self._publisher.publish(COMMANDS, commands)
        for claim in mine:
            TICKETS_OVERDUE.labels(due[claim][1]).inc()
        await bulk_write(self._db[CLAIMS], [UpdateOne({"_id": claim}, {"$set": {"published": True}}) for claim in mine])
        await self._buckets.ticked(now)
        return len(commands)

    @staticmethod
    def _command(ticket: Ticket, deadline: str, moment: datetime) -> TicketCommand:
        """The ticket's one writer (the command handler) marks it overdue and publishes ``ticket.overdue``; the id
        names the ticket, the deadline and its time, so a command sent twice is applied once."""
        return TicketCommand(
            event_id=derived_event_id(ticket.ticket_id, EventKind.ticket_overdue, deadline, moment.isoformat()),
            source="civicbus.triage",
            occurred_at=moment,
            correlation_id=ticket.source_event_id,
            ticket_id=ticket.ticket_id,
            action=Action.mark_overdue,
            actor=Actor(name="civicbus.triage", role="system"),
            deadline=deadline,  # type: ignore[arg-type]
        )

    async def run(self, _: Any = None) -> None:
        await run_periodically(self.sweep, self._interval, "overdue sweep (tickets published)")
