"""Rebuild (重建) reporting's read models from the Kafka topics: clear them, then replay ``civic.tickets`` and
``civic.notifications`` from the beginning through the same projections the service applies.

The replay reads with its own consumer (no group, so the service's committed offsets stay as they are) up to the
end offsets taken when it starts. Each record is applied with its own partition, so it lands in the documents and
counter shares the service's consumer of that partition writes: projections are idempotent, so replaying on top of
existing read models changes nothing and a rebuilt model ends with the same figures. Stop the reporting service
while rebuilding: the replay writes every partition's documents, and FerretDB v1 updates are read-modify-write, so
a replica writing one of them at the same time could lose an update.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer
from pydantic import ValidationError
from pymongo.asynchronous.database import AsyncDatabase

from civicbus.kafka import Consumed
from civicbus.logs import get_logger
from civicbus.settings import ServiceSettings
from civicbus.topics import NOTIFICATIONS, TICKETS, Topic

from .projections import READ_MODELS, Projections

log = get_logger(__name__)
BATCH = 500
LEGACY_COLLECTIONS = ("counters",)  # per-scope counters of before the cube: dropped, no longer read


@dataclass
class ReplayResult:
    """Records read per topic, and those that could not be decoded (they went to the DLQ the first time too)."""

    read: dict[str, int] = field(default_factory=dict)
    undecodable: dict[str, int] = field(default_factory=dict)


async def _replay_topic(settings: ServiceSettings, topic: Topic,
                        apply: Callable[[Sequence[Consumed]], Awaitable[int]], result: ReplayResult) -> None:
    name = topic.full_name(settings.topic_prefix)
    # Without a group, a consumer subscribed to a topic is given all its partitions when it starts.
    consumer = AIOKafkaConsumer(name, bootstrap_servers=settings.kafka_bootstrap, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest", max_poll_records=BATCH)
    await consumer.start()
    try:
        partitions = sorted(consumer.assignment())
        ends = await consumer.end_offsets(partitions) if partitions else {}
        if partitions:
            await consumer.seek_to_beginning(*partitions)
        read = undecodable = 0
        while await _behind(consumer, ends):
            batch = await consumer.getmany(*partitions, timeout_ms=1000, max_records=BATCH)
            consumed = []
            for partition, records in batch.items():
                for record in records:
                    if record.offset >= ends[partition]:
                        continue  # arrived after the replay started: the service applies it
                    read += 1
                    try:
                        consumed.append(Consumed(topic.adapter.validate_json(record.value or b""), record))
                    except ValidationError:
                        undecodable += 1
            if consumed:
                await apply(consumed)
        result.read[topic.name], result.undecodable[topic.name] = read, undecodable
        log.info("topic replayed", topic=name, records=read, undecodable=undecodable)
    finally:
        await consumer.stop()


async def _behind(consumer: AIOKafkaConsumer, ends: dict[Any, int]) -> bool:
    """Whether some partition has not been read up to the end offset taken at the start."""
    for partition, end in ends.items():
        if await consumer.position(partition) < end:
            return True
    return False


async def replay(settings: ServiceSettings, db: AsyncDatabase, timezone: str) -> ReplayResult:
    """Apply every record of the two topics, from the beginning, to the read models in ``db`` as they are."""
    projections = Projections(db, timezone)
    await projections.ensure_indexes()
    result = ReplayResult()
    await _replay_topic(settings, TICKETS, projections.apply_ticket_events, result)
    await _replay_topic(settings, NOTIFICATIONS, projections.apply_notifications, result)
    return result


async def rebuild(settings: ServiceSettings, db: AsyncDatabase, timezone: str) -> ReplayResult:
    """Drop reporting's read models and replay the topics into them."""
    for name in (*READ_MODELS, *LEGACY_COLLECTIONS):
        await db.drop_collection(name)
    return await replay(settings, db, timezone)
