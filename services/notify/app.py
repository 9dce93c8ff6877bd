"""The notify service: consumes ``civic.tickets``, delivers messages, produces ``civic.notifications``; its timer
loop sends reminders, escalation steps and digests. It follows changes of the configuration's files without a
restart, as triage and reporting do (see in_force.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import httpx
from fastapi import FastAPI

from civicbus.service import Runtime, service_app, watch_district
from .settings import NotifySettings
from civicbus.topics import TICKETS

from .channels import Channel, ChannelAdapter, adapter_for, channel_id
from .delivery import DeliveryPipeline
from .handler import NotifyHandler
from .in_force import InForce
from .timers import Timers


class ChannelAdapters:
    """The adapter of each channel, made when first used and kept (an SMS adapter remembers the phones a retry need
    not text again). E-mail and SMS channels send through the server notify.yaml names: a reload that changes the
    server makes new adapters for them; one that leaves it alone keeps them."""

    def __init__(self, in_force: InForce, client: httpx.AsyncClient) -> None:
        self._in_force = in_force
        self._client = client
        self._made: dict[tuple[str, str], ChannelAdapter] = {}

    def __call__(self, channel: Channel) -> ChannelAdapter:
        notify = self._in_force.current.notify.file
        server = {"email": notify.smtp, "sms": notify.sms_gateway}.get(channel.type)
        key = (channel_id(channel), server.model_dump_json() if server is not None else "")
        if key not in self._made:
            self._made[key] = adapter_for(channel, notify, self._client)
        return self._made[key]


def create_app(settings: NotifySettings | None = None, clock: Callable[[], datetime] | None = None) -> FastAPI:
    """``clock`` lets tests run reminders, escalation and quiet hours on simulated time."""
    settings = settings or NotifySettings()
    clock = clock or (lambda: datetime.now(UTC))
    runtime = Runtime.build(settings)
    # A broken notify.yaml or channel stops notify here, naming the entry; later, it keeps the configuration in force.
    in_force = InForce(runtime.district, settings.public_base_url)
    client = httpx.AsyncClient(
        timeout=settings.webhook_timeout_s,
        limits=httpx.Limits(max_connections=settings.concurrency),
        headers={"User-Agent": "civicbus-notify"},
    )
    pipeline = DeliveryPipeline(runtime.db, settings, in_force, ChannelAdapters(in_force, client), runtime.publisher,
                                clock)
    timers = Timers(runtime.db, in_force, pipeline, clock)

    async def close_client(_: Runtime) -> None:
        await client.aclose()

    async def run_timers(_: Runtime) -> None:
        await timers.run(settings.timer_tick_s)

    runtime.on_stop.append(close_client)
    runtime.background.append(run_timers)
    runtime.on_district_change.append(in_force.use)
    runtime.background.append(watch_district)
    # The timers tick the partitions of civic.tickets this process owns, each under its in-flight guard.
    timers.subscription = runtime.subscribe(TICKETS, NotifyHandler(in_force, pipeline, timers))
    app = service_app(
        runtime,
        title="civicbus notify",
        description="Delivers ticket notifications to units and leaders (通知、提醒、升级).",
    )
    app.state.timers = timers
    app.state.pipeline = pipeline
    app.state.in_force = in_force
    return app
