"""A store or broker that is away is a 503 with Retry-After, answered within a bound — not a 500 that looks like a
bug, nor a request held for as long as a client library retries."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from pymongo.errors import InvalidDocument

from services.intake.settings import IntakeSettings
from services.intake.app import create_app

from .conftest import free_port

pytestmark = pytest.mark.integration

COMPLAINT = {"content": "东湖路路灯不亮"}


def _client(app: FastAPI) -> httpx.AsyncClient:
    # In process, without the lifespan: nothing of the service starts but what a test starts itself.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://intake", timeout=30)


async def test_mongodb_away_answers_503_with_retry_after_not_500():
    nowhere = f"mongodb://127.0.0.1:{free_port()}/"  # nothing listens there
    app = create_app(IntakeSettings(mongo_url=nowhere, mongo_timeout_ms=300))
    started = time.monotonic()
    async with _client(app) as client:
        response = await client.post("/v1/complaints", json=COMPLAINT, headers={"X-API-Key": "cbk_any"})
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"].isdigit()
    assert response.json()["code"] == "unavailable" and "服务暂时不可用" in response.json()["detail"]
    assert time.monotonic() - started < 5


async def test_a_failure_that_is_not_transient_stays_a_500():
    app = create_app(IntakeSettings(mongo_url=f"mongodb://127.0.0.1:{free_port()}/"))

    @app.get("/broken")
    async def broken() -> None:
        raise InvalidDocument("key 'a.b' must not contain '.'")  # the record's fault, not the store's

    async with _client(app) as client:
        assert (await client.get("/broken")).status_code == 500


@pytest.fixture
async def intake_without_its_topics(stack, api_key) -> AsyncIterator[tuple[FastAPI, str]]:
    """Intake on the real broker, with a topic prefix whose topics do not exist: Kafka never acknowledges a publish
    (the client waits for the partition's metadata), as when the broker or the partition's leader is away."""
    settings = IntakeSettings(kafka_bootstrap=stack.bootstrap, mongo_url=stack.mongo_url, mongo_db=stack.db_name,
                              topic_prefix=f"absent{uuid.uuid4().hex[:6]}.", publish_timeout_s=0.5)
    app = create_app(settings)
    await app.state.runtime.broker.connect()
    yield app, api_key
    await app.state.runtime.broker.stop()
    await app.state.runtime.mongo.close()


async def test_kafka_not_acknowledging_answers_503_within_the_publish_timeout(intake_without_its_topics):
    app, api_key = intake_without_its_topics
    async with _client(app) as client:
        for path, body in (("/v1/complaints", COMPLAINT), ("/v1/events/batch", [{"type": "complaint", **COMPLAINT}]),
                           ("/v1/tickets/SF20261125AB12CD34EF/sign-for", {})):
            started = time.monotonic()
            response = await client.post(path, json=body, headers={"X-API-Key": api_key})
            assert response.status_code == 503, (path, response.text)
            assert response.headers["Retry-After"].isdigit()
            assert "消息队列不可用" in response.json()["detail"]
            # Unbounded, the client waited about 40 s for metadata; the margin is for a busy CI machine.
            assert time.monotonic() - started < 10, f"{path} held the request beyond publish_timeout_s"
