"""Triage's ticket owner for triaged events: ``EventTriaged`` records in (``civic.commands``, keyed by the shard of
their problem), tickets made and grouped in bulk, lifecycle events out.

Every event of one problem group (an alarm fingerprint, a complaint's category and place) arrives on one partition,
so this consumer is the one writer of the group and of its tickets, with any number of replicas. This module is the
transport and the storage around the plan (``planner.py``, pure): per batch it reads the tickets of the batch's
groups (and, when the plan would make tickets, whether they exist already), asks for the plan, writes it in bulk and
publishes it — a handful of round trips per batch, not per event. An alarm that joins an open ticket is never
classified or located, so a storm costs little per alarm.
"""

from __future__ import annotations

from datetime import timedelta

from civicbus.events import Event, Ticket
from civicbus.kafka import BatchOutcome, Consumed, Publisher
from civicbus.logs import get_logger
from civicbus.metrics import TICKETS_ROUTED
from civicbus.topics import COMMANDS, TICKETS

from .decide import TriageEngine
from .planner import AlarmDecider, Plan, Received, StoredTicket, Windows, groups_to_read, plan_batch
from .response_level import ResponseLevelState
from .store import TicketStore

log = get_logger(__name__)


class TriageHandler:
    def __init__(
        self, engine: TriageEngine, store: TicketStore, publisher: Publisher, level: ResponseLevelState
    ) -> None:
        self.engine = engine  # replaced whole when the configuration is reloaded
        self.store = store
        self._publisher = publisher
        self._level = level

    async def __call__(self, batch: list[Consumed]) -> BatchOutcome:
        """Handle ``EventTriaged`` records: read, plan, write, publish."""
        received = [Received(item.event, item.record.partition, item.record.offset) for item in batch]
        plan = await self._plan(received)
        made = await self._write(plan)
        await self._publisher.publish(TICKETS, plan.events)
        await self._publisher.publish(COMMANDS, plan.commands)
        await self.store.announced(plan.announced)

        for stored in plan.created:
            if stored.ticket.ticket_id in made:
                TICKETS_ROUTED.labels(str(stored.ticket.state)).inc()
        # A record that failed is dead-lettered as the incoming event it carries.
        consumed = {id(item): Consumed(item.event, source.record) for item, source in zip(received, batch, strict=True)}
        return BatchOutcome(failed=[(consumed[id(item)], reason) for item, reason in plan.failed],
                            duplicates=plan.duplicates)

    async def _plan(self, batch: list[Received]) -> Plan:
        """Read what the plan needs and plan. A ticket the plan would make may exist already — made by this batch
        before a crash, maybe before its groups pointed at it — so the batch is planned again with the tickets found,
        until the plan makes only tickets known to be new (normally: one look-up, nothing found)."""
        grouping = self.engine.routing.grouping
        windows = Windows(timedelta(hours=grouping.repeat_window_hours),
                          timedelta(days=grouping.recurrence_window_days))
        groups = await self.store.tickets_of(groups_to_read(batch))
        decide_alarm = self._alarm_decider()
        existing: dict[str, StoredTicket] = {}
        looked_up: set[str] = set()
        while True:
            plan = plan_batch(batch, groups, windows, decide_alarm, existing)
            unknown = {stored.ticket.ticket_id for stored in plan.created} - looked_up
            found = await self.store.get_many(unknown)
            if not found:
                return plan
            looked_up |= unknown
            existing |= found

    async def _write(self, plan: Plan) -> set[str]:
        """Write the plan, in the order that keeps a crash between two writes repairable by reading the batch again:
        the tickets first (found then as existing), their deadlines, the groups' pointers, the joins to stored
        tickets (found then as held). Returns the ids of the tickets made."""
        made = await self.store.insert(plan.created)
        await self.store.file_deadlines(plan.deadlines)
        await self.store.point(plan.pointers)
        await self.store.update_joins(plan.updated)
        return made

    def _alarm_decider(self) -> AlarmDecider:
        """The decision for an alarm that opens a ticket, made once per batch however often the batch is planned."""
        engine, level = self.engine, self._level.current
        decided: dict[str, list[Ticket] | Exception] = {}

        def decide(event: Event) -> list[Ticket]:
            if event.event_id not in decided:
                try:
                    decided[event.event_id] = engine.decide(event, level).tickets
                except Exception as error:
                    log.exception("triage failed for an alarm", event_id=event.event_id,
                                  correlation_id=event.correlation_id)
                    decided[event.event_id] = error
            result = decided[event.event_id]
            if isinstance(result, Exception):
                raise result
            return result

        return decide
