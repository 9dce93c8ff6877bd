"""Admission (受理): from a submission to the event published on ``civic.events`` — the one code path of the
single endpoints, the batch endpoint, upstream work orders, Open311 and the ``civic.intake`` topic.

A submission is validated by the kernel's schemas (``civicbus.events``: ``ComplaintSubmission`` … and
``SUBMISSION_ADAPTER``), whose field limits (text 5,000 characters, short fields 200, 30 labels, 20 photos) apply
wherever it came from. The event id is derived from the sender and its idempotency key — or, for a work order,
from the platform and its work-order number — so a retry is the same event, which triage recognises.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from civicbus.errors import PermanentError, validation_problems
from civicbus.events import (
    SUBMISSION_ADAPTER,
    Alarm,
    AlarmRaised,
    AlarmSubmission,
    Complaint,
    ComplaintReceived,
    ComplaintSubmission,
    Event,
    EventContent,
    Inspection,
    InspectionReported,
    InspectionSubmission,
    Submission,
    WorkOrderSubmission,
    derived_event_id,
    utcnow,
)

from .upstream import Mapping, WorkOrderRefused

KINDS: dict[type[Submission], tuple[type[EventContent], type[Event]]] = {
    ComplaintSubmission: (Complaint, ComplaintReceived),
    AlarmSubmission: (Alarm, AlarmRaised),
    InspectionSubmission: (Inspection, InspectionReported),
}
TYPES = ("complaint", "alarm", "inspection", "work_order")


class Inadmissible(PermanentError, ValueError):
    """A submission that cannot become an event (refused at the door: 4xx, or dead-lettered from ``civic.intake``);
    ``problems`` name the field and the reason, one each. Not triage's ``lifecycle.Refused``, a command the state
    machine turns down."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def parse(item: Any) -> Submission:
    """One item of a batch (or record of ``civic.intake``) as a submission, or :class:`Inadmissible`."""
    if not isinstance(item, dict) or item.get("type") not in TYPES:
        raise Inadmissible([f"type: 须为 {'、'.join(TYPES)} 之一 (must be one of {', '.join(TYPES)})"])
    try:
        return SUBMISSION_ADAPTER.validate_python(item)
    except ValidationError as error:
        raise Inadmissible(validation_problems(error)) from error


class Admission:
    def __init__(self, mappings: dict[str, Mapping]) -> None:
        self.mappings = mappings  # swapped whole when the configuration is reloaded (services/intake/app.py)

    def event(self, submission: Submission, sender: str, idempotency_key: str = "") -> Event:
        """The event of a valid submission from ``sender`` (an API key's name, or the source of a Kafka record).
        ``idempotency_key`` (a header) wins over the submission's own."""
        key = idempotency_key or submission.idempotency_key
        if isinstance(submission, WorkOrderSubmission):
            complaint = self.work_order(submission)
            # The platform's work-order number is the order's identity, whoever forwards it and however often.
            event_id = derived_event_id("intake", "work_order", submission.platform, complaint.external_id)
            return self._build(complaint, sender, event_id)
        return self._build(submission, sender, derived_event_id("intake", sender, key) if key else None)

    def work_order(self, submission: WorkOrderSubmission) -> ComplaintSubmission:
        mappings = self.mappings  # read once: a reload may swap them meanwhile
        mapping = mappings.get(submission.platform)
        if mapping is None:
            known = ", ".join(sorted(mappings)) or "none"
            raise Inadmissible([f"platform: 未配置的上游平台 {submission.platform!r} (no mapping; configured: {known})"])
        envelope = submission.model_dump(include={"source", "occurred_at", "correlation_id"}, exclude_defaults=True)
        try:
            return mapping.translate(submission.order, envelope)
        except WorkOrderRefused as error:
            raise Inadmissible(error.problems) from error

    @staticmethod
    def _build(submission: Submission, sender: str, event_id: str | None) -> Event:
        content_type, event_type = KINDS[type(submission)]
        try:
            data = content_type.model_validate(submission.model_dump(include=set(content_type.model_fields)))
            envelope: dict[str, Any] = {
                "source": submission.source or sender,
                "occurred_at": submission.occurred_at or utcnow(),
                "correlation_id": submission.correlation_id,
                "data": data,
            }
            if event_id:
                envelope["event_id"] = event_id
            return event_type(**envelope)
        except ValidationError as error:
            raise Inadmissible(validation_problems(error)) from error
