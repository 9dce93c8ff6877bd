"""The delivery pipeline: claim → hold (quiet hours) → rate limit → send (with retries) → digest → record →
fall back → publish the result. Modelled on Alertmanager's notification pipeline.

Exactly once as users see it: each message has a notification key (ticket transition or timer, recipient, channel)
stored in ``notifications`` under a unique ``_id``. A key already delivered, held for a digest or given up on is
never sent again, however often Kafka redelivers the transition or notify restarts. Every attempt is recorded.

Held messages wait in digest documents (``notify_digests``, ``_id`` = flush minute, channel and recipient) filed in
the minute buckets of ``notify_timers``; the timer loop sends each as one digest (消息汇总) when it is due.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import TypeAdapter
from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from civicbus.district import Channel, District
from civicbus.events import EventKind, NotificationResult, derived_event_id
from civicbus.metrics import NOTIFICATION_ATTEMPTS, NOTIFICATIONS
from civicbus.mongo import bulk_write, find_by_ids, insert_missing, upsert_by_id
from civicbus.scheduling import minute_id
from civicbus.settings import NotifySettings

from .channels import ChannelAdapter, DeliveryError, SendContext, channel_id
from .messages import Message, MessageRenderer
from .schedule import RateLimiter, quiet_until

NOTIFICATIONS_COLLECTION = "notifications"
DIGESTS = "notify_digests"
TIMERS = "notify_timers"
FINAL_STATES = ("delivered", "failed", "held")
CHANNEL_ADAPTER: TypeAdapter[Channel] = TypeAdapter(Channel)
Clock = Callable[[], datetime]
AdapterFactory = Callable[[Channel], ChannelAdapter]


@dataclass
class Delivery:
    """One message to one recipient over one channel."""

    key: str
    ticket_id: str
    ticket_event_id: str
    correlation_id: str
    transition: EventKind | None  # None: not about one ticket (a daily digest), so no result is published
    recipient: str
    role: str
    channel: Channel
    message: Message
    urgent: bool = False  # never held in quiet hours
    covers: list[dict[str, Any]] = field(default_factory=list)  # a digest: the held messages it delivers
    fallback_of: str = ""  # a fallback: the key of the message that failed
    attempts: list[dict[str, Any]] = field(default_factory=list)
    status: str = "pending"
    error: str = ""

    @property
    def digest_line(self) -> str:
        return f"{self.message.title}（{self.ticket_id}）"


class DeliveryPipeline:
    def __init__(
        self,
        db: AsyncDatabase,
        settings: NotifySettings,
        district: District,
        adapters: AdapterFactory,
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        self._db = db
        self._collection = db[NOTIFICATIONS_COLLECTION]
        self._settings = settings
        self._district = district
        self._renderer = MessageRenderer(district)
        self._zone = ZoneInfo(district.timezone)
        self._adapters = adapters
        self._clock = clock
        self._limiter = RateLimiter()
        self._slots = asyncio.Semaphore(settings.concurrency)

    async def run(self, deliveries: Sequence[Delivery]) -> tuple[list[NotificationResult], set[str]]:
        """Deliver what has not been delivered; returns the results to publish and the keys skipped as done."""
        if not deliveries:
            return [], set()
        now = self._clock()
        pending = await self._claim(deliveries, now)
        quiet_end = quiet_until(now, self._district.notify.quiet_hours, self._zone)
        held: list[tuple[Delivery, datetime, str]] = []
        to_send: list[Delivery] = []
        for delivery in pending:
            name = channel_id(delivery.channel)
            if quiet_end is not None and not delivery.urgent:
                held.append((delivery, quiet_end, "免打扰时段暂存的消息"))
            elif self._limiter.acquire(name, delivery.channel.rate_per_minute, now) or delivery.covers:
                to_send.append(delivery)  # a digest goes out even in a full window: it is what prevents a ban
            else:
                held.append((delivery, self._limiter.free_at(name, now), "发送过于频繁，合并发送"))
        await asyncio.gather(*(self._deliver(delivery) for delivery in to_send))
        # A robot that says "too many" (another sender shares it) gets a digest in a minute, not retries now.
        held.extend((delivery, now + timedelta(minutes=1), "发送过于频繁，合并发送")
                    for delivery in to_send if delivery.status == "rate_limited" and not delivery.covers)
        for delivery in to_send:
            if delivery.status == "rate_limited" and delivery.covers:
                delivery.status = "failed"
        await self._hold(held)
        await self._record(pending)
        results = [result for delivery in pending if delivery.status in ("delivered", "failed")
                   for result in self._results(delivery)]
        fallbacks = self._fallbacks([delivery for delivery in pending if delivery.status == "failed"])
        if fallbacks:
            results.extend((await self.run(fallbacks))[0])
        done_before = {delivery.key for delivery in deliveries} - {delivery.key for delivery in pending}
        return results, done_before

    async def _claim(self, deliveries: Sequence[Delivery], now: datetime) -> list[Delivery]:
        created = await insert_missing(
            self._collection,
            {
                delivery.key: {
                    "status": "pending",
                    "ticket_id": delivery.ticket_id,
                    "ticket_event_id": delivery.ticket_event_id,
                    "transition": str(delivery.transition or ""),
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
        context = SendContext(delivery.key, delivery.ticket_id, str(delivery.transition or ""), delivery.recipient,
                              delivery.role)
        adapter = self._adapters(delivery.channel)
        async with self._slots:
            # Retries stay short (max_attempts, retry_base_s): they hold the batch, and so the partition, meanwhile.
            for attempt in range(1, self._settings.max_attempts + 1):
                started = datetime.now(UTC)
                try:
                    await adapter.send(delivery.message, context)
                except DeliveryError as error:
                    NOTIFICATION_ATTEMPTS.labels(delivery.channel.type, error.kind).inc()
                    delivery.attempts.append({"at": started, "result": error.kind, "detail": str(error)})
                    delivery.error = str(error)
                    if error.kind == "rate_limited":
                        delivery.status = "rate_limited"
                        break
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
        if delivery.status != "rate_limited":  # that one is counted as held, with the digest it goes into
            NOTIFICATIONS.labels(delivery.channel.type, delivery.status).inc()

    async def _hold(self, held: Sequence[tuple[Delivery, datetime, str]]) -> None:
        """File held messages in the digest of their channel and recipient that is sent at ``until``."""
        if not held:
            return
        digests: dict[str, dict[str, Any]] = {}
        items: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for delivery, until, reason in held:
            # Round up to the next whole minute: the bucket's minute must not have been swept already.
            flush = minute_id(until.replace(second=0, microsecond=0) + timedelta(minutes=1))
            digest_id = f"{flush}|{channel_id(delivery.channel)}|{delivery.recipient}"
            digests.setdefault(digest_id, {
                "flush_minute": flush, "channel": delivery.channel.model_dump(mode="json"), "reason": reason,
                "recipient": delivery.recipient, "role": delivery.role,
            })
            items[digest_id].append({
                "key": delivery.key, "ticket_id": delivery.ticket_id, "ticket_event_id": delivery.ticket_event_id,
                "correlation_id": delivery.correlation_id, "transition": str(delivery.transition or ""),
                "channel": delivery.channel.type, "line": delivery.digest_line,
            })
            delivery.status = "held"
            delivery.error = ""
            NOTIFICATIONS.labels(delivery.channel.type, "held").inc()
        await upsert_by_id(self._db[DIGESTS], {
            digest_id: {"$setOnInsert": digests[digest_id], "$addToSet": {"items": {"$each": items[digest_id]}}}
            for digest_id in digests
        })
        buckets: dict[str, list[str]] = defaultdict(list)
        for digest_id, digest in digests.items():
            buckets[digest["flush_minute"]].append(f"digest|{digest_id}")
        await upsert_by_id(self._db[TIMERS], {minute: {"$addToSet": {"entries": {"$each": entries}}}
                                              for minute, entries in buckets.items()})

    async def flush_digests(self, digest_ids: Sequence[str]) -> list[NotificationResult]:
        """Send each due digest as one message; the messages it covers count as delivered (or failed) with it."""
        documents = await find_by_ids(self._db[DIGESTS], digest_ids)
        now = self._clock()
        deliveries = []
        for digest_id, document in sorted(documents.items()):
            items = document.get("items", [])
            if not items:
                continue
            first = items[0]
            message = self._renderer.render_digest([item["line"] for item in items], document["reason"], now)
            deliveries.append(Delivery(
                key=f"digest:{digest_id}", ticket_id=first["ticket_id"], ticket_event_id=first["ticket_event_id"],
                correlation_id=first["correlation_id"],
                transition=EventKind(first["transition"]) if first["transition"] else None,
                recipient=document["recipient"], role=document["role"],
                channel=CHANNEL_ADAPTER.validate_python(document["channel"]), message=message, urgent=True,
                covers=items,
            ))
        results, _ = await self.run(deliveries)
        return results

    async def _record(self, deliveries: Sequence[Delivery]) -> None:
        operations = []
        now = datetime.now(UTC)
        for delivery in deliveries:
            operations.append(UpdateOne(
                {"_id": delivery.key},
                {
                    "$set": {"status": delivery.status, "error": delivery.error, "updated_at": now},
                    "$push": {"attempts": {"$each": delivery.attempts}},
                },
            ))
            if delivery.status in ("delivered", "failed"):
                operations.extend(
                    UpdateOne({"_id": item["key"]},
                              {"$set": {"status": delivery.status, "digest": delivery.key, "updated_at": now}})
                    for item in delivery.covers
                )
        await bulk_write(self._collection, operations)

    def _fallbacks(self, failed: Sequence[Delivery]) -> list[Delivery]:
        """A message that failed for good goes to the fallback channels (兜底), once; a fallback has none."""
        fallbacks = []
        for delivery in failed:
            if delivery.fallback_of:
                continue
            message = self._renderer.render_fallback(delivery.message, delivery.recipient, delivery.error)
            for index, channel in enumerate(self._district.notify.fallback):
                fallbacks.append(Delivery(
                    key=f"{delivery.key}:fallback:{index}", ticket_id=delivery.ticket_id,
                    ticket_event_id=delivery.ticket_event_id, correlation_id=delivery.correlation_id,
                    transition=delivery.transition, recipient="fallback", role="fallback", channel=channel,
                    message=message, urgent=True, fallback_of=delivery.key,
                ))
        return fallbacks

    @staticmethod
    def _results(delivery: Delivery) -> list[NotificationResult]:
        kind = EventKind.notification_delivered if delivery.status == "delivered" else EventKind.notification_failed
        covered = delivery.covers or [{
            "key": delivery.key, "ticket_id": delivery.ticket_id, "ticket_event_id": delivery.ticket_event_id,
            "correlation_id": delivery.correlation_id, "transition": str(delivery.transition or ""),
        }]
        return [
            NotificationResult(
                event_id=derived_event_id(item["key"], delivery.status),
                kind=kind,
                source="civicbus.notify",
                correlation_id=item["correlation_id"],
                ticket_id=item["ticket_id"],
                ticket_event_id=item["ticket_event_id"],
                transition=EventKind(item["transition"]),
                recipient=delivery.recipient,
                channel=delivery.channel.type,
                attempts=len(delivery.attempts),
                error=delivery.error,
            )
            for item in covered
            if item["transition"]
        ]
