"""The notify service: consumes ``civic.tickets``, delivers messages, produces ``civic.notifications``; its timer
loop sends reminders, escalation steps and digests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import httpx
from fastapi import FastAPI

from civicbus.district import Channel
from civicbus.service import Runtime, service_app
from .settings import NotifySettings
from civicbus.topics import TICKETS

from .channels import ChannelAdapter, adapter_for, channel_id
from .delivery import DeliveryPipeline
from .handler import NotifyHandler
from .timers import Timers


def create_app(settings: NotifySettings | None = None, clock: Callable[[], datetime] | None = None) -> FastAPI:
    """``clock`` lets tests run reminders, escalation and quiet hours on simulated time."""
    settings = settings or NotifySettings()
    clock = clock or (lambda: datetime.now(UTC))
    runtime = Runtime.build(settings)
    district = runtime.district
    client = httpx.AsyncClient(
        timeout=settings.webhook_timeout_s,
        limits=httpx.Limits(max_connections=settings.concurrency),
        headers={"User-Agent": "civicbus-notify"},
    )
    adapters: dict[str, ChannelAdapter] = {}

    def adapter(channel: Channel) -> ChannelAdapter:
        name = channel_id(channel)
        if name not in adapters:
            adapters[name] = adapter_for(channel, district.notify, client)
        return adapters[name]

    pipeline = DeliveryPipeline(runtime.db, settings, district, adapter, runtime.publisher, clock)
    timers = Timers(runtime.db, district, pipeline, clock)

    async def close_client(_: Runtime) -> None:
        await client.aclose()

    async def run_timers(_: Runtime) -> None:
        await timers.run(settings.timer_tick_s)

    runtime.on_stop.append(close_client)
    runtime.background.append(run_timers)
    # The timers tick the partitions of civic.tickets this process owns, each under its in-flight guard.
    timers.subscription = runtime.subscribe(TICKETS, NotifyHandler(district, pipeline, timers))
    app = service_app(
        runtime,
        title="civicbus notify",
        description="Delivers ticket notifications to units and leaders (通知、提醒、升级).",
    )
    app.state.timers = timers
    app.state.pipeline = pipeline
    return app
