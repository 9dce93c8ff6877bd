"""The intake service: its own JSON API, upstream work orders, Open311 and the ``civic.intake`` topic in;
``civic.events`` out; ticket commands out on ``civic.commands``, their decisions in from ``civic.command-results``."""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from civicbus.district import District
from civicbus.logs import get_logger
from civicbus.privacy import mask_personal_data
from civicbus.service import Runtime, service_app, watch_district
from .settings import IntakeSettings

from .admission import Admission
from .api import router
from .command_answers import subscribe_command_answers
from .commands import router as commands_router
from .kafka_entry import subscribe_intake_topic
from .open311 import Open311Error, open311_error_handler
from .open311 import router as open311_router
from .open311_catalog import load_catalog
from .open311_requests import RequestStore, subscribe_ticket_status
from .upstream import load_mappings

log = get_logger(__name__)


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    settings = settings or IntakeSettings()
    runtime = Runtime.build(settings)
    admission = Admission(load_mappings(settings.config_dir, runtime.district))
    subscribe_intake_topic(runtime, admission)
    answers = subscribe_command_answers(runtime)
    requests = RequestStore(runtime)
    # Followed even while the configuration offers no Open311: a reload may turn it on (or off and on again), and
    # the requests posted meanwhile must follow their tickets.
    subscribe_ticket_status(runtime, requests)
    app = service_app(
        runtime,
        title="civicbus intake",
        description="Accepts complaints, alarms and inspection findings (事件受理), published with acks=all.",
        routers=[router, commands_router, open311_router],
    )
    app.state.command_answers = answers
    app.state.open311 = load_catalog(settings.config_dir, runtime.district)  # None: Open311 is off (404)
    app.state.open311_requests = requests

    def use_new_configuration(district: District) -> None:
        # Both files are loaded before either is used: one that does not validate raises here, and the watch keeps
        # the pair in force and logs why. Each is then swapped in with one assignment, so a request sees the old
        # catalogue or the new one, the old mappings or the new ones, never a mix.
        mappings = load_mappings(district.folder, district)
        catalog = load_catalog(district.folder, district)
        if (catalog is None) != (app.state.open311 is None):
            log.info("Open311 已开通 (Open311 turned on)" if catalog else "Open311 已关闭 (Open311 turned off)")
        admission.mappings = mappings
        app.state.open311 = catalog

    runtime.on_district_change.append(use_new_configuration)
    runtime.background.append(watch_district)
    app.add_exception_handler(Open311Error, open311_error_handler)
    app.add_exception_handler(RequestValidationError, refuse_invalid_request)
    app.state.admission = admission
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_bytes)
    return app


async def refuse_invalid_request(request: Request, error: Exception) -> JSONResponse:
    """FastAPI's own 422 answer, except that what it echoes must be answerable: a NaN or infinity (Python's JSON
    parser reads them, JSON cannot carry them back) is echoed as text, a lone surrogate (``\ud800``, which JSON
    escapes allow and UTF-8 cannot encode) as ``?`` — the field is named instead of the answer failing as a 500
    whose traceback quotes the body. Echoed input is masked (``civicbus/privacy.py``) like anything else that
    leaves."""
    assert isinstance(error, RequestValidationError)
    return JSONResponse({"detail": _finite_json(jsonable_encoder(error.errors()))}, status_code=422)


def _finite_json(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return mask_personal_data(value.encode("utf-8", "replace").decode())
    if isinstance(value, dict):
        return {key: _finite_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite_json(item) for item in value]
    return value


class BodyLimit:
    """Refuses a request body larger than ``max_bytes`` with 413 — announced by Content-Length or found while
    reading a chunked upload — before it is parsed or published."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = JSONResponse(
            {"detail": f"请求过大：上限 {self.max_bytes} 字节 (request body too large)"}, status_code=413
        )
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_bytes:
            await refusal(scope, receive, send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise _BodyTooLarge
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except* _BodyTooLarge:  # may come wrapped in a task group's ExceptionGroup (Starlette's middleware)
            if not started:
                await refusal(scope, receive, send)


class _BodyTooLarge(Exception):
    """Raised from reading the body once it passed the limit; turned into the 413 answer above."""
