"""Integration fixtures: the real Kafka broker and MongoDB-wire server (started by the project's own dev stack),
the four services running in this process on real ports, and a real local webhook receiver.

Each test session gets its own topic prefix and database, so runs never see each other's data.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import httpx
import pytest
import uvicorn
from aiokafka import AIOKafkaConsumer
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from civicbus.auth import Role, create_key
from civicbus.kafka import create_topics
from civicbus.settings import HttpSettings, ServiceSettings
from ops import devstack
from ops.services import build_service, service_entry
from ops.webhook_receiver import WebhookSink

from .replicas import free_port, poll

pytestmark = pytest.mark.integration
T = TypeVar("T")


@dataclass
class Stack:
    bootstrap: str
    mongo_url: str
    prefix: str
    db_name: str

    def settings(self, service: str, **overrides: Any) -> ServiceSettings:
        return service_entry(service).settings(
            kafka_bootstrap=self.bootstrap,
            mongo_url=self.mongo_url,
            mongo_db=self.db_name,
            topic_prefix=self.prefix,
            http=HttpSettings(port=free_port()),
            **overrides,
        )


@pytest.fixture(scope="session")
def stack() -> Stack:
    started = devstack.up()
    print("\n".join(started))
    prefix = f"t{uuid.uuid4().hex[:8]}."
    stack = Stack(devstack.kafka_bootstrap(), devstack.mongo_url(), prefix, f"civicbus_test_{prefix[1:-1]}")
    asyncio.run(create_topics(stack.bootstrap, stack.prefix))
    return stack


@pytest.fixture(scope="session")
async def mongo(stack: Stack) -> AsyncIterator[AsyncDatabase]:
    client = AsyncMongoClient(stack.mongo_url, tz_aware=True)
    yield client[stack.db_name]
    await client.drop_database(stack.db_name)
    await client.close()


@pytest.fixture(scope="session")
async def sink() -> AsyncIterator[WebhookSink]:
    receiver = await WebhookSink().start()
    os.environ["CIVICBUS_WEBHOOK_BASE"] = receiver.base_url  # read by the sample config's channel URLs
    # The session's services deliver at whatever hour CI runs; quiet hours are tested on simulated time.
    os.environ["CIVICBUS_QUIET_HOURS"] = "false"
    yield receiver
    await receiver.stop()


@dataclass
class RunningService:
    name: str
    base_url: str
    app: Any
    server: uvicorn.Server
    task: asyncio.Task

    async def stop(self) -> None:
        self.server.should_exit = True
        await self.task


async def serve(name: str, app: Any, port: int) -> RunningService:
    """Run a service's app in this process on a real port, once it has started (its consumers subscribed)."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 60
    while not server.started:
        if task.done():
            task.result()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} did not start")
        await asyncio.sleep(0.05)
    return RunningService(name, f"http://127.0.0.1:{port}", app, server, task)


async def start_service(stack: Stack, name: str, **overrides: Any) -> RunningService:
    settings = stack.settings(name, **overrides)
    if name == "reporting" and "public_base_url" not in overrides:  # the workbench's links point at itself
        settings = settings.model_copy(update={"public_base_url": f"http://127.0.0.1:{settings.http_port}"})
    return await serve(name, build_service(name, settings), settings.http_port)


# Notify retries on its timer tick: seconds, not the production minutes, for the flow tests on real time.
OVERRIDES: dict[str, dict[str, Any]] = {"notify": {"retry_base_s": 0.5, "retry_max_s": 2.0, "timer_tick_s": 1.0}}


async def workbench_settings(intake: RunningService, mongo: AsyncDatabase) -> dict[str, Any]:
    """The workbench sends its commands to this intake with a key of its own; its files go to GridFS, in the
    session's database (dropped at the end), and may be 1 MB (so a test's oversized upload stays small)."""
    return {"intake_url": intake.base_url, "workbench_key": await create_key(mongo, "workbench", Role.workbench),
            "attachments_store": "gridfs", "attachment_max_bytes": 1024 * 1024}


@pytest.fixture(scope="session")
async def services(
    stack: Stack, sink: WebhookSink, mongo: AsyncDatabase, api_key: str
) -> AsyncIterator[dict[str, RunningService]]:
    running = {}
    for name in ("intake", "triage", "notify", "reporting"):
        overrides = OVERRIDES.get(name, {})
        if name == "reporting":
            overrides = {**overrides, **await workbench_settings(running["intake"], mongo)}
        running[name] = await start_service(stack, name, **overrides)
    await _warm_up(running, mongo, api_key)
    yield running
    for service in running.values():
        await service.stop()


async def _warm_up(running: dict[str, RunningService], mongo: AsyncDatabase, api_key: str) -> None:
    """One event all the way through before any test, and one command answered: every consumer group has joined
    and got its partitions (on a fresh broker the first joins, and the creation of the offsets topic, take
    seconds)."""
    async with httpx.AsyncClient(timeout=15, headers={"X-API-Key": api_key}) as client:
        response = await client.post(f"{running['intake'].base_url}/v1/complaints",
                                      json={"content": "系统预热：东湖路路灯不亮", "address": "东湖路"})
        event_id = response.json()["event_id"]
        command = await client.post(f"{running['intake'].base_url}/v1/tickets/SF-WARM-UP/sign-for", json={})
        command_id = command.json()["command_id"]

        async def answered() -> bool:
            response = await client.get(f"{running['intake'].base_url}/v1/commands/{command_id}")
            return response.status_code == 409

        await eventually(answered, timeout=120, what="the warm-up command's answer (triage → intake)")

    async def delivered() -> dict | None:
        view = await mongo["ticket_views"].find_one({"source_event_id": event_id})
        return view and await mongo["ticket_notifications"].find_one({"_id": view["_id"]})

    await eventually(delivered, timeout=120, what="the warm-up event through all four services")


@pytest.fixture(scope="session")
async def api_key(mongo: AsyncDatabase) -> str:
    return await create_key(mongo, "integration-tests", Role.admin)


@pytest.fixture(scope="session")
async def http(api_key: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=15, headers={"X-API-Key": api_key}) as client:
        yield client


def local_day(moment: datetime | str) -> str:
    """The district's day (Asia/Shanghai) of a moment: counters are kept per local day."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.astimezone(ZoneInfo("Asia/Shanghai")).date().isoformat()


async def eventually(
    check: Callable[[], Awaitable[T | None]],
    timeout: float = 60.0,
    what: str = "condition",
    explain: Callable[[], Awaitable[str]] | None = None,
) -> T:
    """Poll ``check`` until it returns something truthy; on time-out, say what was awaited and, if given, what
    ``explain`` finds."""
    return await poll(check, timeout, what, interval=0.2, explain=explain)


async def read_topic(stack: Stack, topic: str, timeout: float = 5.0) -> list[Any]:
    """Every record currently on a topic, from the beginning."""
    consumer = AIOKafkaConsumer(
        f"{stack.prefix}{topic}", bootstrap_servers=stack.bootstrap, auto_offset_reset="earliest",
        enable_auto_commit=False, group_id=None,
    )
    await consumer.start()
    try:
        records = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            if not batch and records:
                break
            for partition_records in batch.values():
                records.extend(partition_records)
        return records
    finally:
        await consumer.stop()


async def drained(stack: Stack, service: str, topic: str) -> bool:
    """Whether ``service``'s consumer group has committed every record of ``topic`` (its lag is zero)."""
    from aiokafka.admin import AIOKafkaAdminClient

    name = f"{stack.prefix}{topic}"
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=stack.bootstrap, enable_auto_commit=False, group_id=None)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(f"{stack.prefix}{service}.{topic}")
        partitions = [partition for partition in committed if partition.topic == name]
        ends = await consumer.end_offsets(partitions) if partitions else {}
        return bool(partitions) and all(committed[partition].offset >= ends[partition] for partition in partitions)
    finally:
        await consumer.stop()
        await admin.close()
