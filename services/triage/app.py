"""The triage service: consumes ``civic.events``, produces ``civic.tickets``."""

from __future__ import annotations

from fastapi import FastAPI

from civicbus.kafka import subscribe_batch
from civicbus.service import Runtime, service_app
from civicbus.settings import TriageSettings
from civicbus.topics import EVENTS

from .decide import TriageEngine
from .handler import TriageHandler
from .store import TicketStore


def create_app(settings: TriageSettings | None = None) -> FastAPI:
    runtime = Runtime.build(settings or TriageSettings())
    store = TicketStore(runtime.db)
    handler = TriageHandler(TriageEngine(runtime.district), store, runtime.publisher)
    subscribe_batch(runtime.broker, runtime.settings, EVENTS, "triage", handler, runtime.publisher)
    return service_app(
        runtime,
        title="civicbus triage",
        description="Classifies, locates, routes and sets deadlines for every accepted event (分类、定位、派单、时限).",
    )
