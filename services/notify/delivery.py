"""The delivery pipeline: claim → send (with retries) → record → publish the result.

Exactly once as users see it: each message has a notification key (ticket transition, recipient, channel)
stored in ``notifications`` under a unique ``_id``. A key already delivered — or already given up on — is never
sent again, however often Kafka redelivers the transition or notify restarts. Every attempt is recorded.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from civicbus.district import Channel
from civicbus.events import EventKind, NotificationResult, TicketEvent, derived_event_id
from civicbus.metrics import NOTIFICATION_ATTEMPTS, NOTIFICATIONS
from civicbus.mongo import bulk_write, find_by_ids, insert_missing
from civicbus.settings import NotifySettings

from .channels.webhook import DeliveryError, send_webhook
from .messages import Message

NOTIFICATIONS_COLLECTION = "notifications"
FINAL_STATES = ("delivered", "failed")


@dataclass
class Delivery:
    """One message to one recipient over one channel."""

    key: str
    event: TicketEvent
    recipient: str
    role: str
    channel: Channel
    message: Message
    attempts: list[dict[str, Any]] = field(default_factory=list)
    status: str = "pending"
    error: str = ""


class DeliveryPipeline:
    def __init__(self, db: AsyncDatabase, settings: NotifySettings, client: httpx.AsyncClient) -> None:
        self._collection = db[NOTIFICATIONS_COLLECTION]
        self._settings = settings
        self._client = client
        self._slots = asyncio.Semaphore(settings.concurrency)

    async def run(self, deliveries: Sequence[Delivery]) -> tuple[list[NotificationResult], set[str]]:
        """Deliver what has not been delivered; returns the results to publish and the keys skipped as done."""
        if not deliveries:
            return [], set()
        pending = await self._claim(deliveries)
        await asyncio.gather(*(self._deliver(delivery) for delivery in pending))
        await self._record(pending)
        done_before = {delivery.key for delivery in deliveries} - {delivery.key for delivery in pending}
        return [self._result(delivery) for delivery in pending], done_before

    async def _claim(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        now = datetime.now(UTC)
        created = await insert_missing(
            self._collection,
            {
                delivery.key: {
                    "status": "pending",
                    "ticket_id": delivery.event.ticket.ticket_id,
                    "ticket_event_id": delivery.event.event_id,
                    "transition": str(delivery.event.kind),
                    "recipient": delivery.recipient,
                    "role": delivery.role,
                    "channel": delivery.channel.type,
                    "title": delivery.message.title,
                    "created_at": now,
                    "attempts": [],
                }
                for delivery in deliveries
            },
        )
        # Only a key that existed already (a redelivered transition) may have been sent: look those up.
        earlier = await find_by_ids(
            self._collection, [delivery.key for delivery in deliveries if delivery.key not in created], {"status": 1}
        )
        finished = {key for key, document in earlier.items() if document["status"] in FINAL_STATES}
        for delivery in deliveries:
            if delivery.key in finished:
                NOTIFICATIONS.labels(delivery.channel.type, "duplicate").inc()
        return [delivery for delivery in deliveries if delivery.key not in finished]

    async def _deliver(self, delivery: Delivery) -> None:
        context = {
            "ticket_id": delivery.event.ticket.ticket_id,
            "transition": str(delivery.event.kind),
            "recipient": delivery.recipient,
            "role": delivery.role,
        }
        async with self._slots:
            for attempt in range(1, self._settings.max_attempts + 1):
                started = datetime.now(UTC)
                try:
                    await send_webhook(self._client, delivery.channel, delivery.message, delivery.key, context)
                except DeliveryError as error:
                    NOTIFICATION_ATTEMPTS.labels(delivery.channel.type, error.kind).inc()
                    delivery.attempts.append({"at": started, "result": error.kind, "detail": str(error)})
                    delivery.error = str(error)
                    if not error.retryable or attempt == self._settings.max_attempts:
                        delivery.status = "failed"
                        break
                    # Exponential backoff with full jitter: a receiver that is down is not hammered in step.
                    await asyncio.sleep(random.uniform(0, self._settings.retry_base_s * 2 ** (attempt - 1)))
                else:
                    NOTIFICATION_ATTEMPTS.labels(delivery.channel.type, "ok").inc()
                    delivery.attempts.append({"at": started, "result": "ok", "detail": ""})
                    delivery.status = "delivered"
                    delivery.error = ""
                    break
        NOTIFICATIONS.labels(delivery.channel.type, delivery.status).inc()

    async def _record(self, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        await bulk_write(
            self._collection,
            [
                UpdateOne(
                    {"_id": delivery.key},
                    {
                        "$set": {"status": delivery.status, "error": delivery.error, "updated_at": datetime.now(UTC)},
                        "$push": {"attempts": {"$each": delivery.attempts}},
                    },
                )
                for delivery in deliveries
            ],
        )

    @staticmethod
    def _result(delivery: Delivery) -> NotificationResult:
        kind = EventKind.notification_delivered if delivery.status == "delivered" else EventKind.notification_failed
        return NotificationResult(
            event_id=derived_event_id(delivery.key, delivery.status),
            kind=kind,
            source="civicbus.notify",
            correlation_id=delivery.event.correlation_id,
            ticket_id=delivery.event.ticket.ticket_id,
            ticket_event_id=delivery.event.event_id,
            transition=delivery.event.kind,
            recipient=delivery.recipient,
            channel=delivery.channel.type,
            attempts=len(delivery.attempts),
            error=delivery.error,
        )
