"""The delivery pipeline: claim → hold (quiet hours) → rate limit → send once → digest or retry timer →
publish the result → record → fall back. Modelled on Alertmanager's notification pipeline.

Every run works for one partition of ``civic.tickets`` — the Kafka handler's records of it, or the timer tick of a
partition this process owns — and writes only that partition's documents (see partitions.py): the notifications
of its tickets, its digests (``notify_digests``, ``_id`` = flush minute, channel, recipient, partition), its rate
counts and its timer buckets.

Exactly once as people see it. Each message has a notification key (ticket transition or timer, recipient, channel
id) claimed in ``notifications`` by inserting it under a unique ``_id`` — FerretDB's only atomic test-and-set — and
only the run whose insert created the key sends it: claim → send → publish the result → record. The result is
published before the record, under an event id made of the key alone, so a run stopped after the send loses no
count and one repeated counts once. A key that existed already is never sent again:

- recorded (delivered, failed, held, retrying, unconfirmed): nothing to send; a failed one gets the fallbacks a
  stop before them would have lost;
- still ``pending``: the run that claimed it stopped before its record (a crash, a kill, MongoDB away). Unless this
  very process knows it never began to send or hold it, the message may or may not have gone out: it is recorded
  ``unconfirmed`` and its result published as delivered, with that said in its error. The trade-off: at most once
  in that window — a stop between claim and send loses the message, visibly ``unconfirmed`` — where sending again
  sent every in-flight message twice (100 duplicates were measured with notify killed twice while catching up).

Only the first attempt happens in the Kafka batch: a receiver that is down must not hold the partition, and so every
other ticket's messages, for its backoff. A retryable failure leaves the message ``retrying`` (what to send is kept in
its ``notifications`` document) with a ``retry|attempt|due|key`` entry in its partition's minute bucket of its due
time; the tick makes the attempt, claimed under its own ``_id`` in ``notify_retry_claims`` so that a repeated tick or
a restart does not make it twice (an existing claim with the message still waiting for it is resolved as above).
The last failure does what a failure in the batch does: ``notification.failed`` and the fallback channels.

A channel's rate limit counts its sends per minute in ``notify_rates`` (``_id`` = ``rate:<channel>|<partition>``):
every partition's read and summed, this partition's written, once per run, so that a restart forgets nothing.
Held messages wait in their partition's digest, filed in its minute buckets; the tick sends each as one digest
(消息汇总) — a burst spread over several partitions makes one digest per partition.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import TypeAdapter
from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from civicbus.events import EventKind, NotificationResult, derived_event_id
from civicbus.kafka import Publisher
from civicbus.metrics import NOTIFICATION_ATTEMPTS, NOTIFICATIONS
from civicbus.mongo import bulk_write, find_by_ids, insert_missing, upsert_by_id
from civicbus.scheduling import minute_id
from .settings import NotifySettings
from civicbus.topics import NOTIFICATIONS as RESULTS
from civicbus.topics import TICKETS

from .channels import Channel, ChannelAdapter, DeliveryError, SendContext, channel_id
from .in_force import InForce
from .messages import VIEW, Message
from .partitions import partition_timers
from .schedule import RateLimiter, quiet_until, retry_delay

NOTIFICATIONS_COLLECTION = "notifications"
DIGESTS = "notify_digests"
RETRY_CLAIMS = "notify_retry_claims"
RATES = "notify_rates"
FINAL_STATES = ("delivered", "failed", "unconfirmed")  # a result is published for each, once
UNCONFIRMED = "unconfirmed: notify stopped between claiming and recording this message; it was sent at most once"
CHANNEL_ADAPTER: TypeAdapter[Channel] = TypeAdapter(Channel)
Clock = Callable[[], datetime]
AdapterFactory = Callable[[Channel], ChannelAdapter]


def rate_id(channel: str, partition: int) -> str:
    return f"rate:{channel}|{partition}"


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
        """What a retry (or, after the last one, a fallback) needs besides the fields every ``notifications``
        document has."""
        return {"correlation_id": self.correlation_id, "channel": self.channel.model_dump(mode="json"),
                "title": self.message.title, "text": self.message.text, "url": self.message.url,
                "button": self.message.button, "urgent": self.urgent,
                "covers": self.covers, "fallback_of": self.fallback_of}


class DeliveryPipeline:
    def __init__(
        self,
        db: AsyncDatabase,
        settings: NotifySettings,
        in_force: InForce,
        adapters: AdapterFactory,
        publisher: Publisher,
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        self._db = db
        self._collection = db[NOTIFICATIONS_COLLECTION]
        self._settings = settings
        self._in_force = in_force
        self._adapters = adapters
        self._publisher = publisher
        self._clock = clock
        self.timers = partition_timers(db, TICKETS.partitions)
        self._slots = asyncio.Semaphore(settings.concurrency)
        # Whose claims are whose: a pending key this process claimed and never began to send or hold (a MongoDB
        # failure between claim and send) is sent when its batch comes again; every other pending key is unconfirmed.
        self._process = uuid.uuid4().hex
        self._past_claim: set[str] = set()  # keys sent or held by this process and not recorded yet

    async def run(self, deliveries: Sequence[Delivery], partition: int) -> tuple[list[NotificationResult], set[str]]:
        """Deliver what has not been claimed before; returns the results published and the keys claimed before."""
        if not deliveries:
            return [], set()
        now = self._clock()
        claimed, earlier = await self._claim(deliveries, now)
        unsent: list[Delivery] = []
        interrupted: list[Delivery] = []
        failed: list[Delivery] = []
        for delivery, claim in earlier:
            if claim["status"] == "pending":
                (unsent if self._never_left(delivery.key, claim) else interrupted).append(delivery)
            elif claim["status"] == "failed" and not claim.get("digest"):  # a digest's failure had its own fallback
                failed.append(replace(delivery, error=claim.get("error", "")))
        results = await self._send([*claimed, *unsent], partition, now)
        results.extend(await self._settle(interrupted, failed, partition))
        return results, {delivery.key for delivery, _ in earlier}

    def _never_left(self, key: str, claim: dict[str, Any]) -> bool:
        """Whether this process made the claim and never began to send or hold the message (MongoDB failed between
        the two): then it is still this process's to send."""
        return claim.get("claimed_by") == self._process and key not in self._past_claim

    async def _send(self, pending: Sequence[Delivery], partition: int, now: datetime) -> list[NotificationResult]:
        """One attempt for each claimed delivery, then hold or schedule a retry, publish, record, fall back; the
        results."""
        if not pending:
            return []
        config = self._in_force.current
        quiet_end = quiet_until(now, config.notify.file.quiet_hours, config.zone)
        held: list[tuple[Delivery, datetime, str]] = []
        to_send: list[Delivery] = []
        limiter = await self._load_rates(pending)
        for delivery in pending:
            name = channel_id(delivery.channel)
            if quiet_end is not None and not delivery.urgent:
                held.append((delivery, quiet_end, "免打扰时段暂存的消息"))
            elif limiter.acquire(name, delivery.channel.rate_per_minute, now) or delivery.covers:
                to_send.append(delivery)  # a digest goes out even in a full window: it is what prevents a ban
            else:
                held.append((delivery, limiter.free_at(now), "发送过于频繁，合并发送"))
        await self._store_rates(limiter, partition, now)
        self._past_claim.update(delivery.key for delivery in pending)
        await asyncio.gather(*(self._attempt(delivery) for delivery in to_send))
        # A robot that says "too many" (another sender shares it) gets a digest in a minute, not retries now. The
        # minute counts from when the sends ended: they may have taken a while, and a digest's minute must not be
        # one a tick has flushed already.
        held.extend((delivery, self._clock() + timedelta(minutes=1), "发送过于频繁，合并发送")
                    for delivery in to_send if delivery.status == "rate_limited")
        # The timers before the record: a stop between the two leaves the key "pending" (unconfirmed when it comes
        # again), rather than "held" or "retrying" with no timer to send it.
        await self._file_timers(held, [delivery for delivery in to_send if delivery.status == "retrying"],
                                partition, now)
        return await self._finish(pending, partition)

    async def _finish(self, deliveries: Sequence[Delivery], partition: int) -> list[NotificationResult]:
        """Publish the results of the settled deliveries, then record every delivery, then fall back for the failed:
        a stop before the record leaves keys "pending", whose results are published again (the same events)."""
        results = [result for delivery in deliveries if delivery.status in FINAL_STATES
                   for result in self._results(delivery)]
        await self._publisher.publish(RESULTS, results)
        await self._record(deliveries)
        self._past_claim.difference_update(delivery.key for delivery in deliveries)
        return results + await self._fall_back([delivery for delivery in deliveries if delivery.status == "failed"],
                                               partition)

    async def _settle(self, interrupted: Sequence[Delivery], failed: Sequence[Delivery],
                      partition: int) -> list[NotificationResult]:
        """Resolve what an earlier run left: the ``interrupted`` deliveries (claimed, maybe sent, never recorded)
        become ``unconfirmed``; the ``failed`` ones get their fallbacks if they were never claimed."""
        now = datetime.now(UTC)
        for delivery in interrupted:
            delivery.attempts.append({"at": now, "result": "unconfirmed", "detail": UNCONFIRMED})
            delivery.status, delivery.error = "unconfirmed", UNCONFIRMED
            NOTIFICATIONS.labels(delivery.channel.type, "unconfirmed").inc()
        results = await self._finish(interrupted, partition) if interrupted else []
        return results + await self._fall_back(failed, partition)

    async def _fall_back(self, failed: Sequence[Delivery], partition: int) -> list[NotificationResult]:
        fallbacks = self._fallbacks(failed)
        return (await self.run(fallbacks, partition))[0] if fallbacks else []

    async def _load_rates(self, pending: Sequence[Delivery]) -> RateLimiter:
        """The per-minute send counts of the rate-limited channels about to be used, every partition's summed
        (``notify_rates``, ``_id`` = ``rate:<channel>|<partition>``, a field per minute): a restart does not forget
        the minute's sends, and replicas see each other's as of their last run. Two replicas that read the same
        counts at the same moment may still both send up to the limit (FerretDB has no atomic conditional
        increment); the robot's own "too many" answer then sends the rest to a digest."""
        limiter = RateLimiter()
        channels = {channel_id(delivery.channel) for delivery in pending if delivery.channel.rate_per_minute}
        if channels:
            stored = await find_by_ids(self._db[RATES], [rate_id(channel, partition) for channel in channels
                                                         for partition in range(TICKETS.partitions)])
            for channel in channels:
                limiter.load(channel, (document for doc_id, document in stored.items()
                                       if doc_id.startswith(f"rate:{channel}|")))
        return limiter

    async def _store_rates(self, limiter: RateLimiter, partition: int, now: datetime) -> None:
        """Add this run's sends to the partition's counts and drop the minutes the window no longer needs."""
        updates: dict[str, dict[str, Any]] = {}
        for channel, minutes in limiter.take_added().items():
            updates[rate_id(channel, partition)] = {"$inc": minutes}
            if expired := limiter.expired(channel, now):
                updates[rate_id(channel, partition)]["$unset"] = dict.fromkeys(expired, "")
        if updates:
            # $inc is not idempotent, and upsert_by_id resends a whole command when a document was created at the
            # same moment: create the documents first (idempotent), then add to them.
            await insert_missing(self._db[RATES], dict.fromkeys(updates, {}))
            await bulk_write(self._db[RATES],
                             [UpdateOne({"_id": doc_id}, update) for doc_id, update in updates.items()])

    async def retry(self, entries: Sequence[str], partition: int, now: datetime) -> list[NotificationResult]:
        """Make the retries of the partition's ``retry|attempt|due|key`` timer entries that are due at ``now``."""
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
        # The attempt's own claim (a unique _id) keeps a repeated tick or a restart from making it twice.
        claims = {f"{key}#{due[key]}": key for key in waiting}
        claimed = await insert_missing(self._db[RETRY_CLAIMS],
                                       {claim: {"at": now, "claimed_by": self._process} for claim in claims})
        earlier = await find_by_ids(self._db[RETRY_CLAIMS], set(claims) - claimed)
        unsent = {claim for claim, document in earlier.items() if self._never_left(claims[claim], document)}
        results = await self._send([self._rebuild(claims[claim], waiting[claims[claim]])
                                    for claim in sorted(claimed | unsent)], partition, now)
        # Made by a run that stopped before its record; or, for a failed one, the last attempt, whose fallbacks a
        # stop may have kept from being claimed.
        interrupted = [self._rebuild(claims[claim], waiting[claims[claim]]) for claim in sorted(set(earlier) - unsent)]
        failed = [self._rebuild(key, document) for key, document in documents.items()
                  if document["status"] == "failed" and len(document["attempts"]) == due[key] and "retry" in document]
        return results + await self._settle(interrupted, failed, partition)

    def _rebuild(self, key: str, document: dict[str, Any]) -> Delivery:
        state = document["retry"]
        transition = document["transition"]
        # A retry filed before messages carried links gets its ticket's page (or the workbench's, if about none).
        message = Message(state["title"], state["text"],
                          state.get("url") or self._in_force.current.renderer.page_url(document["ticket_id"]),
                          state.get("button", VIEW))
        return Delivery(
            key=key, ticket_id=document["ticket_id"], ticket_event_id=document["ticket_event_id"],
            correlation_id=state["correlation_id"], transition=EventKind(transition) if transition else None,
            recipient=document["recipient"], role=document["role"],
            channel=CHANNEL_ADAPTER.validate_python(state["channel"]), message=message,
            urgent=state["urgent"], covers=state["covers"], fallback_of=state["fallback_of"],
            previous_attempts=len(document["attempts"]), error=document.get("error", ""),
        )

    async def _claim(self, deliveries: Sequence[Delivery],
                     now: datetime) -> tuple[list[Delivery], list[tuple[Delivery, dict[str, Any]]]]:
        """Claim the keys; returns the deliveries this call claimed, and the others with their claim as stored."""
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
                    "claimed_by": self._process,
                    "attempts": [],
                }
                for delivery in deliveries
            },
        )
        # Only a key that existed already (a redelivered transition, a tick's look-back) may have been sent.
        earlier = await find_by_ids(self._collection, [delivery.key for delivery in deliveries
                                                       if delivery.key not in created],
                                    {"status": 1, "error": 1, "claimed_by": 1, "digest": 1})
        for delivery in deliveries:
            if delivery.key in earlier:
                NOTIFICATIONS.labels(delivery.channel.type, "duplicate").inc()
        return ([delivery for delivery in deliveries if delivery.key in created],
                [(delivery, earlier[delivery.key]) for delivery in deliveries if delivery.key in earlier])

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
                           partition: int, now: datetime) -> None:
        """File held messages in the partition's digest of their channel and recipient that is sent at ``until``,
        and the next attempt of each retry at ``now`` + backoff; one write per collection."""
        entries: list[tuple[datetime, str]] = []
        for delivery in retries:
            due = now + retry_delay(delivery.attempt_count, self._settings.retry_base_s, self._settings.retry_max_s)
            entries.append((due, f"retry|{delivery.attempt_count + 1}|{due.isoformat()}|{delivery.key}"))
        if held:
            entries.extend((flush, f"digest|{digest_id}")
                           for digest_id, flush in (await self._hold(held, partition)).items())
        await self.timers.file(entries, now, partition)

    async def _hold(self, held: Sequence[tuple[Delivery, datetime, str]], partition: int) -> dict[str, datetime]:
        """Add held messages to the partition's digests; returns each digest's id and the time it is flushed."""
        digests: dict[str, dict[str, Any]] = {}
        flush_at: dict[str, datetime] = {}
        items: dict[str, list[dict[str, Any]]] = defaultdict(list)
        now = self._clock()
        for delivery, until, reason in held:
            # Round up to the next whole minute after both ``until`` and now (the batch's sends may have taken a
            # while): the bucket's minute must not have been swept already.
            flush = max(until, now).replace(second=0, microsecond=0) + timedelta(minutes=1)
            digest_id = f"{minute_id(flush)}|{channel_id(delivery.channel)}|{delivery.recipient}|{partition}"
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

    async def flush_digests(self, digest_ids: Sequence[str], partition: int, now: datetime) -> list[NotificationResult]:
        """Send each due digest of the partition as one message; the messages it covers count as delivered (or
        failed) with it."""
        documents = await find_by_ids(self._db[DIGESTS], digest_ids)
        deliveries = []
        for digest_id, document in sorted(documents.items()):
            items = document.get("items", [])
            if not items:
                continue
            first = items[0]
            message = self._in_force.current.renderer.render_digest([item["line"] for item in items],
                                                                    document["reason"], now)
            deliveries.append(Delivery(
                key=f"digest:{digest_id}", ticket_id=first["ticket_id"], ticket_event_id=first["ticket_event_id"],
                correlation_id=first["correlation_id"],
                transition=EventKind(first["transition"]) if first["transition"] else None,
                recipient=document["recipient"], role=document["role"],
                channel=CHANNEL_ADAPTER.validate_python(document["channel"]), message=message, urgent=True,
                covers=items,
            ))
        return (await self.run(deliveries, partition))[0]

    async def _record(self, deliveries: Sequence[Delivery]) -> None:
        operations = []
        now = datetime.now(UTC)
        for delivery in deliveries:
            update: dict[str, Any] = {
                "$set": {"status": delivery.status, "error": delivery.error, "updated_at": now},
                "$push": {"attempts": {"$each": delivery.attempts}},
            }
            # A failed message keeps what it sent: a fallback that a stop kept from being claimed is made from it.
            if delivery.status in ("retrying", "failed"):
                update["$set"]["retry"] = delivery.retry_state()
            elif delivery.previous_attempts:
                update["$unset"] = {"retry": ""}
            operations.append(UpdateOne({"_id": delivery.key}, update))
            if delivery.status in FINAL_STATES:
                operations.extend(
                    UpdateOne({"_id": item["key"]},
                              {"$set": {"status": delivery.status, "digest": delivery.key, "updated_at": now}})
                    for item in delivery.covers
                )
        await bulk_write(self._collection, operations)

    def _fallbacks(self, failed: Sequence[Delivery]) -> list[Delivery]:
        """A message that failed for good goes to the fallback channels (兜底), once; a fallback has none."""
        fallbacks = []
        config = self._in_force.current
        for delivery in failed:
            if delivery.fallback_of:
                continue
            message = config.renderer.render_fallback(delivery.message, delivery.recipient, delivery.error)
            fallbacks.extend(Delivery(
                key=f"{delivery.key}:fallback:{channel_id(channel)}", ticket_id=delivery.ticket_id,
                ticket_event_id=delivery.ticket_event_id, correlation_id=delivery.correlation_id,
                transition=delivery.transition, recipient="fallback", role="fallback", channel=channel,
                message=message, urgent=True, fallback_of=delivery.key,
            ) for channel in config.notify.file.fallback)
        return fallbacks

    @staticmethod
    def _results(delivery: Delivery) -> list[NotificationResult]:
        """One result per message (a digest's: one per message it covers), its event id made of the key alone: a
        result published again after a stop, even as unconfirmed, is the same event."""
        failed = delivery.status == "failed"
        covered = delivery.covers or [{
            "key": delivery.key, "ticket_id": delivery.ticket_id, "ticket_event_id": delivery.ticket_event_id,
            "correlation_id": delivery.correlation_id, "transition": str(delivery.transition or ""),
        }]
        return [
            NotificationResult(
                event_id=derived_event_id(item["key"], "result"),
                kind=EventKind.notification_failed if failed else EventKind.notification_delivered,
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
