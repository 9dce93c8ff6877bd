"""Benchmark: an alarm storm through the real broker and store — how fast does triage absorb it?

Publishes N alarms from D devices straight onto civic.events (as an IoT platform would), with triage and reporting
running in this process on the embedded stack (`civicbus dev up`), and measures the time until every alarm is
counted on its device's ticket. Run: .venv/bin/python bench/alarm_storm.py --alarms 20000 --devices 20
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient

from civicbus.events import Alarm, AlarmRaised, Location
from civicbus.kafka import create_topics, subscribe_batch
from civicbus.service import Runtime
from civicbus.topics import EVENTS
from ops import devstack
from services.triage.decide import TriageEngine
from services.triage.handler import TriageHandler
from services.triage.response_level import ResponseLevelState
from services.triage.settings import TriageSettings
from services.triage.store import TicketStore


async def main(alarms: int, devices: int) -> None:
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    db_name = f"civicbus_bench_{prefix[5:-1]}"
    await create_topics(devstack.kafka_bootstrap(), prefix)
    settings = TriageSettings(kafka_bootstrap=devstack.kafka_bootstrap(), mongo_url=devstack.mongo_url(),
                              mongo_db=db_name, topic_prefix=prefix)
    runtime = Runtime.build(settings)
    handler = TriageHandler(TriageEngine(runtime.district), TicketStore(runtime.db), runtime.publisher,
                            ResponseLevelState(runtime.db))
    subscribe_batch(runtime.broker, settings, EVENTS, handler, runtime.publisher)

    names = [f"BENCH-{uuid.uuid4().hex[:6]}" for _ in range(devices)]
    events = [
        AlarmRaised(source="iot.smoke", data=Alarm(content="烟感报警", device_id=names[index % devices],
                                                   alarm_type="smoke", location=Location(lat=30.84, lon=120.05)))
        for index in range(alarms)
    ]
    payloads = [(event.partition_key.encode(), event.encode()) for event in events]
    producer = AIOKafkaProducer(bootstrap_servers=devstack.kafka_bootstrap(), acks="all", linger_ms=10,
                                enable_idempotence=True, max_batch_size=262144)
    await producer.start()
    started = time.perf_counter()
    futures = [await producer.send(f"{prefix}civic.events", value, key=key) for key, value in payloads]
    await asyncio.gather(*futures)
    published = time.perf_counter() - started
    await producer.stop()
    print(f"published {alarms} alarms in {published:.2f} s ({alarms / published:.0f}/s)")

    await runtime.broker.start()
    consume_started = time.perf_counter()
    client = AsyncMongoClient(devstack.mongo_url())
    tickets = client[db_name]["tickets"]
    while True:
        total = 0
        for name in names:
            document = await tickets.find_one({"fingerprint": f"{name}|smoke"},
                                              {"event_count": 1})
            total += document["event_count"] if document else 0
        if total >= alarms:
            break
        await asyncio.sleep(0.5)
    elapsed = time.perf_counter() - consume_started
    print(f"triage grouped {alarms} alarms into {devices} tickets in {elapsed:.2f} s ({alarms / elapsed:.0f} alarms/s)")
    await runtime.broker.stop()
    await client.drop_database(db_name)
    await client.close()
    await runtime.mongo.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--alarms", type=int, default=20000)
    parser.add_argument("--devices", type=int, default=20)
    arguments = parser.parse_args()
    devstack.up()
    asyncio.run(main(arguments.alarms, arguments.devices))
