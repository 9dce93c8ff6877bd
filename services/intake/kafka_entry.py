"""Kafka as an entry (Kafka 接入): upstream systems publish on ``civic.intake`` the JSON of one item of
``POST /v1/events/batch``; intake admits each record exactly as its HTTP API does and publishes the events on
``civic.events``, a batch at a time with acks=all. A record that does not validate is dead-lettered with the reason
(by ``subscribe_batch`` when the schema refuses it, here when a work order does not map).

Idempotent by event id: a record with an ``idempotency_key`` (or a work order, by its number) is the same event
whenever it is sent; one without is identified by its place on the topic, so a redelivered record is the same event
too. Triage deduplicates by event id, so nothing becomes a second ticket.
"""

from __future__ import annotations

from civicbus.events import Event
from civicbus.kafka import BatchOutcome, Consumed
from civicbus.logs import get_logger
from civicbus.service import Runtime
from civicbus.topics import EVENTS, INTAKE

from .admission import Admission, Inadmissible

log = get_logger(__name__)


def subscribe_intake_topic(runtime: Runtime, admission: Admission) -> None:
    async def admit(batch: list[Consumed]) -> BatchOutcome:
        events: list[Event] = []
        failed: list[tuple[Consumed, str]] = []
        for item in batch:
            record = item.record
            sender = item.event.source or INTAKE.name
            place = f"{record.topic}:{record.partition}:{record.offset}"
            try:
                events.append(admission.event(item.event, sender, item.event.idempotency_key or place))
            except Inadmissible as error:
                failed.append((item, "; ".join(error.problems)))
        await runtime.publisher.publish(EVENTS, events)
        if events:
            log.info("events accepted from Kafka", count=len(events), refused=len(failed))
        return BatchOutcome(failed=failed)

    runtime.subscribe(INTAKE, admit)
