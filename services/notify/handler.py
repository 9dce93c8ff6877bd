"""Notify's Kafka handler: ticket lifecycle events in, messages out, delivery results published."""

from __future__ import annotations

from civicbus.district import District
from civicbus.events import EventKind, TicketEvent, TicketState
from civicbus.kafka import BatchOutcome, Consumed, Publisher
from civicbus.topics import NOTIFICATIONS

from .delivery import Delivery, DeliveryPipeline
from .messages import MessageRenderer


# A ticket that changed hands is news to its new unit, as a new ticket is.
REDISPATCHED = {EventKind.ticket_returned, EventKind.ticket_reassigned, EventKind.ticket_reopened}
# What the unit handling a ticket must hear of.
TO_LEAD_UNIT = {EventKind.ticket_supervised, EventKind.ticket_overdue, EventKind.ticket_callback_recorded,
                EventKind.ticket_extension_decided}


def recipients(event: TicketEvent, district: District) -> list[tuple[str, str]]:
    """(unit id, role) of everyone who must hear of this transition."""
    ticket = event.ticket
    if event.kind is EventKind.ticket_manual or (ticket.state is TicketState.manual and event.kind in REDISPATCHED):
        return [(district.dispatcher.id, "dispatcher")]
    if event.kind is EventKind.ticket_routed or event.kind in REDISPATCHED:
        return [(ticket.lead_unit, "lead"), *((unit, "assist") for unit in ticket.assist_units)]
    if event.kind in TO_LEAD_UNIT and ticket.lead_unit:
        return [(ticket.lead_unit, "lead")]
    return []  # grouping, sign-for, notes, resolution…: on the ticket, not worth a message


class NotifyHandler:
    def __init__(self, district: District, pipeline: DeliveryPipeline, publisher: Publisher) -> None:
        self._district = district
        self._pipeline = pipeline
        self._publisher = publisher
        self._renderer = MessageRenderer(district)

    def deliveries(self, event: TicketEvent) -> list[Delivery]:
        planned = []
        for unit_id, role in recipients(event, self._district):
            unit = self._district.units[unit_id]
            message = self._renderer.render(event, role)
            for index, channel in enumerate(unit.channels):
                planned.append(
                    Delivery(
                        key=f"{event.event_id}:{unit_id}:{index}",
                        event=event,
                        recipient=unit_id,
                        role=role,
                        channel=channel,
                        message=message,
                    )
                )
        return planned

    async def __call__(self, batch: list[Consumed]) -> BatchOutcome:
        outcome = BatchOutcome()
        planned: dict[str, Delivery] = {}
        keys_by_record: list[set[str]] = []
        for item in batch:
            try:
                deliveries = self.deliveries(item.event)
            except Exception as error:  # e.g. a unit this configuration no longer knows: that record, not the batch
                outcome.failed.append((item, f"notify error: {type(error).__name__}: {error}"))
                continue
            keys_by_record.append({delivery.key for delivery in deliveries})
            for delivery in deliveries:
                planned.setdefault(delivery.key, delivery)
        results, done_before = await self._pipeline.run(list(planned.values()))
        outcome.duplicates = sum(1 for keys in keys_by_record if keys and keys <= done_before)
        await self._publisher.publish(NOTIFICATIONS, results)
        return outcome
