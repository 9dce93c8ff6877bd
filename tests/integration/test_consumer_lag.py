"""Consumer lag per group and partition, from the broker's own offsets, as the services export it."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaProducer
from pydantic import TypeAdapter

from civicbus.kafka import Subscription, consumer_lag, create_topics
from civicbus.topics import Topic

pytestmark = pytest.mark.integration


async def test_lag_counts_the_records_a_group_has_not_committed_per_partition(stack):
    topic = Topic(name=f"civic.lag-{uuid.uuid4().hex[:6]}", description="a test topic", partitions=2, key="any",
                  schemas=(), producers=("test",), consumers=("test",), adapter=TypeAdapter(dict), examples=())
    await create_topics(stack.bootstrap, stack.prefix, topics=[topic])
    name = topic.full_name(stack.prefix)
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
    await producer.start()
    try:
        for n in range(5):
            await producer.send_and_wait(name, b"{}", partition=0)
        await producer.send_and_wait(name, b"{}", partition=1)
    finally:
        await producer.stop()
    lag = await consumer_lag(stack.bootstrap, [Subscription(f"{stack.prefix}nobody.{topic.name}", topic, name)])
    assert lag == {(f"{stack.prefix}nobody.{topic.name}", topic.name, 0): 5,
                   (f"{stack.prefix}nobody.{topic.name}", topic.name, 1): 1}
