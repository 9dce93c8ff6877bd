"""Intake's own JSON API (事件接入): complaints (投诉), alarms (警情/告警) and inspection findings (巡查发现), one at a
time or in batches, and upstream platforms' work orders (上游工单) in their own format.

An event is answered ``202 Accepted`` only after Kafka has acknowledged it on every in-sync replica (acks=all):
an accepted event is never lost. ``Idempotency-Key`` makes a retried POST the same event (same id), which triage
recognises, so a retry never makes a second ticket.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Annotated, Any

import orjson
import structlog
from fastapi import APIRouter, Header, HTTPException, Request, status
from pydantic import BaseModel, Field

from civicbus.auth import Submitter
from civicbus.events import (
    AlarmSubmission,
    ComplaintSubmission,
    Event,
    InspectionSubmission,
    Submission,
    WorkOrderSubmission,
)
from civicbus.logs import get_logger
from civicbus.service import RETRY_AFTER_S
from civicbus.topics import EVENTS, Topic

from .admission import Admission, Inadmissible, parse

log = get_logger(__name__)
router = APIRouter(prefix="/v1", tags=["intake"])


class Accepted(BaseModel):
    event_id: str
    correlation_id: str
    kind: str
    topic: str


IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", max_length=200, description="the same key gives the same event: retries are safe"),
]


def admission(request: Request) -> Admission:
    return request.app.state.admission


async def publish_acknowledged(request: Request, topic: Topic, events: Sequence[Event]) -> None:
    """Publish and wait for Kafka's acknowledgement of every event (acks=all) — at most ``publish_timeout_s``: a
    broker that is away would otherwise hold the request for as long as the client retries (TimeoutError)."""
    runtime = request.app.state.runtime
    await asyncio.wait_for(runtime.publisher.publish(topic, events), runtime.settings.publish_timeout_s)


async def _publish(request: Request, events: list[Event]) -> None:
    """Publish and wait for Kafka's acknowledgement of every event, or answer 503 with Retry-After."""
    try:
        await publish_acknowledged(request, EVENTS, events)
    except Exception as error:
        log.exception("events not accepted: Kafka did not acknowledge them", count=len(events))
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="事件暂未受理：消息队列不可用，请稍后重试 (Kafka unavailable; retry with the same Idempotency-Key)",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        ) from error


async def accept(request: Request, submission: Submission, sender: str, idempotency_key: str | None) -> Accepted:
    """Admit one submission, publish its event and wait for Kafka's acknowledgement; 422 with the problems if it
    cannot become an event."""
    try:
        event = admission(request).event(submission, sender, idempotency_key or "")
    except Inadmissible as error:
        raise HTTPException(422, detail=error.problems) from error
    structlog.contextvars.bind_contextvars(event_id=event.event_id, correlation_id=event.correlation_id)
    await _publish(request, [event])
    log.info("event accepted", kind=str(event.kind), source=event.source)
    return Accepted(
        event_id=event.event_id,
        correlation_id=event.correlation_id,
        kind=str(event.kind),
        topic=EVENTS.full_name(request.app.state.runtime.settings.topic_prefix),
    )


@router.post("/complaints", status_code=202, response_model=Accepted, summary="Accept a complaint (受理投诉)")
async def post_complaint(
    submission: ComplaintSubmission, request: Request, principal: Submitter, idempotency_key: IdempotencyKey = None
) -> Accepted:
    return await accept(request, submission, principal.name, idempotency_key)


@router.post("/alarms", status_code=202, response_model=Accepted, summary="Accept an alarm (接收告警/警情)")
async def post_alarm(
    submission: AlarmSubmission, request: Request, principal: Submitter, idempotency_key: IdempotencyKey = None
) -> Accepted:
    return await accept(request, submission, principal.name, idempotency_key)


@router.post("/inspections", status_code=202, response_model=Accepted, summary="Accept an inspection finding (巡查发现)")
async def post_inspection(
    submission: InspectionSubmission,
    request: Request,
    principal: Submitter,
    idempotency_key: IdempotencyKey = None,
) -> Accepted:
    return await accept(request, submission, principal.name, idempotency_key)


@router.post(
    "/upstream/{platform}/work-orders",
    status_code=202,
    response_model=Accepted,
    summary="Accept a work order in an upstream platform's own format (上游工单, e.g. 12345)",
    description=(
        "The body is the work order as the platform sends it; the platform's mapping file "
        "(`config/…/upstream/<platform>.yaml`) translates it into a complaint. The work-order number makes a resent "
        "order the same event. 404 for a platform without a mapping, 422 naming the fields that do not map."
    ),
)
async def post_work_order(
    platform: str, order: dict[str, Any], request: Request, principal: Submitter
) -> Accepted:
    if platform not in admission(request).mappings:
        raise HTTPException(404, detail=f"未配置的上游平台 {platform!r} (no mapping for this platform)")
    return await accept(request, WorkOrderSubmission(platform=platform, order=order), principal.name, None)


# --------------------------------------------------------------------------- batches

MAX_BATCH_ITEMS = 1000


class ItemResult(BaseModel):
    index: int
    status: str = Field(description="accepted or invalid")
    event_id: str = ""
    errors: list[str] = []


class BatchAnswer(BaseModel):
    accepted: int
    invalid: int
    results: list[ItemResult]


def _parse_batch(body: bytes, content_type: str) -> list[Any]:
    try:
        if "ndjson" in content_type or "jsonl" in content_type:
            return [orjson.loads(line) for line in body.splitlines() if line.strip()]
        items = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise HTTPException(400, detail=f"请求体不是有效的 JSON (invalid JSON): {error}") from error
    if not isinstance(items, list):
        raise HTTPException(400, detail="请求体应为 JSON 数组或 NDJSON (a JSON array or NDJSON is expected)")
    return items


@router.post(
    "/events/batch",
    response_model=BatchAnswer,
    summary="Accept a batch of events (批量受理): a JSON array or NDJSON, with a result per item",
    description=(
        "Each item is an object with `type` (complaint, alarm, inspection or work_order), the fields of that kind, "
        "and an optional `idempotency_key`; the same JSON may be published on the `civic.intake` topic instead. Valid items are published together and acknowledged by Kafka before the "
        "answer; invalid items are answered with their errors and change nothing. At most "
        f"{MAX_BATCH_ITEMS} items."
    ),
)
async def post_batch(request: Request, principal: Submitter) -> BatchAnswer:
    items = _parse_batch(await request.body(), request.headers.get("content-type", ""))
    if len(items) > MAX_BATCH_ITEMS:
        raise HTTPException(413, detail=f"批量条数过多：上限 {MAX_BATCH_ITEMS} 条 (too many items)")
    results: list[ItemResult] = []
    events: list[Event] = []
    for index, item in enumerate(items):
        try:
            event = admission(request).event(parse(item), principal.name)
        except Inadmissible as error:
            results.append(ItemResult(index=index, status="invalid", errors=error.problems))
            continue
        events.append(event)
        results.append(ItemResult(index=index, status="accepted", event_id=event.event_id))
    if events:
        await _publish(request, events)
    log.info("batch accepted", accepted=len(events), invalid=len(results) - len(events))
    return BatchAnswer(accepted=len(events), invalid=len(results) - len(events), results=results)
