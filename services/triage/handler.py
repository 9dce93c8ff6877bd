"""Triage's Kafka handler: a batch of incoming events in, tickets stored in bulk, lifecycle events out."""

from __future__ import annotations

from civicbus.events import EventKind, TicketEvent, TicketState, derived_event_id
from civicbus.kafka import BatchOutcome, Consumed, Publisher
from civicbus.logs import get_logger
from civicbus.metrics import TICKETS_ROUTED
from civicbus.topics import TICKETS

from .decide import TriageEngine
from .store import TicketStore

log = get_logger(__name__)

TRANSITION_BY_STATE = {TicketState.routed: EventKind.ticket_routed, TicketState.manual: EventKind.ticket_manual}


class TriageHandler:
    def __init__(self, engine: TriageEngine, store: TicketStore, publisher: Publisher) -> None:
        self._engine = engine
        self._store = store
        self._publisher = publisher

    async def __call__(self, batch: list[Consumed]) -> BatchOutcome:
        outcome = BatchOutcome()
        seen: set[str] = set()
        tickets = []
        sources = {}
        for item in batch:
            event = item.event
            if event.event_id in seen:
                outcome.duplicates += 1
                continue
            seen.add(event.event_id)
            try:
                decision = self._engine.decide(event)
            except Exception as error:  # a rule or a datum this code did not foresee: that record, not the batch
                log.exception("triage failed for an event", event_id=event.event_id, correlation_id=event.correlation_id)
                outcome.failed.append((item, f"triage error: {type(error).__name__}: {error}"))
                continue
            for ticket in decision.tickets:
                tickets.append(ticket)
                sources[ticket.ticket_id] = event
        stored, existing = await self._store.create(tickets)
        outcome.duplicates += len(existing)
        lifecycle = []
        for ticket in stored:
            event = sources[ticket.ticket_id]
            transition = TRANSITION_BY_STATE[ticket.state]
            lifecycle.append(
                TicketEvent(
                    # Derived, not random: a redelivered event republishes the same lifecycle event, which
                    # notify and reporting recognise by its id.
                    event_id=derived_event_id(ticket.ticket_id, transition),
                    kind=transition,
                    source="civicbus.triage",
                    occurred_at=ticket.created_at,
                    correlation_id=event.correlation_id,
                    ticket=ticket,
                    note=ticket.explanation.manual_reason,
                )
            )
        await self._publisher.publish(TICKETS, lifecycle)
        for ticket in stored:
            if ticket.ticket_id not in existing:
                TICKETS_ROUTED.labels(str(ticket.state)).inc()
        return outcome
