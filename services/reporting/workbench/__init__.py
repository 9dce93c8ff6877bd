"""The workbench (工单处置工作台): people close the loop in a browser, with their own accounts.

Served by reporting, on the same origin as the dashboard: reads come from reporting's ticket views, and every
action is a command sent to intake's command API (with a ``workbench`` key and the person in ``X-Actor-*``
headers), so triage's state machine stays the one door for writes. Accounts, sessions, login throttling and
attachments are reporting's own collections (``workbench_*``).
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError

from civicbus.service import Runtime

from .admin_api import router as admin_router
from .pages import router as pages_router
from .people import Workbench
from .signin import router as signin_router
from .tickets_api import router as tickets_router
from .validation import chinese_validation_errors

ROUTERS = (pages_router, signin_router, tickets_router, admin_router)


def install(app: FastAPI, runtime: Runtime) -> Workbench:
    """Give a reporting app the workbench: its stores, its client of intake, its error answers in Chinese (its
    routers are among the app's, :data:`ROUTERS`)."""
    workbench = Workbench.build(runtime)
    runtime.on_start.append(workbench.start)
    runtime.on_stop.append(workbench.stop)
    app.add_exception_handler(RequestValidationError, chinese_validation_errors)
    app.state.workbench = workbench
    return workbench
