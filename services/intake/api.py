"""Intake's own JSON API (事件接入): complaints (投诉), alarms (警情/告警) and inspection findings (巡查发现).

An event is answered ``202 Accepted`` only after Kafka has acknowledged it on every in-sync replica (acks=all):
an accepted event is never lost. ``Idempotency-Key`` makes a retried POST the same event (same id), which triage
recognises, so a retry never makes a second ticket.
"""

from __future__ import annotations

from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Header, HTTPException, Request, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

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


async def _accept(
    request: Request,
    submission: Envelope,
    content_type: type[EventContent],
    event_type: type[Event],
    principal_name: str,
    idempotency_key: str | None,
) -> Accepted:
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
    event = event_type(**envelope)
    structlog.contextvars.bind_contextvars(event_id=event.event_id, correlation_id=event.correlation_id)
    try:
        await request.app.state.runtime.publisher.publish(EVENTS, [event])
    except Exception as error:
        log.exception("event not accepted: Kafka did not acknowledge it")
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="事件暂未受理：消息队列不可用，请稍后重试 (Kafka unavailable; retry with the same Idempotency-Key)",
        ) from error
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



