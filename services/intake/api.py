"""Intake's own JSON API (事件接入): complaints (投诉), alarms (警情/告警) and inspection findings (巡查发现).

An event is answered ``202 Accepted`` only after Kafka has acknowledged it on every in-sync replica (acks=all):
an accepted event is never lost. ``Idempotency-Key`` makes a retried POST the same event (same id), which triage
recognises, so a retry never makes a second ticket.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
import structlog
from fastapi import APIRouter, Header, HTTPException, Request, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from civicbus.auth import CurrentPrincipal
from civicbus.events import (
    Alarm,
    AlarmRaised,
    Complaint,
    ComplaintReceived,
    Event,
    EventContent,
    Inspection,
    InspectionReported,
    derived_event_id,
    utcnow,
)
from civicbus.logs import get_logger
from civicbus.topics import EVENTS

log = get_logger(__name__)
router = APIRouter(prefix="/v1", tags=["intake"])


class Envelope(BaseModel):
    """Optional envelope fields a sender may set; civicbus fills in the rest."""

    model_config = ConfigDict(extra="forbid")

    source: str | None = Field(default=None, max_length=200, description="the sending system; default: the API key's name")
    occurred_at: AwareDatetime | None = Field(default=None, description="when it happened; default: now")
    correlation_id: str | None = Field(default=None, max_length=100)


class ComplaintSubmission(Complaint, Envelope):
    pass


class AlarmSubmission(Alarm, Envelope):
    pass


class InspectionSubmission(Inspection, Envelope):
    pass


class Accepted(BaseModel):
    event_id: str
    correlation_id: str
    kind: str
    topic: str


IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", max_length=200, description="the same key gives the same event: retries are safe"),
]


def _event_id(principal_name: str, idempotency_key: str | None) -> str | None:
    # Scoped to the sender: two systems choosing the same key are two events.
    return derived_event_id("intake", principal_name, idempotency_key) if idempotency_key else None


def _build(
    submission: Envelope,
    content_type: type[EventContent],
    event_type: type[Event],
    principal_name: str,
    idempotency_key: str | None,
) -> Event:
    data = content_type.model_validate(submission.model_dump(include=set(content_type.model_fields)))
    envelope: dict[str, Any] = {
        "source": submission.source or principal_name,
        "occurred_at": submission.occurred_at or utcnow(),
        "correlation_id": submission.correlation_id or "",
        "data": data,
    }
    event_id = _event_id(principal_name, idempotency_key)
    if event_id:
        envelope["event_id"] = event_id
    return event_type(**envelope)


async def _publish(request: Request, events: list[Event]) -> None:
    """Publish and wait for Kafka's acknowledgement of every event (acks=all), or answer 503."""
    try:
        await request.app.state.runtime.publisher.publish(EVENTS, events)
    except Exception as error:
        log.exception("events not accepted: Kafka did not acknowledge them", count=len(events))
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="事件暂未受理：消息队列不可用，请稍后重试 (Kafka unavailable; retry with the same Idempotency-Key)",
        ) from error


async def _accept(
    request: Request,
    submission: Envelope,
    content_type: type[EventContent],
    event_type: type[Event],
    principal_name: str,
    idempotency_key: str | None,
) -> Accepted:
    event = _build(submission, content_type, event_type, principal_name, idempotency_key)
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
    submission: ComplaintSubmission, request: Request, principal: CurrentPrincipal, idempotency_key: IdempotencyKey = None
) -> Accepted:
    return await _accept(request, submission, Complaint, ComplaintReceived, principal.name, idempotency_key)


@router.post("/alarms", status_code=202, response_model=Accepted, summary="Accept an alarm (接收告警/警情)")
async def post_alarm(
    submission: AlarmSubmission, request: Request, principal: CurrentPrincipal, idempotency_key: IdempotencyKey = None
) -> Accepted:
    return await _accept(request, submission, Alarm, AlarmRaised, principal.name, idempotency_key)


@router.post("/inspections", status_code=202, response_model=Accepted, summary="Accept an inspection finding (巡查发现)")
async def post_inspection(
    submission: InspectionSubmission,
    request: Request,
    principal: CurrentPrincipal,
    idempotency_key: IdempotencyKey = None,
) -> Accepted:
    return await _accept(request, submission, Inspection, InspectionReported, principal.name, idempotency_key)





# --------------------------------------------------------------------------- batches

MAX_BATCH_ITEMS = 1000
KINDS = {
    "complaint": (ComplaintSubmission, Complaint, ComplaintReceived),
    "alarm": (AlarmSubmission, Alarm, AlarmRaised),
    "inspection": (InspectionSubmission, Inspection, InspectionReported),
}


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
        "Each item is an object with `type` (complaint, alarm or inspection), the fields of that kind, and an "
        "optional `idempotency_key`. Valid items are published together and acknowledged by Kafka before the "
        "answer; invalid items are answered with their errors and change nothing. At most "
        f"{MAX_BATCH_ITEMS} items."
    ),
)
async def post_batch(request: Request, principal: CurrentPrincipal) -> BatchAnswer:
    items = _parse_batch(await request.body(), request.headers.get("content-type", ""))
    if len(items) > MAX_BATCH_ITEMS:
        raise HTTPException(413, detail=f"批量条数过多：上限 {MAX_BATCH_ITEMS} 条 (too many items)")
    results: list[ItemResult] = []
    events: list[Event] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or item.get("type") not in KINDS:
            results.append(ItemResult(index=index, status="invalid",
                                      errors=["type: 须为 complaint、alarm 或 inspection (must be complaint, alarm or inspection)"]))
            continue
        fields = {key: value for key, value in item.items() if key not in ("type", "idempotency_key")}
        submission_type, content_type, event_type = KINDS[item["type"]]
        try:
            submission = submission_type.model_validate(fields)
            event = _build(submission, content_type, event_type, principal.name, item.get("idempotency_key"))
        except ValidationError as error:
            results.append(ItemResult(index=index, status="invalid", errors=[
                f"{'.'.join(str(part) for part in problem['loc'])}: {problem['msg']}"
                for problem in error.errors(include_url=False)
            ]))
            continue
        events.append(event)
        results.append(ItemResult(index=index, status="accepted", event_id=event.event_id))
    if events:
        await _publish(request, events)
    log.info("batch accepted", accepted=len(events), invalid=len(results) - len(events))
    return BatchAnswer(accepted=len(events), invalid=len(results) - len(events), results=results)
