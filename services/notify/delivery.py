"""The delivery pipeline: claim → hold (quiet hours) → rate limit → send once → digest or retry timer → record →
fall back → publish the result. Modelled on Alertmanager's notification pipeline.

Exactly once as users see it: each message has a notification key (ticket transition or timer, recipient, channel)
stored in ``notifications`` under a unique ``_id``. A key already delivered, held for a digest, waiting for a retry
or given up on is never sent again by a redelivered transition or a restart. Every attempt is recorded.

Only the first attempt happens in the Kafka batch: a receiver that is down must not hold the partition, and so every
other ticket's messages, for its backoff. A retryable failure leaves the message ``retrying`` (what to send is kept in
its ``notifications`` document) with a ``retry|attempt|due|key`` entry in the minute bucket of ``notify_timers`` of
its due time; the timer tick makes the attempt, claimed under its own ``_id`` in ``notify_retry_claims`` so that a
repeated tick, a restart or a second replica does not make it twice. The last failure does what a failure in the
batch does: ``notification.failed`` and the fallback channels.

A channel's rate limit counts its sends per minute in ``notify_rates`` (``_id`` = ``rate:<channel>``), read and
written once per batch, so that a restart does not forget them. Held messages wait in digest documents
(``notify_digests``, ``_id`` = flush minute, channel and recipient) filed in the minute buckets of ``notify_timers``;
the timer loop sends each as one digest (消息汇总) when it is due.
"""

from __future__ import annotations

import asyncio
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
from civicbus.scheduling import MinuteBuckets, minute_id
from civicbus.settings import NotifySettings

from .channels import ChannelAdapter, DeliveryError, SendContext, channel_id
from .messages import Message, MessageRenderer
from .schedule import RateLimiter, quiet_until, retry_delay

NOTIFICATIONS_COLLECTION = "notifications"
DIGESTS = "notify_digests"
TIMERS = "notify_timers"
STATE = "notify_state"
TIMERS_STATE_ID = "timers"
RETRY_CLAIMS = "notify_retry_claims"
RATES = "notify_rates"
# Sent, given up on, or in a timer's hands (a digest, a retry): a redelivered transition sends none of these.
SETTLED_STATES = ("delivered", "failed", "held", "retrying")
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
    previous_attempts: int = 0  # a retry: the attempts recorded before this run
    attempts: list[dict[str, Any]] = field(default_factory=list)  # the attempts of this run
    status: str = "pending"
    error: str = ""

    @property
    def digest_line(self) -> str:
        return f"{self.message.title}（{self.ticket_id}）"

    @property
    def attempt_count(self) -> int:
        return self.previous_attempts + len(self.attempts)

    def retry_state(self) -> dict[str, Any]:
        """What a retry needs besides the fields every ``notifications`` document has."""
        return {"correlation_id": self.correlation_id, "channel": self.channel.model_dump(mode="json"),
                "title": self.message.title, "text": self.message.text, "urgent": self.urgent,
                "covers": self.covers, "fallback_of": self.fallback_of}


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
        self._rate_lock = asyncio.Lock()  # FerretDB updates are read-modify-write: one writer of notify_rates at a time
        # Reminders, escalation steps, retries and digests: one store, written by the Kafka handler and the tick.
        self.timers = MinuteBuckets(db[TIMERS], db[STATE], TIMERS_STATE_ID, "ticked_until")
        self._slots = asyncio.Semaphore(settings.concurrency)

    async def run(self, deliveries: Sequence[Delivery]) -> tuple[list[NotificationResult], set[str]]:
        """Deliver what has not been delivered; returns the results to publish and the keys skipped as done."""
        if not deliveries:
            return [], set()
        now = self._clock()
        pending = await self._claim(deliveries, now)
        results = await self._send(pending, now)
        done_before = {delivery.key for delivery in deliveries} - {delivery.key for delivery in pending}
        return results, done_before

    async def _send(self, pending: Sequence[Delivery], now: datetime) -> list[NotificationResult]:
        """One attempt for each claimed delivery, then hold, schedule a retry, record, fall back; the results."""
        if not pending:
            return []
        quiet_end = quiet_until(now, self._district.notify.quiet_hours, self._zone)
        held: list[tuple[Delivery, datetime, str]] = []
        to_send: list[Delivery] = []
        async with self._rate_lock:
            await self._load_rates(pending)
            for delivery in pending:
                name = channel_id(delivery.channel)
                if quiet_end is not None and not delivery.urgent:
                    held.append((delivery, quiet_end, "免打扰时段暂存的消息"))
                elif self._limiter.acquire(name, delivery.channel.rate_per_minute, now) or delivery.covers:
                    to_send.append(delivery)  # a digest goes out even in a full window: it is what prevents a ban
                else:
                    held.append((delivery, self._limiter.free_at(now), "发送过于频繁，合并发送"))
            await self._store_rates(now)
        await asyncio.gather(*(self._attempt(delivery) for delivery in to_send))
        # A robot that says "too many" (another sender shares it) gets a digest in a minute, not retries now. The
        # minute counts from when the sends ended: they may have taken a while, and a digest's minute must not be
        # one a tick has flushed already.
        held.extend((delivery, self._clock() + timedelta(minutes=1), "发送过于频繁，合并发送")
                    for delivery in to_send if delivery.status == "rate_limited")
        # The timers before the record: a crash between the two leaves the key "pending", which a redelivery sends
        # again, rather than "retrying" with no timer to retry it.
        await self._file_timers(held, [delivery for delivery in to_send if delivery.status == "retrying"], now)
        await self._record(pending)
        results = [result for delivery in pending if delivery.status in ("delivered", "failed")
                   for result in self._results(delivery)]
        fallbacks = self._fallbacks([delivery for delivery in pending if delivery.status == "failed"])
        if fallbacks:
            results.extend((await self.run(fallbacks))[0])
        return results

    async def _load_rates(self, pending: Sequence[Delivery]) -> None:
        """The per-minute send counts of the rate-limited channels about to be used, as every sender stored them
        (``notify_rates``, ``_id`` = ``rate:<channel>``, a field per minute): a restart does not forget the minute's
        sends, and replicas see each other's as of their last batch. Two replicas that read the same count at the
        same moment may still both send up to the limit (FerretDB has no atomic conditional increment); the robot's
        own "too many" answer then sends the rest to a digest."""
        channels = {channel_id(delivery.channel) for delivery in pending if delivery.channel.rate_per_minute}
        if channels:
            stored = await find_by_ids(self._db[RATES], [f"rate:{channel}" for channel in channels])
            for channel in channels:
                self._limiter.load(channel, stored.get(f"rate:{channel}", {}))

    async def _store_rates(self, now: datetime) -> None:
        """Add this batch's sends to the stored counts and drop the minutes the window no longer needs."""
        updates: dict[str, dict[str, Any]] = {}
        for channel, minutes in self._limiter.take_added().items():
            updates[f"rate:{channel}"] = {"$inc": minutes}
            if expired := self._limiter.expired(channel, now):
                updates[f"rate:{channel}"]["$unset"] = dict.fromkeys(expired, "")
        if updates:
            # $inc is not idempotent, and upsert_by_id resends a whole command when another replica created a
            # document at the same moment: create the documents first (idempotent), then add to them.
            await insert_missing(self._db[RATES], dict.fromkeys(updates, {}))
            await bulk_write(self._db[RATES],
                             [UpdateOne({"_id": doc_id}, update) for doc_id, update in updates.items()])

    async def retry(self, entries: Sequence[str], now: datetime) -> list[NotificationResult]:
        """Make the retries of the ``retry|attempt|due|key`` timer entries that are due at ``now``."""
        due: dict[str, int] = {}
        for entry in entries:
            _, attempt, at, key = entry.split("|", 3)  # the key last: a digest's key contains "|"
            if datetime.fromisoformat(at) <= now:
                due[key] = max(due.get(key, 0), int(attempt))
        if not due:
            return []
        documents = await find_by_ids(self._collection, due)
        # Still waiting for exactly this attempt: not delivered meanwhile, not a tick's look-back seeing it again.
        waiting = {key: document for key, document in documents.items()
                   if document["status"] == "retrying" and len(document["attempts"]) == due[key] - 1}
        # The attempt's own claim (a unique _id, FerretDB's only atomic test-and-set) keeps a second replica's tick
        # from making it too. A crash between claim and record loses the message's remaining retries (it stays
        # "retrying"): the price of never sending twice.
        claims = {f"{key}#{due[key]}": key for key in waiting}
        claimed = await insert_missing(self._db[RETRY_CLAIMS], {claim: {"at": now} for claim in claims})
        return await self._send([self._rebuild(claims[claim], waiting[claims[claim]]) for claim in sorted(claimed)],
                                now)

    @staticmethod
    def _rebuild(key: str, document: dict[str, Any]) -> Delivery:
        state = document["retry"]
        transition = document["transition"]
        return Delivery(
            key=key, ticket_id=document["ticket_id"], ticket_event_id=document["ticket_event_id"],
            correlation_id=state["correlation_id"], transition=EventKind(transition) if transition else None,
            recipient=document["recipient"], role=document["role"],
            channel=CHANNEL_ADAPTER.validate_python(state["channel"]), message=Message(state["title"], state["text"]),
            urgent=state["urgent"], covers=state["covers"], fallback_of=state["fallback_of"],
            previous_attempts=len(document["attempts"]),
        )

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
        finished = {key for key, document in earlier.items() if document["status"] in SETTLED_STATES}
        for delivery in deliveries:
            if delivery.key in finished:
                NOTIFICATIONS.labels(delivery.channel.type, "duplicate").inc()
        return [delivery for delivery in deliveries if delivery.key not in finished]

    async def _attempt(self, delivery: Delivery) -> None:
        """One attempt; a retryable failure before the last attempt leaves the delivery "retrying"."""
        context = SendContext(delivery.key, delivery.ticket_id, str(delivery.transition or ""), delivery.recipient,
                              delivery.role)
        adapter = self._adapters(delivery.channel)
        async with self._slots:
            started = datetime.now(UTC)
            try:
                await adapter.send(delivery.message, context)
            except DeliveryError as error:
                NOTIFICATION_ATTEMPTS.labels(delivery.channel.type, error.kind).inc()
                delivery.attempts.append({"at": started, "result": error.kind, "detail": str(error)})
                delivery.error = str(error)
                if error.kind == "rate_limited" and not delivery.covers:
                    delivery.status = "rate_limited"  # to the next digest; a refused digest itself is retried
                elif error.retryable and delivery.attempt_count < self._settings.max_attempts:
                    delivery.status = "retrying"
                else:
                    delivery.status = "failed"
            else:
                NOTIFICATION_ATTEMPTS.labels(delivery.channel.type, "ok").inc()
                delivery.attempts.append({"at": started, "result": "ok", "detail": ""})
                delivery.status = "delivered"
                delivery.error = ""
        # An outcome once per message: a refused one counts as held (with its digest), a retried one when settled.
        if delivery.status not in ("rate_limited", "retrying"):
            NOTIFICATIONS.labels(delivery.channel.type, delivery.status).inc()

    async def _file_timers(self, held: Sequence[tuple[Delivery, datetime, str]], retries: Sequence[Delivery],
                           now: datetime) -> None:
        """File held messages in the digest of their channel and recipient that is sent at ``until``, and the next
        attempt of each retry at ``now`` + backoff; one write per collection."""
        entries: list[tuple[datetime, str]] = []
        for delivery in retries:
            due = now + retry_delay(delivery.attempt_count, self._settings.retry_base_s, self._settings.retry_max_s)
            entries.append((due, f"retry|{delivery.attempt_count + 1}|{due.isoformat()}|{delivery.key}"))
        if held:
            entries.extend((flush, f"digest|{digest_id}") for digest_id, flush in (await self._hold(held)).items())
        await self.timers.file(entries, now)

    async def _hold(self, held: Sequence[tuple[Delivery, datetime, str]]) -> dict[str, datetime]:
        """Add held messages to their digests; returns each digest's id and the time it is flushed."""
        digests: dict[str, dict[str, Any]] = {}
        flush_at: dict[str, datetime] = {}
        items: dict[str, list[dict[str, Any]]] = defaultdict(list)
        now = self._clock()
        for delivery, until, reason in held:
            # Round up to the next whole minute after both ``until`` and now (the batch's sends may have taken a
            # while): the bucket's minute must not have been swept already.
            flush = max(until, now).replace(second=0, microsecond=0) + timedelta(minutes=1)
            digest_id = f"{minute_id(flush)}|{channel_id(delivery.channel)}|{delivery.recipient}"
            flush_at[digest_id] = flush
            digests.setdefault(digest_id, {
                "flush_minute": minute_id(flush), "channel": delivery.channel.model_dump(mode="json"), "reason": reason,
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
        return flush_at

    async def flush_digests(self, digest_ids: Sequence[str], now: datetime) -> list[NotificationResult]:
        """Send each due digest as one message; the messages it covers count as delivered (or failed) with it."""
        documents = await find_by_ids(self._db[DIGESTS], digest_ids)
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
            update: dict[str, Any] = {
                "$set": {"status": delivery.status, "error": delivery.error, "updated_at": now},
                "$push": {"attempts": {"$each": delivery.attempts}},
            }
            if delivery.status == "retrying":
                update["$set"]["retry"] = delivery.retry_state()
            elif delivery.previous_attempts:
                update["$unset"] = {"retry": ""}
            operations.append(UpdateOne({"_id": delivery.key}, update))
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
                attempts=delivery.attempt_count,
                error=delivery.error,
            )
            for item in covered
            if item["transition"]
        ]
