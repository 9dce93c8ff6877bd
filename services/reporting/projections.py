"""Read models (读模型), kept current idempotently from ``civic.tickets`` and ``civic.notifications``.

- ``ticket_views``: each ticket as it is now, with its timeline (written by the tickets consumer).
- ``ticket_notifications``: each ticket's notifications (written by the notifications consumer).
- ``report_counters``: a cube of counts per day × unit credited × area × category × source, holding counts as sets
  of event tokens; each cell is split in shares, one per writer (see :func:`counter_id`), summed when read.
- ``ticket_facts``: small per-ticket documents: when it was first routed and last resolved (handling times in
  working hours), the days its resolve limits were counted missed (a late resolution is credited to that day, see
  figures.py), and for tickets with an amount (涉及金额, e.g. 欠薪) the amounts involved and recovered (written by
  the tickets consumer).

Every document has one writer: the consumer that owns the Kafka partition its events come from. FerretDB v1
applies an update by reading, changing and writing back the document, so two writers of one document — two
replicas, or a ticket's tickets consumer and its notifications consumer, which the two topics may place in
different replicas — would lose each other's updates, ``$addToSet`` and all. A ticket's documents are keyed by
ticket id, as both topics are; a counter cell, which many tickets touch, is split by the topic and partition of
its writer. The kernel lets a revoked partition's batch finish before another replica gets the partition.

Every write is idempotent by its operators (``$set`` of the event's snapshot, ``$addToSet`` of its timeline entry
and its counter tokens, ``$min``/``$max`` of moments; see civicbus.mongo), so a replayed event changes nothing and
no figure is counted twice.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from civicbus.events import EventKind, NotificationResult, Satisfaction, Ticket, TicketEvent, TicketState
from civicbus.kafka import Consumed
from civicbus.mongo import Increment, apply_increments, find_by_ids, upsert_by_id

TICKET_VIEWS = "ticket_views"
TICKET_NOTIFICATIONS = "ticket_notifications"
COUNTERS = "report_counters"
TICKET_FACTS = "ticket_facts"
READ_MODELS = (TICKET_VIEWS, TICKET_NOTIFICATIONS, COUNTERS, TICKET_FACTS)
DIMENSIONS = ("day", "unit", "area", "category", "source")


def ticket_writer(partition: int) -> str:
    """The writer of counter shares from ``civic.tickets`` partition ``partition``."""
    return f"t{partition}"


def notification_writer(partition: int) -> str:
    """The writer of counter shares from ``civic.notifications`` partition ``partition``."""
    return f"n{partition}"


def counter_id(day: str, unit: str, area: str, category: str, source: str, writer: str) -> str:
    """One writer's share of a cell: ``2026-11-02|xixi|xixi|environment.dust|12345|t3``."""
    return "|".join((day, unit, area, category, source, writer))


def _increment(day: str, ticket: Ticket | None, unit: str, writer: str, token: str, **amounts: int) -> Increment:
    """Counts for one cell of the cube (day × unit credited × area × category × source), in ``writer``'s share: any
    filter combination, and any peer ranking, is then a sum over the matching shares (a period is a few hundred
    small documents, which FerretDB scans quickly; on MongoDB the (day) index serves the range)."""
    area = ticket.area if ticket else ""
    category = ticket.category if ticket else ""
    source = ticket.event_source if ticket else ""
    return Increment(
        doc_id=counter_id(day, unit, area, category, source, writer),
        token=token,
        amounts=amounts,
        on_insert=dict(zip(DIMENSIONS, (day, unit, area, category, source), strict=True)),
    )


def _counts(ticket: Ticket) -> dict[str, Any]:
    return {name: value for name, value in (("event_count", ticket.event_count),
                                            ("last_event_at", ticket.last_event_at)) if value is not None}


def _in_time(done: datetime | None, due: datetime | None) -> int:
    return int(done is not None and (due is None or done <= due))


SATISFACTION_COUNTS = {
    Satisfaction.satisfied: "satisfied",
    Satisfaction.basically_satisfied: "basically_satisfied",
    Satisfaction.dissatisfied: "dissatisfied",
}


def ticket_increments(event: TicketEvent, day_of: Callable[[datetime], str], writer: str,
                      missed_on: str | None = None) -> list[Increment]:
    """What one lifecycle event adds to the counters (names are the inputs of the figures, see figures.py),
    credited to the unit it concerns: the lead unit, the returning unit, an assisting unit; in ``writer``'s shares.

    ``day_of`` gives the district's day of a moment. Counts go to the day of the event, except a missed time limit,
    which falls due on its deadline's day (应签收/应办结 of that day): the ``ticket.overdue`` event's, or a late sign-for
    or resolution the overdue sweep had not marked yet. A late resolution of a limit marked missed is credited to
    the day it was counted missed, ``missed_on`` (see :meth:`Projections.apply_ticket_events`)."""
    ticket, token, kind = event.ticket, event.event_id, event.kind
    lead = ticket.lead_unit
    event_day = day_of(event.occurred_at)

    def count(unit: str, day: str = event_day, **amounts: int) -> Increment:
        return _increment(day, ticket, unit, writer, token, **amounts)

    def lead_counts(**amounts: int) -> list[Increment]:
        return [count(lead, **amounts)]

    def deadline_day(deadline: str) -> str:
        due = ticket.due(deadline)
        return day_of(due) if due is not None else event_day

    if kind is EventKind.ticket_routed:
        return [
            *lead_counts(created=1, routed=1),
            *(count(unit, assisted=1) for unit in ticket.assist_units),
        ]
    if kind is EventKind.ticket_manual:
        return [count("", created=1, manual=1)]
    if kind is EventKind.ticket_grouped:
        return lead_counts(repeats=event.events_joined) if event.events_joined else []
    if kind in (EventKind.ticket_returned, EventKind.ticket_reassigned):
        returning = ticket.returned_by[-1] if kind is EventKind.ticket_returned and ticket.returned_by else ""
        increments = [count(returning, returned=1)] if returning else []
        if lead and ticket.state is TicketState.routed:  # routed again: the new unit has one more ticket
            increments.extend(lead_counts(routed=1))
        return increments
    if kind is EventKind.ticket_acknowledged:
        if "sign_for" in ticket.overdue:  # counted missed when it was marked
            return lead_counts(acknowledged=1)
        if _in_time(ticket.acknowledged_at, ticket.sign_for_due):
            return lead_counts(acknowledged=1, acknowledged_in_time=1)
        return [count(lead, acknowledged=1), count(lead, deadline_day("sign_for"), overdue_sign_for=1)]
    if kind is EventKind.ticket_resolved:
        if "resolve" in ticket.overdue:
            return [count(lead, resolved=1), count(lead, missed_on or deadline_day("resolve"), resolved_late=1)]
        if _in_time(ticket.resolved_at, ticket.resolve_due):
            return lead_counts(resolved=1, resolved_in_time=1)
        return [count(lead, resolved=1),
                count(lead, deadline_day("resolve"), overdue_resolve=1, resolved_late=1)]
    if kind is EventKind.ticket_callback_recorded and ticket.callback is not None:
        callback = ticket.callback
        verdict = {SATISFACTION_COUNTS[callback.satisfaction]: 1} if callback.satisfaction is not None else {}
        return lead_counts(callbacks=1, callback_resolved=int(callback.resolved),
                           callback_rated=int(callback.satisfaction is not None),
                           closed=int(ticket.state is TicketState.closed), **verdict)
    if kind is EventKind.ticket_reopened:
        return lead_counts(reopened=1)
    if kind is EventKind.ticket_supervised:
        return lead_counts(supervised=1)
    if kind is EventKind.ticket_overdue:
        deadline = event.deadline or "resolve"
        return [count(lead, deadline_day(deadline), **{f"overdue_{deadline}": 1})]
    return []  # notes, extension requests and decisions, refusals: on the timeline, not in the figures


def missed_resolve_mark(event: TicketEvent, day_of: Callable[[datetime], str]) -> dict[str, Any] | None:
    """For a ``ticket.overdue`` event of the resolve limit: the ticket's version and the day it was counted missed,
    which a later resolution is credited to. Kept in the ticket's facts, because an extension granted after the
    limit passed moves ``resolve_due`` and the resolution's snapshot no longer tells that day."""
    if event.kind is not EventKind.ticket_overdue or (event.deadline or "resolve") != "resolve":
        return None
    due = event.ticket.resolve_due
    return {"version": event.ticket.version, "day": day_of(due if due is not None else event.occurred_at)}


def missed_on(marks: Sequence[Mapping[str, Any]], event: TicketEvent) -> str | None:
    """The day a resolution's limit was counted missed: the latest mark before the resolution (by version, so a
    replayed resolution finds the same one whatever was marked after it)."""
    earlier = [mark for mark in marks if mark["version"] < event.ticket.version]
    return max(earlier, key=lambda mark: mark["version"])["day"] if earlier else None


def notification_increments(result: NotificationResult, day: str, writer: str) -> list[Increment]:
    outcome = "notified" if result.kind is EventKind.notification_delivered else "notify_failed"
    return [_increment(day, None, result.recipient, writer, result.event_id, **{outcome: 1})]


def facts_update(event: TicketEvent, mark: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The ticket's facts: handling time (办理用时) from first routed ($min) to last resolved ($max), with the unit
    that resolved it; the days its resolve limits were counted missed (``mark``, see :func:`missed_resolve_mark`);
    and, for a ticket with an amount, its amounts as the event's snapshot has them. Idempotent operators; a
    redelivery replays a suffix of the partition in order, so the last ``$set`` is the newest."""
    ticket = event.ticket
    update: dict[str, dict[str, Any]] = {}
    if mark is not None:
        update["$addToSet"] = {"resolve_missed": mark}
    if event.kind in (EventKind.ticket_routed, EventKind.ticket_returned, EventKind.ticket_reassigned) \
            and ticket.lead_unit and ticket.state is TicketState.routed:
        update["$min"] = {"routed_at": event.occurred_at}
    if event.kind is EventKind.ticket_resolved and ticket.resolved_at is not None:
        update["$max"] = {"resolved_at": ticket.resolved_at}
        update["$set"] = {"unit": ticket.lead_unit, "area": ticket.area, "category": ticket.category,
                          "source": ticket.event_source}
    if ticket.amount_involved is not None:
        update.setdefault("$set", {}).update({
            "amount_involved": ticket.amount_involved, "amount_recovered": ticket.amount_recovered,
            "created_at": ticket.created_at, "now_resolved_at": ticket.resolved_at, "lead_unit": ticket.lead_unit,
            "area": ticket.area, "category": ticket.category, "source": ticket.event_source})
    return update or None


class Projections:
    """Applies batches of consumed records to the read models. One instance serves both consumers of a replica;
    each writes only documents that no other consumer writes (see the module's docstring)."""

    def __init__(self, db: AsyncDatabase, timezone: str) -> None:
        self._views = db[TICKET_VIEWS]
        self._notifications = db[TICKET_NOTIFICATIONS]
        self._counters = db[COUNTERS]
        self._facts = db[TICKET_FACTS]
        self._zone = ZoneInfo(timezone)

    async def ensure_indexes(self) -> None:
        # For the API's filtered lists on a real MongoDB (FerretDB v1 keeps them but filters by scanning).
        await self._views.create_index([("lead_unit", ASCENDING), ("created_at", DESCENDING)])
        await self._views.create_index([("area", ASCENDING), ("created_at", DESCENDING)])
        await self._views.create_index([("state", ASCENDING)])
        await self._counters.create_index([("day", ASCENDING)])
        await self._facts.create_index([("resolved_at", ASCENDING)])

    def day(self, moment: datetime) -> str:
        return moment.astimezone(self._zone).date().isoformat()

    @staticmethod
    async def _apply_rounds(collection: AsyncCollection, updates: dict[str, list[dict[str, Any]]]) -> int:
        """Apply each document's updates (idempotent); returns how many documents changed."""
        changed = 0
        # One round per position, so one ticket's updates of one batch apply in their Kafka order.
        for position in range(max((len(items) for items in updates.values()), default=0)):
            round_ = {ticket_id: items[position] for ticket_id, items in updates.items() if len(items) > position}
            changed += (await upsert_by_id(collection, round_)).changed
        return changed

    async def apply_ticket_events(self, batch: Sequence[Consumed]) -> int:
        """Apply ``civic.tickets`` records to the views, the facts and the tickets' counter shares; returns how
        many views changed — a replayed event changes nothing."""
        updates: dict[str, list[dict[str, Any]]] = defaultdict(list)
        increments: list[Increment] = []
        facts: dict[str, list[dict[str, Any]]] = defaultdict(list)
        # The view keeps the newest snapshot: an older one (a replayed event) adds its timeline entry, if missing,
        # but does not overwrite. This consumer is the ticket's one writer, so read-then-write is safe.
        versions = {
            ticket_id: view.get("version", 0)
            for ticket_id, view in (
                await find_by_ids(self._views, {item.event.ticket.ticket_id for item in batch}, {"version": 1})
            ).items()
        }
        # The days resolve limits were counted missed, for resolutions after them: the facts', and this batch's.
        late = {item.event.ticket.ticket_id for item in batch if item.event.kind is EventKind.ticket_resolved
                and "resolve" in item.event.ticket.overdue}
        marks: dict[str, list[dict[str, Any]]] = defaultdict(list, {
            ticket_id: list(fact.get("resolve_missed", []))
            for ticket_id, fact in (await find_by_ids(self._facts, late, {"resolve_missed": 1})).items()})
        for item in batch:
            event: TicketEvent = item.event
            ticket = event.ticket
            entry = {
                "event_id": event.event_id,
                "kind": str(event.kind),
                "state": str(ticket.state),
                "at": event.occurred_at,
                "actor": event.actor,
                "note": event.note,
                "command_id": event.command_id,
                "refusal_code": event.refusal_code,
            }
            update: dict[str, Any]
            if event.kind is EventKind.ticket_grouped:
                # Grouping changes counts, not the ticket's course: counts only ever grow, and it is no step of
                # the timeline.
                update = {"$max": _counts(ticket)}
                if ticket.repeats:
                    update["$addToSet"] = {"repeats": {"$each": [repeat.model_dump(mode="python")
                                                                 for repeat in ticket.repeats]}}
            else:
                update = {"$addToSet": {"timeline": entry}}
                # Triage's command handler is the one writer of a ticket's course: each transition has the next
                # version, so a replayed (older) one only finds its timeline entry already there.
                if ticket.version > versions.get(ticket.ticket_id, 0):
                    versions[ticket.ticket_id] = ticket.version
                    fields = ticket.model_dump(mode="python", exclude={"event_count", "last_event_at", "repeats"})
                    update["$set"] = {**fields, "updated_at": event.occurred_at}
                    update["$max"] = _counts(ticket)
            updates[ticket.ticket_id].append(update)
            mark = missed_resolve_mark(event, self.day)
            if mark is not None:
                marks[ticket.ticket_id].append(mark)
            increments.extend(ticket_increments(event, self.day, ticket_writer(item.record.partition),
                                                missed_on(marks[ticket.ticket_id], event)))
            if (fact := facts_update(event, mark)) is not None:
                facts[ticket.ticket_id].append(fact)
        applied = await self._apply_rounds(self._views, updates)
        await apply_increments(self._counters, increments)
        await self._apply_rounds(self._facts, facts)
        return applied

    async def apply_notifications(self, batch: Sequence[Consumed]) -> int:
        """Apply ``civic.notifications`` records to the tickets' notification lists and the notifications' counter
        shares; returns how many lists changed."""
        updates: dict[str, list[dict[str, Any]]] = defaultdict(list)
        increments: list[Increment] = []
        for item in batch:
            result: NotificationResult = item.event
            entry = {
                "event_id": result.event_id,
                "recipient": result.recipient,
                "channel": result.channel,
                "status": "delivered" if result.kind is EventKind.notification_delivered else "failed",
                "attempts": result.attempts,
                "error": result.error,
                "at": result.occurred_at,
            }
            updates[result.ticket_id].append({"$addToSet": {"notifications": entry}})
            increments.extend(notification_increments(result, self.day(result.occurred_at),
                                                      notification_writer(item.record.partition)))
        applied = await self._apply_rounds(self._notifications, updates)
        await apply_increments(self._counters, increments)
        return applied
