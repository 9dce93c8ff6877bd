"""A real local HTTP receiver for webhook notifications: the demo shows what units receive, tests assert on it.

It plays every unit's robot at ``/robot/<unit>`` and every leader's at ``/leader/<leader>``, records each request
(path, query string, headers, body), and can be told to fail the first requests (to exercise retries), to fail
every request to some paths (a robot that is gone), or to give a path a robot's own answers (e.g. DingTalk's
"too many messages" errcode) before the usual ``{"errcode": 0}``.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from fastapi import FastAPI, Request, Response


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    query: str = ""


@dataclass
class WebhookSink:
    host: str = "127.0.0.1"
    port: int = 0
    fail_first: int = 0
    received: list[Received] = field(default_factory=list)
    failing_paths: set[str] = field(default_factory=set)
    answers: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _server: uvicorn.Server | None = None
    _task: asyncio.Task | None = None
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/{kind}/{name}")
        async def receive(kind: str, name: str, request: Request) -> Response:
            path = f"/{kind}/{name}"
            if path in self.failing_paths:
                return Response(status_code=503)
            if self.fail_first > 0:  # spent only on requests that would have succeeded
                self.fail_first -= 1
                return Response(status_code=503)
            body = await request.json()
            queued = self.answers.get(path)
            if queued:
                return Response(content=orjson.dumps(queued.pop(0)), media_type="application/json")
            self.received.append(Received(path, dict(request.headers), body, request.url.query))
            self._arrived.set()
            return Response(content=b'{"errcode": 0, "errmsg": "ok"}', media_type="application/json")

        return app

    async def start(self) -> WebhookSink:
        if self.port == 0:
            with socket.socket() as probe:
                probe.bind((self.host, 0))
                self.port = probe.getsockname()[1]
        config = uvicorn.Config(self._app(), host=self.host, port=self.port, log_level="warning", access_log=False)
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            await asyncio.sleep(0.02)
        return self

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task

    def to(self, path: str) -> list[Received]:
        return [item for item in self.received if item.path == path]

    async def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        """Wait until at least ``count`` requests have arrived."""
        async with asyncio.timeout(timeout):
            while len(self.received) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.received
