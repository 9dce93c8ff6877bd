"""Poison never stalls a partition, on the real broker and store: a record the store refuses is dead-lettered with
the reason and the next record on its partition is processed; a consumer dead-lettering everything stops itself
before it commits a whole topic into the DLQ; an event the schemas refuse never reaches a handler."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from pydantic import TypeAdapter

from civicbus.events import DeadLetter
from civicbus.kafka import BatchOutcome, Consumed, Publisher, create_broker, create_topics, subscribe_batch
from civicbus.settings import KafkaConsumerSettings
from civicbus.topics import DEAD_LETTERS, Topic

from .conftest import eventually, read_topic

pytestmark = pytest.mark.integration


def _test_topic() -> Topic:
    return Topic(name=f"civic.poison-{uuid.uuid4().hex[:6]}", description="a test topic", partitions=1, key="any",
                 schemas=(), producers=("test",), consumers=("test",), adapter=TypeAdapter(dict[str, Any]),
                 examples=())


async def _send(stack, topic: Topic, payloads: list[dict[str, Any]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
    await producer.start()
    try:
        for payload in payloads:
            await producer.send_and_wait(topic.full_name(stack.prefix), json.dumps(payload).encode(), key=b"one-key")
    finally:
        await producer.stop()


async def _dead_letters(stack, topic: Topic) -> list[DeadLetter]:
    letters = [DeadLetter.model_validate_json(record.value) for record in await read_topic(stack, DEAD_LETTERS.name)]
    return [letter for letter in letters if letter.original_topic == topic.full_name(stack.prefix)]


async def _consume(stack, topic: Topic, handler, **consumer: Any):
    settings = stack.settings("triage", consumer=KafkaConsumerSettings(batch_timeout_ms=20, retry_backoff_s=0.1,
                                                                       retry_backoff_max_s=0.2, **consumer))
    await create_topics(stack.bootstrap, stack.prefix, topics=[topic])
    broker = create_broker(settings)
    subscription = subscribe_batch(broker, settings, topic, handler, Publisher(broker, settings))
    await broker.start()
    return broker, subscription


async def test_a_document_the_store_refuses_is_dead_lettered_and_the_partition_moves_on(stack, mongo):
    topic = _test_topic()
    collection = mongo[f"poison_{uuid.uuid4().hex[:6]}"]

    async def store(batch: list[Consumed]) -> BatchOutcome:
        await collection.insert_many([{"_id": item.event["id"], **item.event["fields"]} for item in batch])
        return BatchOutcome()

    broker, _ = await _consume(stack, topic, store)
    try:
        await _send(stack, topic, [{"id": "before", "fields": {"ok": 1}},
                                   {"id": "poison", "fields": {"$where": "refused by the store"}},
                                   {"id": "after", "fields": {"ok": 2}}])
        await eventually(lambda: collection.find_one({"_id": "after"}), timeout=30, what="the record after the poison")
        (letter,) = await eventually(lambda: _dead_letters(stack, topic), timeout=30, what="the dead letter")
        assert letter.error_kind == "processing" and letter.original_offset == 1
        assert "$where" in letter.reason, "the reason says what the store refused"
        assert await collection.find_one({"_id": "before"}) is not None
    finally:
        await broker.stop()


async def test_a_consumer_dead_lettering_everything_stops_before_committing_the_topic(stack):
    topic = _test_topic()
    handled = 0

    async def broken(batch: list[Consumed]) -> BatchOutcome:  # a bad deploy: every record fails
        nonlocal handled
        handled += len(batch)
        raise KeyError("a field this deploy expects")

    broker, subscription = await _consume(stack, topic, broken, dlq_max_consecutive=5, max_records=3)
    try:
        await _send(stack, topic, [{"n": n} for n in range(20)])
        await eventually(lambda: asyncio.sleep(0, subscription.halted), timeout=30, what="the consumer to stop")
        await asyncio.sleep(1)  # it keeps reading the batch again, and dead-letters nothing more
        letters = await _dead_letters(stack, topic)
        assert 1 <= len(letters) < 5, "the batch that would pass the limit is neither dead-lettered nor committed"
        assert sorted(letter.original_offset for letter in letters) == list(range(len(letters)))
        assert "dead letters in a row" in subscription.halted
        assert handled > len(letters) + 3, "the stopped consumer retries (with backoff) instead of moving on"
    finally:
        await broker.stop()
