"""Read models (读模型), kept current idempotently from ``civic.tickets`` and ``civic.notifications``.

``ticket_views``: each ticket as it is now, with its timeline and its notifications. ``counters``: one document
per scope (district, unit, area, category) and day, holding counts. Each event is applied to a document at most
once: the update that applies it also records its id in the document, in one atomic single-document write (see
:func:`civicbus.mongo.apply_increments`), so a replayed event changes nothing and no figure is counted twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from pymongo import ASCENDING, DESCENDING, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from civicbus.events import EventKind, NotificationResult, TicketEvent
from civicbus.mongo import Increment, apply_increments, insert_missing

TICKET_VIEWS = "ticket_views"
COUNTERS = "counters"


def counter_id(scope: str, key: str, day: str) -> str:
    return f"{scope}:{key}:{day}"


def _increment(scope: str, key: str, day: str, token: str, **amounts: int) -> Increment:
    return Increment(
        doc_id=counter_id(scope, key, day),
        token=token,
        amounts=amounts,
        on_insert={"scope": scope, "key": key, "day": day},
    )


def ticket_increments(event: TicketEvent, day: str) -> list[Increment]:
    ticket = event.ticket
    token = event.event_id
    increments = [_increment("district", "all", day, token, created=1)]
    if event.kind is EventKind.ticket_manual:
        increments.append(_increment("district", "all", day, token, manual=1))
        return increments
    increments.append(_increment("unit", ticket.lead_unit, day, token, routed=1))
    increments.extend(_increment("unit", unit, day, token, assisted=1) for unit in ticket.assist_units)
    if ticket.area:
        increments.append(_increment("area", ticket.area, day, token, routed=1))
    increments.append(_increment("category", ticket.category.split(".", 1)[0], day, token, routed=1))
    return increments


def notification_increments(result: NotificationResult, day: str) -> list[Increment]:
    outcome = "notified" if result.kind is EventKind.notification_delivered else "notify_failed"
    return [_increment("unit", result.recipient, day, result.event_id, **{outcome: 1})]


class Projections:
    def __init__(self, db: AsyncDatabase, timezone: str) -> None:
        self._views = db[TICKET_VIEWS]
        self._counters = db[COUNTERS]
        self._zone = ZoneInfo(timezone)

    async def ensure_indexes(self) -> None:
        await self._views.create_index([("lead_unit", ASCENDING), ("created_at", DESCENDING)])
        await self._views.create_index([("area", ASCENDING), ("created_at", DESCENDING)])
        await self._views.create_index([("state", ASCENDING)])
        await self._counters.create_index([("scope", ASCENDING), ("key", ASCENDING), ("day", ASCENDING)])

    def day(self, moment: datetime) -> str:
        return moment.astimezone(self._zone).date().isoformat()

    async def _apply_to_views(self, updates: Sequence[tuple[str, str, dict, dict]]) -> int:
        """(ticket id, event id, $set, $push) each applied once: the filter skips a view that has the event."""
        if not updates:
            return 0
        empty_view = {"applied": [], "timeline": [], "notifications": []}
        await insert_missing(self._views, {ticket_id: empty_view for ticket_id, *_ in updates})
        result = await self._views.bulk_write(
            [
                UpdateOne(
                    {"_id": ticket_id, "applied": {"$ne": event_id}},
                    {"$set": fields, "$push": {"applied": event_id, **push}} if fields else
                    {"$push": {"applied": event_id, **push}},
                )
                for ticket_id, event_id, fields, push in updates
            ],
            ordered=True,  # one ticket's events of one batch apply in their Kafka order
        )
        return result.modified_count

    async def apply_ticket_events(self, events: Iterable[TicketEvent]) -> int:
        events = list(events)
        updates = []
        increments: list[Increment] = []
        for event in events:
            ticket = event.ticket
            entry = {
                "event_id": event.event_id,
                "kind": str(event.kind),
                "state": str(ticket.state),
                "at": event.occurred_at,
                "actor": event.actor,
                "note": event.note,
            }
            fields = {**ticket.model_dump(mode="python"), "updated_at": event.occurred_at}
            updates.append((ticket.ticket_id, event.event_id, fields, {"timeline": entry}))
            increments.extend(ticket_increments(event, self.day(event.occurred_at)))
        applied = await self._apply_to_views(updates)
        await apply_increments(self._counters, increments)
        return applied

    async def apply_notifications(self, results: Iterable[NotificationResult]) -> int:
        results = list(results)
        updates = []
        increments: list[Increment] = []
        for result in results:
            entry = {
                "event_id": result.event_id,
                "recipient": result.recipient,
                "channel": result.channel,
                "status": "delivered" if result.kind is EventKind.notification_delivered else "failed",
                "attempts": result.attempts,
                "error": result.error,
                "at": result.occurred_at,
            }
            updates.append((result.ticket_id, result.event_id, {}, {"notifications": entry}))
            increments.extend(notification_increments(result, self.day(result.occurred_at)))
        applied = await self._apply_to_views(updates)
        await apply_increments(self._counters, increments)
        return applied
