"""What every service is made of, and its HTTP application: Kafka broker, MongoDB, domain configuration,
``/healthz``, ``/readyz``, ``/metrics`` and the AsyncAPI document; security headers and a deadline for request bodies
on every answer (civicbus.security).

A service module provides ``create_app(settings) -> FastAPI`` built with :func:`service_app`; no broker or client
exists at module level, so tests build as many isolated instances as they need.
"""

from __future__ import annotations

import asyncio
import stat
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from aiokafka.errors import KafkaError
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from faststream.kafka import KafkaBroker
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

import civicbus
from civicbus.asyncapi import service_document
from civicbus.auth import KeyStore, KeyThrottle
from civicbus.district import District, DistrictConfigError, load_district
from civicbus.errors import CivicbusError, is_transient
from civicbus.kafka import BatchHandler, Publisher, Subscription, create_broker, subscribe_batch, watch_consumer_lag
from civicbus.logs import configure_logging, get_logger
from civicbus.metrics import DEPENDENCY_UP, HTTP_REQUESTS, SERVICE_READY, SERVICE_UP
from civicbus.mongo import create_mongo, database, ping
from civicbus.security import API_POLICY, BodyDeadline, security_headers
from civicbus.security import HEADERS as SECURITY_HEADERS
from civicbus.settings import ServiceSettings
from civicbus.topics import Topic

log = get_logger(__name__)
INTERNAL_ERROR_TEXT = "服务内部错误，已记录，请稍后重试或联系管理员 (internal error; it has been logged)"

Hook = Callable[["Runtime"], Awaitable[None]]

RETRY_AFTER_S = 5
UNAVAILABLE_TEXT = ("服务暂时不可用：数据库或消息队列无响应，请稍后重试 "
                    "(temporarily unavailable: the store or the broker did not answer; retry later)")
"""The answer to a request that met a transient failure (``civicbus.errors.is_transient``): 503, Retry-After."""


@dataclass
class Runtime:
    """The connections and configuration one service instance works with."""

    settings: ServiceSettings
    broker: KafkaBroker
    publisher: Publisher
    mongo: AsyncMongoClient
    db: AsyncDatabase
    district: District
    on_start: list[Hook] = field(default_factory=list)
    on_stop: list[Hook] = field(default_factory=list)
    background: list[Hook] = field(default_factory=list)  # run while the service runs, cancelled at stop
    on_district_change: list[Callable[[District], None]] = field(default_factory=list)
    subscriptions: list[Subscription] = field(default_factory=list)
    # What /readyz tells operators without failing readiness (e.g. next year's holidays not configured).
    readiness_notes: list[Callable[[], dict[str, str]]] = field(default_factory=list)

    @classmethod
    def build(cls, settings: ServiceSettings) -> Runtime:
        """Validate the domain configuration (a broken file stops the service here) and create the clients."""
        district = load_district(settings.config_dir)
        broker = create_broker(settings)
        mongo = create_mongo(settings)
        return cls(settings, broker, Publisher(broker, settings), mongo, database(mongo, settings), district)

    def subscribe(self, topic: Topic, handler: BatchHandler) -> Subscription:
        """Consume ``topic`` in batches with ``handler`` (civicbus.kafka.subscribe_batch); its lag and its partitions
        are then known to the service."""
        subscription = subscribe_batch(self.broker, self.settings, topic, handler, self.publisher)
        self.subscriptions.append(subscription)
        return subscription


def _config_stamp(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """Every file of the folder and its sub-folders (a retrained model in ``models/``, a platform's mapping in
    ``upstream/``), by modification time and size. A file that vanishes while it is read (an editor's temporary
    file) is left out rather than ending the watch."""
    stamp = []
    for path in sorted(folder.rglob("*")):
        try:
            status = path.stat()
        except OSError:
            continue
        if stat.S_ISREG(status.st_mode):
            stamp.append((str(path.relative_to(folder)), status.st_mtime_ns, status.st_size))
    return tuple(stamp)


def _load_and_build(folder: Path, listeners: Sequence[Callable[[District], None]]) -> District:
    """In a worker thread, off the event loop: loading the files and building on them (a classifier model, an
    Aho-Corasick automaton, polygons) takes long enough to stall consumers. Each listener builds what depends on
    the configuration and swaps it in with one assignment; it raises if it cannot."""
    district = load_district(folder)
    for listener in listeners:
        listener(district)
    return district


async def watch_district(runtime: Runtime, interval: float = 3.0) -> None:
    """Reload the domain configuration when its files change, without a restart. A file that no longer validates
    is reported and the configuration in force stays: a typo never stops the service."""
    folder = runtime.district.folder
    stamp = _config_stamp(folder)
    while True:
        await asyncio.sleep(interval)
        try:
            current = _config_stamp(folder)
        except OSError as error:  # the folder itself briefly away (a deployment swapping it): look again later
            log.warning("配置目录暂不可读 (configuration folder unreadable)", error=str(error))
            continue
        if current == stamp:
            continue
        stamp = current
        try:
            district = await asyncio.to_thread(_load_and_build, folder, runtime.on_district_change)
        except (DistrictConfigError, ValueError) as error:
            log.error("配置文件有误，继续使用原配置 (invalid configuration; keeping the one in force)", error=str(error))
            continue
        runtime.district = district
        log.info("配置已重新加载 (configuration reloaded)", folder=str(folder))


def asyncapi_document(runtime: Runtime) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the service's Kafka interface, from the topic registry (civicbus.asyncapi)."""
    settings = runtime.settings
    return service_document(settings.service_name, civicbus.__version__, settings.topic_prefix)


async def _wait_for_mongo(runtime: Runtime, attempts: int = 30) -> None:
    for attempt in range(1, attempts + 1):
        try:
            await ping(runtime.mongo)
            return
        except Exception as error:
            if attempt == attempts:
                raise
            log.warning("MongoDB not reachable yet", attempt=attempt, error=str(error))
            await asyncio.sleep(1)


async def readiness_checks(runtime: Runtime) -> dict[str, str]:
    """What /readyz answers, and what the ``civicbus_dependency_up`` and ``civicbus_ready`` gauges say."""
    service = runtime.settings.service_name
    checks: dict[str, str] = {}
    try:
        checks["kafka"] = "ok" if await runtime.broker.ping(timeout=2.0) else "unreachable"
    except Exception as error:
        checks["kafka"] = f"error: {error}"
    try:
        await asyncio.wait_for(ping(runtime.mongo), timeout=2.0)
        checks["mongo"] = "ok"
    except Exception as error:
        checks["mongo"] = f"error: {error}"
    for dependency in ("kafka", "mongo"):
        DEPENDENCY_UP.labels(service, dependency).set(1 if checks[dependency] == "ok" else 0)
    for subscription in runtime.subscriptions:
        if subscription.halted:
            checks[f"consumer {subscription.topic.name}"] = f"stopped: {subscription.halted}"
    SERVICE_READY.labels(service).set(1 if all(value == "ok" for value in checks.values()) else 0)
    return checks


async def watch_readiness(runtime: Runtime, interval: float = 15.0) -> None:
    """Check readiness every ``interval`` seconds, so the gauges (and the alerts on them) do not depend on
    anyone calling /readyz."""
    while True:
        try:
            await readiness_checks(runtime)
        except Exception as error:  # never let the watcher die
            log.warning("readiness check failed", error=str(error))
        await asyncio.sleep(interval)


def service_app(
    runtime: Runtime,
    *,
    title: str,
    description: str,
    routers: Sequence[APIRouter] = (),
) -> FastAPI:
    settings = runtime.settings
    service = settings.service_name
    key_throttle = KeyThrottle(runtime.db)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_level, settings.log_json)
        SERVICE_UP.labels(service, civicbus.__version__).set(1)
        await _wait_for_mongo(runtime)
        for hook in runtime.on_start:
            await hook(runtime)
        await runtime.broker.start()
        tasks = [asyncio.create_task(task(runtime)) for task in runtime.background]
        tasks.append(asyncio.create_task(watch_readiness(runtime)))
        tasks.append(asyncio.create_task(key_throttle.watch(settings.key_throttle_refresh_s)))
        if runtime.subscriptions:
            tasks.append(asyncio.create_task(watch_consumer_lag(
                settings.kafka_bootstrap, service, runtime.subscriptions, settings.consumer.lag_interval_s)))
        log.info("service started", service=service, port=settings.http_port, district=runtime.district.name)
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await runtime.broker.stop()
            for hook in runtime.on_stop:
                await hook(runtime)
            await runtime.mongo.close()
            log.info("service stopped", service=service)

    app = FastAPI(title=title, description=description, version=civicbus.__version__, lifespan=lifespan)
    app.state.runtime = runtime
    app.state.key_store = KeyStore(runtime.db)
    app.state.key_throttle = key_throttle

    @app.middleware("http")
    async def count_requests(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        route = request.scope.get("route")
        HTTP_REQUESTS.labels(service, getattr(route, "path", "unmatched"), f"{response.status_code // 100}xx").inc()
        return response

    @app.get("/healthz", tags=["operations"], summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @app.get("/readyz", tags=["operations"], summary="Readiness: Kafka and MongoDB answer")
    async def readyz() -> JSONResponse:
        started = time.perf_counter()
        checks = await readiness_checks(runtime)
        ready = all(value == "ok" for value in checks.values())
        notes = {name: text for note in runtime.readiness_notes for name, text in note().items()}
        body = {"status": "ready" if ready else "not ready", "checks": checks, "notes": notes,
                "seconds": round(time.perf_counter() - started, 3)}
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/asyncapi.json", tags=["operations"], summary="AsyncAPI document of this service's Kafka interface")
    async def asyncapi() -> dict[str, Any]:
        return asyncapi_document(runtime)

    @app.exception_handler(PyMongoError)
    @app.exception_handler(KafkaError)
    @app.exception_handler(CivicbusError)
    @app.exception_handler(OSError)  # connection errors and timeouts
    async def unavailable(request: Request, error: Exception) -> JSONResponse:
        """The store or the broker away or too slow: 503 with when to retry, not a 500 that looks like a bug."""
        if not is_transient(error):
            raise error  # a real fault: the 500 it is
        log.warning("request failed: store or broker unavailable", path=request.url.path, error=repr(error))
        return JSONResponse(
            {"code": "unavailable", "detail": UNAVAILABLE_TEXT},
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )

    @app.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception) -> JSONResponse:
        """A fault of ours: logged (masked, like every log), answered plainly and with the security headers — the
        outermost handler answers past the middleware that adds them to everything else."""
        log.error("request failed", path=request.url.path, error=f"{type(error).__name__}: {error}")
        return JSONResponse({"code": "internal_error", "detail": INTERNAL_ERROR_TEXT}, status_code=500,
                            headers={**SECURITY_HEADERS, "Content-Security-Policy": API_POLICY})

    for router in routers:
        app.include_router(router)
    app.middleware("http")(security_headers)
    app.add_middleware(BodyDeadline, seconds=settings.http.body_timeout_s)  # outermost: it answers on its own
    return app


def serve(app: FastAPI, settings: ServiceSettings) -> None:
    """Run one service until SIGINT/SIGTERM (uvicorn drives the lifespan: broker and clients stop cleanly)."""
    uvicorn.run(app, host=settings.http.host, port=settings.http_port, log_level="warning", access_log=False)
