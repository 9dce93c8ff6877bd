"""Triage's ticket owner for triaged events: ``EventTriaged`` records in (``civic.commands``, keyed by the shard of
their problem), tickets stored and grouped in bulk, lifecycle events out.

Every event of one problem group (an alarm fingerprint, a complaint's category and place) arrives on one partition,
so this consumer is the one writer of the group and of its tickets, with any number of replicas. Per batch: one
round of look-ups of the open tickets of the batch's groups, the writes of new tickets, alarm joins and 重复件
links, a read-back of the grouped tickets, and one publish — a handful of round trips per batch, not per event. An
alarm that joins an open ticket is never classified or located, so a storm costs little per alarm.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta

from civicbus.events import (
    Action,
    Actor,
    AlarmRaised,
    EventKind,
    EventTriaged,
    Repeat,
    Ticket,
    TicketCommand,
    TicketEvent,
    TicketState,
    derived_event_id,
)
from civicbus.kafka import BatchOutcome, Consumed, Publisher
from civicbus.logs import get_logger
from civicbus.metrics import TICKETS_ROUTED
from civicbus.topics import COMMANDS, TICKETS

from .decide import TriageEngine
from .overdue import file_deadlines
from .response_level import ResponseLevelState
from .groups import alarm_group, repeat_group
from .store import AlarmJoin, StoredTicket, TicketStore

log = get_logger(__name__)

TRANSITION_BY_STATE = {TicketState.routed: EventKind.ticket_routed, TicketState.manual: EventKind.ticket_manual}


@dataclass
class _NewTicket:
    """A ticket made in this batch. Later events of the batch join it after it is stored, as they would join a
    stored one, so the creation event always carries the first event alone and every join is counted once."""

    ticket: Ticket
    source: Consumed
    offsets: dict[str, int] = field(default_factory=dict)


@dataclass
class _Plan:
    new: list[_NewTicket] = field(default_factory=list)
    new_by_group: dict[str, _NewTicket] = field(default_factory=dict)
    alarm_joins: dict[str, AlarmJoin] = field(default_factory=dict)
    repeats: list[tuple[str, Repeat]] = field(default_factory=list)
    joined: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    republish_created: set[str] = field(default_factory=set)
    republish_grouped: set[str] = field(default_factory=set)
    reopens: list[TicketCommand] = field(default_factory=list)
    correlation: dict[str, str] = field(default_factory=dict)


class TriageHandler:
    def __init__(
        self, engine: TriageEngine, store: TicketStore, publisher: Publisher, level: ResponseLevelState
    ) -> None:
        self.engine = engine  # replaced whole when the configuration is reloaded
        self.store = store
        self._publisher = publisher
        self._level = level

    async def __call__(self, batch: list[Consumed]) -> BatchOutcome:
        """Handle ``EventTriaged`` records: each item below carries the incoming event and the triaged record (whose
        partition and offset the alarm joins remember)."""
        outcome = BatchOutcome()
        unique: dict[str, Consumed] = {}
        decisions: dict[str, list[Ticket]] = {}
        fingerprints: dict[str, str] = {}
        for item in batch:
            triaged: EventTriaged = item.event
            event = triaged.incoming
            if event.event_id in unique:
                outcome.duplicates += 1
                continue
            unique[event.event_id] = Consumed(event, item.record)
            if isinstance(event, AlarmRaised):
                fingerprints[event.event_id] = triaged.home.removeprefix(alarm_group(""))
            else:
                decisions[event.event_id] = triaged.tickets
        items = list(unique.values())
        writer = {item.event.event_id: item.record.partition for item in items}
        plan, planned = await self._plan(items, fingerprints, decisions)
        stored_new, existing = await self._create(plan)
        if existing:
            # A redelivery: tickets of this batch were made before a crash, maybe with some of their joins and maybe
            # before their groups pointed at them. Planned again against what is stored, the joins made are skipped
            # and the others made, whatever the batch looked like the first time.
            plan, planned = await self._plan(items, fingerprints, decisions)
            again, existing = await self._create(plan)
            stored_new = [ticket for ticket in stored_new if ticket.ticket_id not in existing] + again
        outcome.failed.extend(planned.failed)
        outcome.duplicates += planned.duplicates
        await file_deadlines(self.store.db, [(ticket, writer[ticket.source_event_id]) for ticket in stored_new])
        await self.store.join_alarms(list(plan.alarm_joins.values()))
        await self.store.join_repeats(plan.repeats)
        touched = {*plan.joined, *plan.republish_created, *plan.republish_grouped} - existing
        snapshots = await self.store.get_many(touched)

        # Only a ticket nobody has acted on is still as it was made: a redelivered event republishes its creation;
        # one that has moved on (a later version) was announced before anybody could act on it.
        lifecycle = [self._created(ticket, plan.correlation[ticket.ticket_id]) for ticket in stored_new
                     if ticket.ticket_id not in existing or ticket.version == 1]
        for ticket_id in sorted(plan.republish_created - {ticket.ticket_id for ticket in stored_new}):
            if ticket_id in snapshots and snapshots[ticket_id].ticket.version == 1:
                lifecycle.append(self._created(snapshots[ticket_id].ticket, plan.correlation[ticket_id]))
        # Joins are announced while some are unannounced: a redelivery finding its joins applied announces them if
        # the crash came before, and says nothing if they were announced already.
        grouped = [snapshots[ticket_id] for ticket_id in sorted(set(plan.joined) | plan.republish_grouped)
                   if ticket_id in snapshots and snapshots[ticket_id].unannounced]
        lifecycle.extend(self._grouped(stored, plan.correlation[stored.ticket.ticket_id]) for stored in grouped)
        await self._publisher.publish(TICKETS, lifecycle)
        await self._publisher.publish(COMMANDS, plan.reopens)
        await self.store.announced(stored.ticket.ticket_id for stored in grouped)

        for ticket in stored_new:
            if ticket.ticket_id not in existing:
                TICKETS_ROUTED.labels(str(ticket.state)).inc()
        outcome.duplicates += len(existing)
        return outcome

    async def _create(self, plan: _Plan) -> tuple[list[Ticket], set[str]]:
        return await self.store.create([entry.ticket for entry in plan.new],
                                       {entry.ticket.ticket_id: entry.offsets for entry in plan.new if entry.offsets})

    async def _plan(
        self, items: list[Consumed], fingerprints: dict[str, str], decisions: dict[str, list[Ticket]]
    ) -> tuple[_Plan, BatchOutcome]:
        """What the batch does to the stored tickets of its groups: tickets to make, joins, recurrences."""
        outcome = BatchOutcome()
        grouping = self.engine.district.routing.grouping
        window = timedelta(hours=grouping.repeat_window_hours)
        recurrence_window = timedelta(days=grouping.recurrence_window_days)
        repeat_keys = {event_id: tickets[0].repeat_key for event_id, tickets in decisions.items() if tickets[0].repeat_key}
        groups = await self.store.tickets_of(
            [alarm_group(fingerprint) for fingerprint in fingerprints.values()]
            + [repeat_group(key) for key in repeat_keys.values()]
        )
        plan = _Plan()
        for item in items:
            event = item.event
            if event.event_id in fingerprints:
                fingerprint = fingerprints[event.event_id]
                stored = groups.get(alarm_group(fingerprint))
                self._plan_alarm(plan, item, fingerprint, stored if stored and stored.is_open else None, outcome)
            elif event.event_id in decisions:
                stored = groups.get(repeat_group(repeat_keys.get(event.event_id, "")))
                if stored and not stored.is_open:
                    done_at = stored.ticket.closed_at or stored.ticket.resolved_at
                    if stored.holds(event.event_id):
                        # A recurrence, redelivered: its reopen command again (applied once, by its id), in case
                        # the crash came before it was published.
                        plan.republish_grouped.add(stored.ticket.ticket_id)
                        plan.correlation.setdefault(stored.ticket.ticket_id, event.correlation_id)
                        plan.reopens.append(self._reopen(item, stored.ticket.ticket_id))
                        outcome.duplicates += 1
                        continue
                    if done_at and done_at >= event.recorded_at - recurrence_window:
                        self._plan_recurrence(plan, item, stored)
                        continue
                    stored = None  # long solved: this complaint is a new problem
                elif stored and stored.ticket.created_at < event.recorded_at - window:
                    stored = None  # an old problem: this complaint starts a new ticket
                self._plan_event(plan, item, decisions[event.event_id], stored, outcome)
        return plan, outcome

    # ----------------------------------------------------------------------- planning, one event at a time

    def _plan_alarm(
        self, plan: _Plan, item: Consumed, fingerprint: str, stored: StoredTicket | None, outcome: BatchOutcome
    ) -> None:
        event, record = item.event, item.record
        partition = str(record.partition)
        if stored is not None:
            ticket_id = stored.ticket.ticket_id
            plan.correlation.setdefault(ticket_id, event.correlation_id)
            if event.event_id == stored.ticket.source_event_id:
                plan.republish_created.add(ticket_id)  # the ticket's own first alarm, redelivered
                outcome.duplicates += 1
            elif stored.holds(event.event_id) or record.offset <= stored.group_offsets.get(partition, -1):
                plan.republish_grouped.add(ticket_id)  # joined before: redelivered, or sent again by its platform
                outcome.duplicates += 1
            else:
                self._join_alarm(plan, item, ticket_id, stored.recent_event_ids)
            return
        group = f"alarm:{fingerprint}"
        if group in plan.new_by_group:
            ticket = plan.new_by_group[group].ticket
            self._join_alarm(plan, item, ticket.ticket_id, [ticket.source_event_id])
            return
        try:
            tickets = self.engine.decide(event, self._level.current).tickets
        except Exception as error:
            log.exception("triage failed for an alarm", event_id=event.event_id, correlation_id=event.correlation_id)
            outcome.failed.append((item, f"triage error: {type(error).__name__}: {error}"))
            return
        entries = self._add_new(plan, item, tickets)
        entries[0].offsets[partition] = record.offset
        plan.new_by_group[group] = entries[0]

    @staticmethod
    def _join_alarm(plan: _Plan, item: Consumed, ticket_id: str, remembered: list[str]) -> None:
        record = item.record
        join = plan.alarm_joins.setdefault(ticket_id, AlarmJoin(ticket_id, list(remembered)))
        if item.event.event_id in join.recent:
            return  # the same alarm twice in one batch
        join.recent.append(item.event.event_id)
        join.count += 1
        partition = str(record.partition)
        join.offsets[partition] = max(join.offsets.get(partition, -1), record.offset)
        join.last_at = max(filter(None, (join.last_at, item.event.occurred_at)))
        plan.joined[ticket_id] += 1
        plan.correlation.setdefault(ticket_id, item.event.correlation_id)

    def _plan_event(
        self, plan: _Plan, item: Consumed, tickets: list[Ticket], stored: StoredTicket | None, outcome: BatchOutcome
    ) -> None:
        event = item.event
        repeat_key = tickets[0].repeat_key
        if stored is not None:
            ticket_id = stored.ticket.ticket_id
            plan.correlation.setdefault(ticket_id, event.correlation_id)
            if event.event_id == stored.ticket.source_event_id:
                plan.republish_created.add(ticket_id)
                outcome.duplicates += 1
            elif stored.holds(event.event_id):
                plan.republish_grouped.add(ticket_id)
                outcome.duplicates += 1
            else:
                plan.repeats.append((ticket_id, self._repeat(item)))
                plan.joined[ticket_id] += 1
            return
        group = f"repeat:{repeat_key}"
        if repeat_key and group in plan.new_by_group:
            ticket_id = plan.new_by_group[group].ticket.ticket_id
            plan.repeats.append((ticket_id, self._repeat(item)))
            plan.joined[ticket_id] += 1
            return
        entries = self._add_new(plan, item, tickets)
        if repeat_key:
            plan.new_by_group[group] = entries[0]

    def _plan_recurrence(self, plan: _Plan, item: Consumed, stored: StoredTicket) -> None:
        """The problem is back after it was resolved (反弹): link the complaint and have the ticket reopened —
        through a command, so the ticket's state keeps its one writer."""
        ticket_id = stored.ticket.ticket_id
        plan.correlation.setdefault(ticket_id, item.event.correlation_id)
        plan.repeats.append((ticket_id, self._repeat(item)))
        plan.joined[ticket_id] += 1
        plan.reopens.append(self._reopen(item, ticket_id))

    @staticmethod
    def _reopen(item: Consumed, ticket_id: str) -> TicketCommand:
        data = item.event.data
        return TicketCommand(
            event_id=derived_event_id(item.event.event_id, "recurrence"),
            source="civicbus.triage",
            correlation_id=item.event.correlation_id,
            ticket_id=ticket_id,
            action=Action.reopen,
            actor=Actor(name="civicbus.triage", role="system"),
            note=f"问题反弹：办结后再次收到同一地点同类投诉（{getattr(data, 'external_id', '') or item.event.event_id}）",
        )

    @staticmethod
    def _repeat(item: Consumed) -> Repeat:
        data = item.event.data
        return Repeat(event_id=item.event.event_id, external_id=getattr(data, "external_id", ""),
                      at=item.event.occurred_at)

    @staticmethod
    def _add_new(plan: _Plan, item: Consumed, tickets: list[Ticket]) -> list[_NewTicket]:
        entries = [_NewTicket(ticket, item) for ticket in tickets]
        plan.new.extend(entries)
        for ticket in tickets:
            plan.correlation[ticket.ticket_id] = item.event.correlation_id
        return entries

    # ----------------------------------------------------------------------- lifecycle events

    @staticmethod
    def _created(ticket: Ticket, correlation_id: str) -> TicketEvent:
        transition = TRANSITION_BY_STATE[ticket.state]
        return TicketEvent(
            # Derived, not random: a redelivered event republishes the same lifecycle event, which notify and
            # reporting recognise by its id.
            event_id=derived_event_id(ticket.ticket_id, transition),
            kind=transition,
            source="civicbus.triage",
            occurred_at=ticket.created_at,
            correlation_id=correlation_id,
            ticket=ticket,
            note=ticket.explanation.manual_reason,
        )

    @staticmethod
    def _grouped(stored: StoredTicket, correlation_id: str) -> TicketEvent:
        """The announcement of every join since the last one announced. Read again after a crash, it is the same
        event — same id, same count — whether or not it was published then; with new joins, it counts those too."""
        joined = stored.unannounced
        ticket = stored.ticket
        # The id names the state reached (offsets, repeats), so republishing the same state is recognised.
        state = ",".join(f"{partition}:{offset}" for partition, offset in sorted(stored.group_offsets.items()))
        return TicketEvent(
            event_id=derived_event_id(ticket.ticket_id, EventKind.ticket_grouped, state, str(ticket.event_count)),
            kind=EventKind.ticket_grouped,
            source="civicbus.triage",
            occurred_at=ticket.last_event_at or ticket.created_at,
            correlation_id=correlation_id,
            ticket=ticket,
            note=f"合并 {joined} 条重复事件，累计 {ticket.event_count} 条",
            events_joined=joined,
        )

