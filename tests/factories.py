"""Test data built in one place: tickets, their lifecycle events, the incoming events they are made from and
triage's ``EventTriaged``. Each builder has sensible defaults and takes any field as an override, so a test names only
what it is about and a new required field is added here once, not in every helper."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from civicbus.events import (
    Alarm,
    AlarmRaised,
    CategoryEvidence,
    Complaint,
    ComplaintReceived,
    Event,
    EventKind,
    EventTriaged,
    LocationEvidence,
    RoutingExplanation,
    Severity,
    Ticket,
    TicketEvent,
    TicketState,
    derived_event_id,
    ticket_number,
)
from services.triage.groups import home_of

AT = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)  # a Wednesday, 10:00 in the sample district
EXPLANATION = RoutingExplanation(route_path=["默认"], category=CategoryEvidence(method="none", confidence=0),
                                 location=LocationEvidence(method="none"))


def make_ticket(**overrides: Any) -> Ticket:
    """A routed ticket made from a 12345 complaint about dust, created at ``AT``."""
    fields: dict[str, Any] = {
        "ticket_id": f"SF{uuid.uuid4().hex[:12].upper()}", "state": TicketState.routed,
        "event_kind": EventKind.complaint_received, "event_source": "12345", "source_event_id": str(uuid.uuid4()),
        "title": "工地扬尘", "content": "东湖路工地夜间扬尘", "severity": Severity.normal,
        "category": "environment.dust", "category_name": "生态环保/扬尘", "created_at": AT, "explanation": EXPLANATION,
    }
    return Ticket(**(fields | overrides))


def make_ticket_event(kind: EventKind = EventKind.ticket_routed, ticket: Ticket | None = None,
                      **overrides: Any) -> TicketEvent:
    """A lifecycle event as triage publishes it, carrying ``ticket`` (a new one by default), when it was made."""
    ticket = ticket if ticket is not None else make_ticket()
    fields: dict[str, Any] = {"kind": kind, "source": "civicbus.triage", "occurred_at": ticket.created_at,
                              "ticket": ticket, "correlation_id": ticket.source_event_id}
    return TicketEvent(**(fields | overrides))


def make_complaint(at: datetime = AT, **data: Any) -> ComplaintReceived:
    """A 12345 complaint received at ``at``; ``data`` overrides its content (``Complaint``)."""
    return ComplaintReceived(source="12345", occurred_at=at, recorded_at=at,
                             data=Complaint(**({"content": "东湖路工地夜间扬尘"} | data)))


def make_alarm(device_id: str = "SMK-0031", at: datetime = AT, **data: Any) -> AlarmRaised:
    """A smoke sensor's alarm raised at ``at``; ``data`` overrides its content (``Alarm``)."""
    return AlarmRaised(source="iot.smoke", occurred_at=at, recorded_at=at,
                       data=Alarm(**({"content": "烟感报警", "device_id": device_id, "alarm_type": "smoke"} | data)))


def fingerprint_of(alarm: AlarmRaised) -> str:
    """An alarm's fingerprint with the sample configuration's grouping (device and alarm type)."""
    return f"{alarm.data.device_id}|{alarm.data.alarm_type}"


def make_ticket_from(event: Event, **overrides: Any) -> Ticket:
    """The ticket triage makes of ``event``: numbered from it (the same number every time), created when it was
    recorded; an alarm's carries its fingerprint. ``overrides`` set any field (``repeat_key`` for a complaint's
    group)."""
    data = event.data  # type: ignore[attr-defined]
    fingerprint = fingerprint_of(event) if isinstance(event, AlarmRaised) else ""
    repeat_key = overrides.get("repeat_key", "")
    created_at = overrides.get("created_at", event.recorded_at)
    return make_ticket(**({
        "ticket_id": ticket_number("SF", created_at, event.event_id, home_of(event.event_id, fingerprint, repeat_key)),
        "event_kind": event.kind, "event_source": event.source, "source_event_id": event.event_id,
        "external_id": getattr(data, "external_id", ""), "title": data.title or data.content[:30],
        "content": data.content, "severity": data.severity, "created_at": created_at, "fingerprint": fingerprint,
        "last_event_at": event.occurred_at,
    } | overrides))


def make_triaged(incoming: Event | None = None, tickets: list[Ticket] | None = None,
                 **ticket_overrides: Any) -> EventTriaged:
    """``incoming`` (a complaint by default) as the triager forwards it: an alarm with no ticket (its owner decides
    the one that opens a ticket), anything else with the tickets it makes (by default one, ``make_ticket_from`` with
    ``ticket_overrides``); its home is its group's, as the triager sets it."""
    incoming = incoming if incoming is not None else make_complaint()
    if isinstance(incoming, AlarmRaised):
        tickets, home = [], home_of(incoming.event_id, fingerprint=fingerprint_of(incoming))
    else:
        tickets = tickets if tickets is not None else [make_ticket_from(incoming, **ticket_overrides)]
        home = home_of(incoming.event_id, repeat_key=tickets[0].repeat_key)
    return EventTriaged(event_id=derived_event_id(incoming.event_id, "triaged"), source="civicbus.triage",
                        occurred_at=incoming.occurred_at, correlation_id=incoming.correlation_id, incoming=incoming,
                        home=home, tickets=tickets)
