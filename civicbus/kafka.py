"""Kafka access for every service: the broker, keyed publishing with acks=all, batch consumption with a DLQ.

Delivery is at least once everywhere: a consumed batch is committed only after its handler has written its
results and published what it produces. Handlers are idempotent (they deduplicate by event id), so a batch read
again after a crash changes nothing twice. Records that cannot be decoded, or that a handler reports as failed,
go to the dead-letter topic with the reason and their original key; the partition keeps moving. A failure of
Kafka or MongoDB itself fails the whole batch, which is read again after a pause (nothing is committed).
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from pydantic import ValidationError
from pymongo.errors import PyMongoError

from civicbus.events import DeadLetter, Event
from civicbus.logs import get_logger
from civicbus.metrics import BATCH_RETRIES, BATCH_SIZE, EVENTS_CONSUMED, EVENTS_PRODUCED, HANDLER_SECONDS
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


def describe_validation_error(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in item['loc']) or '(record)'}: {item['msg']}"
        for item in error.errors(include_url=False)
    )


# Failures of the infrastructure, not of a record: the batch is read again later, never dead-lettered.
INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (PyMongoError, KafkaError, OSError, asyncio.TimeoutError)


async def _one_by_one(handler: BatchHandler, decoded: list[Consumed]) -> BatchOutcome:
    outcome = BatchOutcome()
    for item in decoded:
        try:
            single = await handler([item])
        except INFRASTRUCTURE_ERRORS:
            raise
        except Exception as error:
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
) -> None:
    """Consume ``topic`` in batches; decode with the topic's schemas; dead-letter the undecodable and the failed;
    commit only after ``handler`` returned (at least once).

    Each service has a consumer group per topic (``triage.civic.events``): replicas of a service share the work,
    and a rebalance of one topic's consumers never stops another's."""
    service = settings.service_name
    topic_name = topic.full_name(settings.topic_prefix)
    group_id = f"{settings.topic_prefix}{service}.{topic.name}"

    @broker.subscriber(
        topic_name,
        group_id=group_id,
        batch=True,
        max_records=settings.consumer.max_records,
        batch_timeout_ms=settings.consumer.batch_timeout_ms,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        decoder=_raw_records,
        title=f"{service}:{topic.name}",
        description=topic.description,
    )
    async def consume(records: Any) -> None:
        started = time.perf_counter()
        BATCH_SIZE.labels(service, topic.name).observe(len(records))
        decoded: list[Consumed] = []
        dead: list[DeadLetter] = []
        for record in records:
            try:
                decoded.append(Consumed(topic.adapter.validate_json(record.value or b""), record))
            except ValidationError as error:
                dead.append(dead_letter_for(record, service, "invalid", describe_validation_error(error)))
        try:
            try:
                outcome = await handler(decoded) if decoded else BatchOutcome()
            except INFRASTRUCTURE_ERRORS:
                raise
            except Exception:
                # A record this code did not foresee broke the batch: find it by handling the records one by one
                # (handlers are idempotent, so what the batch had applied is not applied twice).
                log.exception("batch failed on a record; isolating it", topic=topic_name, records=len(records))
                outcome = await _one_by_one(handler, decoded)
            dead.extend(dead_letter_for(item.record, service, "processing", reason) for item, reason in outcome.failed)
            if dead:
                await publisher.publish(DEAD_LETTERS, dead)
        except Exception as error:
            # Kafka or MongoDB failed: nothing of this batch is committed; it is read again after a pause.
            BATCH_RETRIES.labels(service, topic.name, type(error).__name__).inc()
            log.exception("batch failed; it will be read again", topic=topic_name, records=len(records))
            await asyncio.sleep(settings.consumer.retry_backoff_s)
            raise
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
        HANDLER_SECONDS.labels(service, topic.name).observe(time.perf_counter() - started)


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
