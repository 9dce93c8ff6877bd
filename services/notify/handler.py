"""Notify's Kafka handler: ticket lifecycle events in, messages out, delivery results published, timers filed.

A batch may hold records of several partitions; each partition's records are handled as that partition's work
(its timer buckets, digests and rate counts, see partitions.py)."""

from __future__ import annotations

from collections import defaultdict

from civicbus.events import TicketEvent
from civicbus.kafka import BatchOutcome, Consumed

from .channels import channel_id
from .delivery import Delivery, DeliveryPipeline
from .in_force import InForce
from .recipients import is_urgent, recipients
from .timers import Timers


class NotifyHandler:
    def __init__(self, in_force: InForce, pipeline: DeliveryPipeline, timers: Timers) -> None:
        self._in_force = in_force
        self._pipeline = pipeline
        self._timers = timers

    def deliveries(self, event: TicketEvent) -> list[Delivery]:
        planned = []
        config = self._in_force.current
        urgent = is_urgent(event.ticket, config.notify)
        for unit_id, role in recipients(event, config.district, config.notify):
            message = config.renderer.render(event, role)
            for channel in config.notify.channels_of(unit_id):
                planned.append(
                    Delivery(
                        # The channel by its stable id, not its place in the list: reordering channels in the
                        # configuration must not make a redelivered transition a new message.
                        key=f"{event.event_id}:{unit_id}:{channel_id(channel)}",
                        ticket_id=event.ticket.ticket_id,
                        ticket_event_id=event.event_id,
                        correlation_id=event.correlation_id,
                        transition=event.kind,
                        recipient=unit_id,
                        role=role,
                        channel=channel,
                        message=message,
                        urgent=urgent,
                    )
                )
        return planned

    async def __call__(self, batch: list[Consumed]) -> BatchOutcome:
        outcome = BatchOutcome()
        by_partition: dict[int, list[Consumed]] = defaultdict(list)
        for item in batch:
            by_partition[item.record.partition].append(item)
        # One partition after the other: side by side they would queue more reads than the bounded MongoDB pool
        # serves within its timeout; each partition's sends still go out together.
        for partition, items in by_partition.items():
            await self._partition(partition, items, outcome)
        return outcome

    async def _partition(self, partition: int, batch: list[Consumed], outcome: BatchOutcome) -> None:
        planned: dict[str, Delivery] = {}
        keys_by_record: list[set[str]] = []
        events: list[TicketEvent] = []
        for item in batch:
            try:
                deliveries = self.deliveries(item.event)
            except Exception as error:  # e.g. a unit this configuration no longer knows: that record, not the batch
                outcome.failed.append((item, f"notify error: {type(error).__name__}: {error}"))
                continue
            events.append(item.event)
            keys_by_record.append({delivery.key for delivery in deliveries})
            for delivery in deliveries:
                planned.setdefault(delivery.key, delivery)
        # Timers first: a crash after sending but before filing would otherwise lose a ticket's reminders.
        await self._timers.file(events, partition)
        _, done_before = await self._pipeline.run(list(planned.values()), partition)
        outcome.duplicates += sum(1 for keys in keys_by_record if keys and keys <= done_before)
