"""Reporting's Kafka handlers: lifecycle and notification events applied to the read models, in bulk. The records
go in whole: their partition says which counter shares this consumer writes (see projections.py)."""

from __future__ import annotations

from civicbus.kafka import BatchOutcome, Consumed

from .projections import Projections


def ticket_events_handler(projections: Projections):  # noqa: ANN201 - a BatchHandler
    async def handle(batch: list[Consumed]) -> BatchOutcome:
        applied = await projections.apply_ticket_events(batch)
        return BatchOutcome(duplicates=len(batch) - applied)

    return handle


def notification_results_handler(projections: Projections):  # noqa: ANN201 - a BatchHandler
    async def handle(batch: list[Consumed]) -> BatchOutcome:
        applied = await projections.apply_notifications(batch)
        return BatchOutcome(duplicates=len(batch) - applied)

    return handle
