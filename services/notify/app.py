"""The notify service: consumes ``civic.tickets``, delivers messages, produces ``civic.notifications``."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from civicbus.kafka import subscribe_batch
from civicbus.service import Runtime, service_app
from civicbus.settings import NotifySettings
from civicbus.topics import TICKETS

from .delivery import DeliveryPipeline
from .handler import NotifyHandler


def create_app(settings: NotifySettings | None = None) -> FastAPI:
    settings = settings or NotifySettings()
    runtime = Runtime.build(settings)
    client = httpx.AsyncClient(
        timeout=settings.webhook_timeout_s,
        limits=httpx.Limits(max_connections=settings.concurrency),
        headers={"User-Agent": "civicbus-notify"},
    )
    pipeline = DeliveryPipeline(runtime.db, settings, client)

    async def close_client(_: Runtime) -> None:
        await client.aclose()

    runtime.on_stop.append(close_client)
    handler = NotifyHandler(runtime.district, pipeline, runtime.publisher)
    subscribe_batch(runtime.broker, settings, TICKETS, handler, runtime.publisher)
    return service_app(
        runtime,
        title="civicbus notify",
        description="Delivers ticket notifications to units and leaders (通知、提醒、升级).",
    )
