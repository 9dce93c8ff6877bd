"""The reporting service: consumes ``civic.tickets`` and ``civic.notifications``; serves the leaders' API."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from civicbus.district import District
from civicbus.service import Runtime, service_app, watch_district
from .settings import ReportingSettings
from civicbus.topics import NOTIFICATIONS, TICKETS

from .api import router
from .config import load_reporting_config
from .dashboard import router as dashboard_router
from .exports_api import router as exports_router
from .handler import notification_results_handler, ticket_events_handler
from .projections import Projections
from .report import ReportError, Reports
from .workbench import ROUTERS as WORKBENCH_ROUTERS
from .workbench import install as install_workbench


def create_app(settings: ReportingSettings | None = None) -> FastAPI:
    runtime = Runtime.build(settings or ReportingSettings())
    config = load_reporting_config(runtime.settings.config_dir)  # a broken reporting.yaml stops the start here
    projections = Projections(runtime.db, runtime.district.timezone)

    async def ensure_indexes(_: Runtime) -> None:
        await projections.ensure_indexes()

    runtime.on_start.append(ensure_indexes)
    runtime.subscribe(TICKETS, ticket_events_handler(projections))
    runtime.subscribe(NOTIFICATIONS, notification_results_handler(projections))
    app = service_app(
        runtime,
        title="civicbus reporting",
        description="Read models, the leaders' API (figures, rankings, trends, overdue lists, tickets with timelines: "
                    "考核指标、排名、趋势、超期、工单) and the workbench where people act on tickets (工单处置工作台).",
        routers=[router, dashboard_router, exports_router, *WORKBENCH_ROUTERS],
    )
    install_workbench(app, runtime)
    reports = Reports(runtime.db, runtime.district, config)

    async def unanswerable(_: Request, error: Exception) -> JSONResponse:
        # A period, figure or filter the reports cannot answer (e.g. an unknown rank_by): the caller's to mend.
        return JSONResponse({"detail": str(error)}, status_code=422)

    app.add_exception_handler(ReportError, unanswerable)

    def use_new_configuration(district: District) -> None:
        # A broken reporting.yaml raises here: the configuration in force stays (see watch_district).
        reports.use_configuration(district, load_reporting_config(district.folder))

    runtime.on_district_change.append(use_new_configuration)
    runtime.background.append(watch_district)
    app.state.reports = reports
    return app
