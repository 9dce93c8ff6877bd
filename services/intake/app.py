"""The intake service: HTTP in, ``civic.events`` out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from civicbus.service import Runtime, service_app
from civicbus.settings import IntakeSettings

from .api import router
from .commands import router as commands_router


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    settings = settings or IntakeSettings()
    runtime = Runtime.build(settings)
    app = service_app(
        runtime,
        title="civicbus intake",
        description="Accepts complaints, alarms and inspection findings (事件受理), published with acks=all.",
        routers=[router, commands_router],
    )

    @app.middleware("http")
    async def limit_body(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > settings.max_request_bytes:
            return JSONResponse(
                {"detail": f"请求过大：上限 {settings.max_request_bytes} 字节 (request body too large)"}, status_code=413
            )
        return await call_next(request)

    return app
