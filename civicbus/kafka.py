"""Kafka access for every service: the broker, keyed publishing with acks=all, batch consumption with a DLQ.

Delivery is at least once everywhere: a consumed batch is committed only after its handler has written its
results and published what it produces. Handlers are idempotent (they deduplicate by event id), so a batch read
again after a crash changes nothing twice. Records that cannot be decoded, or that a handler reports as failed,
go to the dead-letter topic with the reason and their original key; the partition keeps moving. A failure of
Kafka or MongoDB itself fails the whole batch, which is read again after a pause (nothing is committed); see
civicbus.errors for the split.
"""

from __future__ import annotations

import asyncio
import base64
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from pydantic import ValidationError

from civicbus.errors import TransientError, is_transient, validation_problems
from civicbus.events import DeadLetter, Event
from civicbus.logs import get_logger
from civicbus.metrics import (
    BATCH_RETRIES,
    BATCH_SIZE,
    CONSUMER_HALTED,
    CONSUMER_LAG,
    EVENTS_CONSUMED,
    EVENTS_PRODUCED,
    HANDLER_SECONDS,
)
from civicbus.settings import ServiceSettings
from civicbus.topics import ALL_TOPICS, DEAD_LETTERS, Topic

log = get_logger(__name__)


def create_broker(settings: ServiceSettings) -> KafkaBroker:
    """The service's broker. acks=all with an idempotent producer: an acknowledged event is on every in-sync replica
    and a producer retry never writes it twice."""
    return KafkaBroker(
        settings.kafka_bootstrap,
        client_id=f"civicbus-{settings.service_name}",
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        # FastStream's per-message access log costs more than handling an alarm; services log what matters.
        logger=None,
    )


def event_headers(event: Event) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "event-id": event.event_id,
        "event-kind": str(event.kind),
        "schema-version": str(event.schema_version),
        "correlation-id": event.correlation_id,
    }


class Publisher:
    """Publishes events keyed by their partition key and waits until Kafka has acknowledged all of them."""

    def __init__(self, broker: KafkaBroker, settings: ServiceSettings) -> None:
        self._broker = broker
        self._prefix = settings.topic_prefix
        self._service = settings.service_name

    async def publish(self, topic: Topic, events: Sequence[Event]) -> None:
        if not events:
            return
        name = topic.full_name(self._prefix)
        # Send all, then wait for all: one round of acknowledgements per batch instead of one per event.
        futures = [
            await self._broker.publish(
                event.encode(),
                name,
                key=event.partition_key.encode(),
                headers=event_headers(event),
                correlation_id=event.correlation_id,
                no_confirm=True,
            )
            for event in events
        ]
        try:
            await asyncio.gather(*futures)
        except Exception:
            EVENTS_PRODUCED.labels(self._service, topic.name, "failed").inc(len(events))
            raise
        EVENTS_PRODUCED.labels(self._service, topic.name, "acknowledged").inc(len(events))


@dataclass(frozen=True)
class Consumed:
    """One decoded record of a batch."""

    event: Any
    record: ConsumerRecord


@dataclass
class BatchOutcome:
    """What a batch handler reports: records it could not process (with the reason) and duplicates it skipped."""

    failed: list[tuple[Consumed, str]] = field(default_factory=list)
    duplicates: int = 0


BatchHandler = Callable[[list[Consumed]], Awaitable[BatchOutcome]]


def dead_letter_for(record: ConsumerRecord, service: str, error_kind: str, reason: str) -> DeadLetter:
    value: bytes = record.value or b""
    try:
        text, encoding = value.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(value).decode("ascii"), "base64"
    headers = {name: raw.decode("utf-8", "replace") for name, raw in (record.headers or ())}
    key = record.key.decode("utf-8", "replace") if record.key is not None else None
    return DeadLetter(
        source=f"civicbus.{service}",
        correlation_id=headers.get("correlation-id", ""),
        service=service,
        error_kind=error_kind,  # type: ignore[arg-type]
        reason=reason[:2000],
        original_topic=record.topic,
        original_partition=record.partition,
        original_offset=record.offset,
        original_key=key,
        original_value=text,
        value_encoding=encoding,  # type: ignore[arg-type]
        original_headers=headers,
    )


class DlqLimit:
    """Stops a consumer that is dead-lettering everything — a bad deploy, a store refusing every write — instead of
    committing a whole topic into the DLQ (getsentry/arroyo's ``DlqLimit``): too many dead letters in a row, or too
    large a share of the last records. A stopped consumer commits nothing, reports itself not ready and reads the
    batch again with backoff, so the records wait for the fix."""

    def __init__(self, max_consecutive: int, max_ratio: float, window: int) -> None:
        self._max_consecutive = max_consecutive
        self._max_ratio = max_ratio
        self._recent: deque[tuple[int, int]] = deque()  # (records, dead letters) of the last batches
        self._window = window
        self._consecutive = 0

    def exceeded_by(self, records: int, dead: int) -> str:
        """Why a batch with ``dead`` of ``records`` dead-lettered would pass the limit, or "" if it would not."""
        consecutive = self._consecutive + dead if dead == records else dead
        if consecutive >= self._max_consecutive:
            return f"{consecutive} dead letters in a row"
        total = records + sum(count for count, _ in self._recent)
        failed = dead + sum(count for _, count in self._recent)
        if total >= self._window and failed / total >= self._max_ratio:
            return f"{failed} of the last {total} records dead-lettered"
        return ""

    def record(self, records: int, dead: int) -> None:
        self._consecutive = self._consecutive + dead if dead == records else dead
        self._recent.append((records, dead))
        while len(self._recent) > 1 and sum(count for count, _ in self._recent) - self._recent[0][0] >= self._window:
            self._recent.popleft()


class Subscription(ConsumerRebalanceListener):
    """One consumer group's subscription in this process: which partitions it owns now, and the guard that makes a
    revoked partition's in-flight batch finish before the group hands the partition to another replica — so two
    replicas never handle one partition's records at once (one writer per key)."""

    def __init__(self, group_id: str, topic: Topic, topic_name: str) -> None:
        self.group_id = group_id
        self.topic = topic
        self.topic_name = topic_name
        self.assigned: set[int] = set()
        self.in_flight = asyncio.Lock()
        self.halted = ""  # why the DLQ limit stopped this consumer, or ""

    async def on_partitions_revoked(self, revoked: Any) -> None:
        async with self.in_flight:  # wait for the batch being handled, if any
            self.assigned -= {partition.partition for partition in revoked}

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.assigned = {partition.partition for partition in assigned}


async def _one_by_one(handler: BatchHandler, decoded: list[Consumed]) -> BatchOutcome:
    outcome = BatchOutcome()
    for item in decoded:
        try:
            single = await handler([item])
        except Exception as error:
            if is_transient(error):
                raise
            log.exception("record failed", event_id=getattr(item.event, "event_id", ""))
            outcome.failed.append((item, f"{type(error).__name__}: {error}"))
            continue
        outcome.failed.extend(single.failed)
        outcome.duplicates += single.duplicates
    return outcome


async def _raw_records(message: Any) -> Any:
    # Decoding is ours: a record FastStream failed to decode would fail its whole batch, forever.
    return message.raw_message


def subscribe_batch(
    broker: KafkaBroker,
    settings: ServiceSettings,
    topic: Topic,
    handler: BatchHandler,
    publisher: Publisher,
) -> Subscription:
    """Consume ``topic`` in batches; decode with the topic's schemas; dead-letter the undecodable and the failed;
    commit only after ``handler`` returned (at least once).

    Failures are classified (civicbus.errors): a transient one reads the batch again after a backoff that doubles
    per failure in a row; a permanent one is found by handling the batch's records one by one (handlers are
    idempotent) and dead-lets the record that caused it, and the partition moves on. A :class:`DlqLimit` stops a
    consumer that would dead-letter everything.

    Each service has a consumer group per topic (``triage.civic.events``): replicas of a service share the work,
    and a rebalance of one topic's consumers never stops another's."""
    service = settings.service_name
    topic_name = topic.full_name(settings.topic_prefix)
    group_id = f"{settings.topic_prefix}{service}.{topic.name}"
    subscription = Subscription(group_id, topic, topic_name)
    limits = DlqLimit(settings.consumer.dlq_max_consecutive, settings.consumer.dlq_max_ratio,
                      settings.consumer.dlq_ratio_window)
    failures_in_a_row = 0

    async def handle(records: Any) -> None:
        BATCH_SIZE.labels(service, topic.name).observe(len(records))
        decoded: list[Consumed] = []
        dead: list[DeadLetter] = []
        for record in records:
            try:
                decoded.append(Consumed(topic.adapter.validate_json(record.value or b""), record))
            except ValidationError as error:
                dead.append(dead_letter_for(record, service, "invalid", "; ".join(validation_problems(error))))
        try:
            outcome = await handler(decoded) if decoded else BatchOutcome()
        except Exception as error:
            if is_transient(error):
                raise
            # A record broke the batch: find it by handling the records one by one (handlers are idempotent, so
            # what the batch had applied is not applied twice).
            log.warning("batch failed on a record; isolating it", topic=topic_name, records=len(records),
                        error=f"{type(error).__name__}: {error}")
            outcome = await _one_by_one(handler, decoded)
        dead.extend(dead_letter_for(item.record, service, "processing", reason) for item, reason in outcome.failed)
        if why := limits.exceeded_by(len(records), len(dead)):
            subscription.halted = why
            CONSUMER_HALTED.labels(service, topic.name).set(1)
            log.error("消费者已停止：死信过多 (consumer stopped: too many dead letters; nothing committed)",
                      topic=topic_name, reason=why, example=dead[-1].reason if dead else "")
            raise TransientError(f"DLQ limit: {why}")
        if dead:
            await publisher.publish(DEAD_LETTERS, dead)
        limits.record(len(records), len(dead))
        if subscription.halted:
            subscription.halted = ""
            CONSUMER_HALTED.labels(service, topic.name).set(0)
        for letter in dead:
            log.warning(
                "record dead-lettered",
                topic=topic_name,
                partition=letter.original_partition,
                offset=letter.original_offset,
                event_id=letter.original_headers.get("event-id", ""),
                correlation_id=letter.correlation_id,
                reason=letter.reason,
            )
        EVENTS_CONSUMED.labels(service, topic.name, "dead_lettered").inc(len(dead))
        EVENTS_CONSUMED.labels(service, topic.name, "duplicate").inc(outcome.duplicates)
        EVENTS_CONSUMED.labels(service, topic.name, "processed").inc(len(decoded) - len(outcome.failed) - outcome.duplicates)

    @broker.subscriber(
        topic_name,
        group_id=group_id,
        batch=True,
        max_records=settings.consumer.max_records,
        batch_timeout_ms=settings.consumer.batch_timeout_ms,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        decoder=_raw_records,
        listener=subscription,
        title=f"{service}:{topic.name}",
        description=topic.description,
    )
    async def consume(records: Any) -> None:
        nonlocal failures_in_a_row
        started = time.perf_counter()
        try:
            async with subscription.in_flight:
                # Records fetched before a rebalance took their partition away are the new owner's now: handling them
                # here would make two writers. Left uncommitted, the new owner reads them.
                records = [record for record in records if record.partition in subscription.assigned]
                if records:
                    await handle(records)
        except Exception as error:
            # Kafka or MongoDB failed (or the DLQ limit stopped us): nothing of this batch is committed; it is read
            # again after a pause, taken outside the in-flight guard so that a rebalance need not wait for it.
            failures_in_a_row += 1
            BATCH_RETRIES.labels(service, topic.name, type(error).__name__).inc()
            log.warning("batch failed; it will be read again", topic=topic_name, records=len(records),
                        error=f"{type(error).__name__}: {error}", failures_in_a_row=failures_in_a_row)
            backoff = settings.consumer.retry_backoff_s * 2 ** min(failures_in_a_row - 1, 10)
            await asyncio.sleep(min(backoff, settings.consumer.retry_backoff_max_s) * random.uniform(0.8, 1.2))
            raise
        failures_in_a_row = 0
        HANDLER_SECONDS.labels(service, topic.name).observe(time.perf_counter() - started)

    return subscription


async def consumer_lag(bootstrap: str, subscriptions: Sequence[Subscription]) -> dict[tuple[str, str, int], int]:
    """(group, topic, partition) → records not yet committed by the group, from the broker's own figures: the
    group's committed offsets against the partitions' end offsets."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="civicbus-lag")
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, client_id="civicbus-lag", enable_auto_commit=False)
    await admin.start()
    await consumer.start()
    try:
        lag: dict[tuple[str, str, int], int] = {}
        descriptions = await admin.describe_topics([subscription.topic_name for subscription in subscriptions])
        partitions_of = {description["topic"]: sorted(partition["partition"] for partition in description["partitions"])
                         for description in descriptions if not description["error_code"]}
        for subscription in subscriptions:
            partitions = [TopicPartition(subscription.topic_name, partition)
                          for partition in partitions_of.get(subscription.topic_name, ())]
            if not partitions:
                continue
            ends = await consumer.end_offsets(partitions)
            committed = await admin.list_consumer_group_offsets(subscription.group_id, partitions=partitions)
            for partition in partitions:
                done = committed.get(partition)
                position = done.offset if done is not None and done.offset >= 0 else 0
                lag[(subscription.group_id, subscription.topic.name, partition.partition)] = max(
                    ends[partition] - position, 0)
        return lag
    finally:
        await consumer.stop()
        await admin.close()


async def watch_consumer_lag(bootstrap: str, service: str, subscriptions: Sequence[Subscription],
                             interval_s: float) -> None:
    """Publish every subscription's lag per partition as ``civicbus_consumer_lag`` for as long as the service runs."""
    while True:
        try:
            for (group, topic_name, partition), value in (await consumer_lag(bootstrap, subscriptions)).items():
                CONSUMER_LAG.labels(service, group, topic_name, str(partition)).set(value)
        except Exception as error:
            log.warning("consumer lag not measured", error=f"{type(error).__name__}: {error}")
        await asyncio.sleep(interval_s)


async def create_topics(
    bootstrap: str, prefix: str = "", replication_factor: int = 1, topics: Sequence[Topic] = ALL_TOPICS
) -> list[str]:
    """Create the topics that do not exist yet (idempotent). Returns the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="civicbus-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(topic.full_name(prefix), num_partitions=topic.partitions, replication_factor=replication_factor)
            for topic in topics
            if topic.full_name(prefix) not in existing
        ]
        if wanted:
            try:
                await admin.create_topics(wanted)
            except TopicAlreadyExistsError:
                pass  # another process created them meanwhile
        return [new.name for new in wanted]
    finally:
        await admin.close()
