"""The triage service: consumes ``civic.events`` (triager: decides and re-keys each event by its problem) and
``civic.commands`` (owner: opens, groups and changes tickets), produces ``civic.tickets``."""

from __future__ import annotations

from datetime import datetime

from fastapi import FastAPI

from civicbus.district import District
from civicbus.service import Runtime, service_app, watch_district
from .settings import TriageSettings
from civicbus.topics import COMMANDS, EVENTS
from civicbus.workcalendar import calendar_notes, report_holidays_known

from .commands import CommandHandler
from .decide import TriageEngine
from .handler import TriageHandler
from .owner import TicketOwner
from .overdue import OverdueSweeper
from .response_level import ResponseLevelState
from .response_level import router as response_level_router
from .store import TicketStore
from .triager import Triager


def create_app(settings: TriageSettings | None = None) -> FastAPI:
    settings = settings or TriageSettings()
    runtime = Runtime.build(settings)
    level = ResponseLevelState(runtime.db)
    handler = TriageHandler(TriageEngine(runtime.district), TicketStore(runtime.db), runtime.publisher, level)

    def use_new_rules(district: District) -> None:
        handler.engine = TriageEngine(district)

    runtime.on_district_change.append(use_new_rules)
    runtime.background.extend([watch_district, level.follow])
    runtime.subscribe(EVENTS, Triager(lambda: handler.engine, runtime.publisher, level))
    commands = CommandHandler(lambda: handler.engine, handler.store, runtime.publisher, runtime.db)
    runtime.subscribe(COMMANDS, TicketOwner(handler, commands))
    sweeper = OverdueSweeper(runtime.db, handler.store, runtime.publisher,
                             interval=settings.overdue_sweep_s)
    runtime.background.append(sweeper.run)
    runtime.background.append(lambda _: report_holidays_known(lambda: handler.engine.calendar))
    runtime.readiness_notes.append(lambda: calendar_notes(
        handler.engine.calendar, datetime.now(handler.engine.calendar.zone).date()))
    app = service_app(
        runtime,
        title="civicbus triage",
        description="Classifies, locates, routes and sets deadlines for every accepted event (分类、定位、派单、时限).",
        routers=[response_level_router],
    )
    app.state.response_level = level
    return app
