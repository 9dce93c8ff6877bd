"""The topic registry: every Kafka topic civicbus uses, its schemas, key, producers, consumers and an example.

Modelled on getsentry/sentry-kafka-schemas: a reader finds here what flows where and how it is keyed.
``civicbus topics describe`` prints it; ``civicbus topics create`` creates the topics.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import TypeAdapter

from civicbus.events import (
    INCOMING_ADAPTER,
    SUBMISSION_ADAPTER,
    TICKET_INPUT_ADAPTER,
    Action,
    Actor,
    Alarm,
    AlarmRaised,
    AlarmSubmission,
    CategoryEvidence,
    CommandDecided,
    Complaint,
    ComplaintReceived,
    ComplaintSubmission,
    DeadLetter,
    Event,
    EventKind,
    EventTriaged,
    Inspection,
    InspectionReported,
    InspectionSubmission,
    Location,
    LocationEvidence,
    NotificationResult,
    RoutingExplanation,
    Severity,
    Ticket,
    TicketCommand,
    TicketEvent,
    TicketState,
    WorkOrderSubmission,
)


@dataclass(frozen=True)
class Topic:
    name: str
    description: str
    partitions: int
    key: str
    schemas: tuple[type[Event], ...]  # civic.intake: submissions (they have kind and encode too)
    producers: tuple[str, ...]
    consumers: tuple[str, ...]
    adapter: TypeAdapter
    examples: tuple[Event, ...]

    def full_name(self, prefix: str = "") -> str:
        return f"{prefix}{self.name}"


_AT = datetime(2026, 9, 20, 9, 30, tzinfo=UTC)

_COMPLAINT = ComplaintReceived(
    event_id="0b5c2f6e-2f53-4a53-9a55-1b0b0e7f1a01",
    source="12345",
    occurred_at=_AT,
    recorded_at=_AT,
    data=Complaint(
        title="工地夜间施工扬尘严重",
        content="文昌路锦绣花园旁工地晚上十点后还在施工，扬尘很大，请尽快处理。",
        address="文昌路锦绣花园东侧",
        external_id="12345-20260920-0042",
        caller_phone="13800001234",
        upstream_category="0605",
    ),
)
_ALARM = AlarmRaised(
    event_id="0b5c2f6e-2f53-4a53-9a55-1b0b0e7f1a02",
    source="iot.smoke",
    occurred_at=_AT,
    recorded_at=_AT,
    data=Alarm(
        content="烟感报警：3号厂房二层",
        severity=Severity.high,
        device_id="SMK-0031",
        alarm_type="smoke",
        location=Location(lat=30.8412, lon=120.0523),
    ),
)
_INSPECTION = InspectionReported(
    event_id="0b5c2f6e-2f53-4a53-9a55-1b0b0e7f1a03",
    source="inspection-app",
    occurred_at=_AT,
    recorded_at=_AT,
    data=Inspection(
        content="企业消防通道被货物堵塞，灭火器过期",
        inspection_type="安全生产",
        inspector="网格员 张敏",
        target="示范五金制品有限公司",
    ),
)
_TICKET = TicketEvent(
    event_id="0b5c2f6e-2f53-4a53-9a55-1b0b0e7f1a04",
    kind=EventKind.ticket_routed,
    source="civicbus.triage",
    occurred_at=_AT,
    recorded_at=_AT,
    correlation_id=_ALARM.event_id,
    ticket=Ticket(
        ticket_id="SF2026092012AB34CD56",
        state=TicketState.routed,
        event_kind=EventKind.alarm_raised,
        event_source="iot.smoke",
        source_event_id=_ALARM.event_id,
        title="烟感报警",
        content="烟感报警：3号厂房二层",
        severity=Severity.high,
        category="safety.fire",
        category_name="安全生产/消防安全",
        area="xixi",
        area_name="西溪村",
        lead_unit="yingji",
        assist_units=["xixi"],
        leader="li",
        deadline_policy="alarm",
        sign_for_due=datetime(2026, 9, 20, 10, 30, tzinfo=UTC),
        resolve_due=datetime(2026, 9, 21, 9, 30, tzinfo=UTC),
        created_at=_AT,
        explanation=RoutingExplanation(
            route_path=["默认", "安全生产"],
            matched=['category_root="safety"'],
            category=CategoryEvidence(method="alarm_type", confidence=1.0),
            location=LocationEvidence(method="polygon", detail="西溪村"),
        ),
    ),
)
_NOTIFICATION = NotificationResult(
    event_id="0b5c2f6e-2f53-4a53-9a55-1b0b0e7f1a05",
    kind=EventKind.notification_delivered,
    source="civicbus.notify",
    occurred_at=_AT,
    recorded_at=_AT,
    ticket_id=_TICKET.ticket.ticket_id,
    ticket_event_id=_TICKET.event_id,
    transition=EventKind.ticket_routed,
    recipient="yingji",
    channel="webhook",
    attempts=1,
)
_DEAD_LETTER = DeadLetter(
    event_id="0b5c2f6e-2f53-4a53-9a55-1b0b0e7f1a06",
    source="civicbus.triage",
    occurred_at=_AT,
    recorded_at=_AT,
    service="triage",
    error_kind="invalid",
    reason="data.content: Field required",
    original_topic="civic.events",
    original_partition=2,
    original_offset=1041,
    original_key="k-17",
    original_value='{"kind": "complaint.received", "source": "12345", "data": {}}',
)

_COMMAND = TicketCommand(
    event_id="0b5c2f6e-2f53-4a53-9a55-1b0b0e7f1a07",
    source="intake-api",
    occurred_at=_AT,
    recorded_at=_AT,
    ticket_id=_TICKET.ticket.ticket_id,
    action=Action.sign_for,
    actor=Actor(name="西溪村 网格员张敏", role="unit", unit="xixi"),
    note="已安排人员前往现场",
)

EVENTS = Topic(
    name="civic.events",
    description="Accepted incoming events: complaints, alarms, inspection findings",
    partitions=6,
    key="event id; for alarms the fingerprint (device:alarm type), so one sensor's storm stays on one partition",
    schemas=(ComplaintReceived, AlarmRaised, InspectionReported),
    producers=("intake", "upstream systems"),
    consumers=("triage (triager: decides, then re-keys by problem onto civic.commands)",),
    adapter=INCOMING_ADAPTER,
    examples=(_COMPLAINT, _ALARM, _INSPECTION),
)
TICKETS = Topic(
    name="civic.tickets",
    description="Ticket lifecycle events (工单流转), each carrying the ticket after the transition",
    partitions=6,
    key="ticket id",
    schemas=(TicketEvent,),
    producers=("triage",),
    consumers=("notify", "reporting", "intake (Open311 request status)"),
    adapter=TypeAdapter(TicketEvent),
    examples=(_TICKET,),
)
_TRIAGED = EventTriaged(
    event_id="0b5c2f6e-2f53-4a53-9a55-1b0b0e7f1a08",
    source="civicbus.triage",
    occurred_at=_AT,
    recorded_at=_AT,
    correlation_id=_ALARM.event_id,
    incoming=_ALARM,
    home="alarm|iot.smoke|SMK-0031|smoke",
)
COMMANDS = Topic(
    name="civic.commands",
    description=(
        "Everything that changes a ticket, for its one writer (triage's owner): triaged events that open or join "
        "tickets, and commands from units, leaders and dispatchers (签收、退单、延期、办结、回访、督办、改派…)"
    ),
    partitions=6,
    key=(
        "the ticket's shard: for a command, the 4 hex digits before the last 6 of the ticket number "
        "(civicbus.events.ticket_shard, e.g. SF20260920 3F2A 9C41B7 → 3F2A); for a triaged event, the shard of its "
        "problem group — so a ticket, its group and its commands share one partition and one consumer"
    ),
    schemas=(TicketCommand, EventTriaged),
    producers=("intake", "triage", "upstream systems"),
    consumers=("triage (owner)",),
    adapter=TICKET_INPUT_ADAPTER,
    examples=(_COMMAND, _TRIAGED),
)
_DECIDED = CommandDecided(
    event_id="0b5c2f6e-2f53-4a53-9a55-1b0b0e7f1a09",
    source="civicbus.triage",
    occurred_at=_AT,
    recorded_at=_AT,
    correlation_id=_COMMAND.event_id,
    command_id=_COMMAND.event_id,
    ticket_id=_COMMAND.ticket_id,
    status="applied",
    transition=str(EventKind.ticket_acknowledged),
    state=str(TicketState.acknowledged),
)
COMMAND_DECISIONS = Topic(
    name="civic.command-results",
    description=(
        "What became of each command on a ticket (指令结果): applied, with the transition and the state, or refused, "
        "with the reason code and text — published by triage's owner once the ticket is written and the transition "
        "announced, so that intake answers the command's caller without reading triage's store"
    ),
    partitions=6,
    key="ticket id",
    schemas=(CommandDecided,),
    producers=("triage",),
    consumers=("intake (answers the command's caller and GET /v1/commands/{id})",),
    adapter=TypeAdapter(CommandDecided),
    examples=(_DECIDED,),
)
NOTIFICATIONS = Topic(
    name="civic.notifications",
    description="Delivery results of notifications to units and leaders",
    partitions=3,
    key="ticket id",
    schemas=(NotificationResult,),
    producers=("notify",),
    consumers=("reporting",),
    adapter=TypeAdapter(NotificationResult),
    examples=(_NOTIFICATION,),
)
DEAD_LETTERS = Topic(
    name="civic.dlq",
    description="Records that could not be processed, with the reason and the original record",
    partitions=3,
    key="the original record's key",
    schemas=(DeadLetter,),
    producers=("intake", "triage", "notify", "reporting"),
    consumers=("operators",),
    adapter=TypeAdapter(DeadLetter),
    examples=(_DEAD_LETTER,),
)

_SUBMITTED_COMPLAINT = ComplaintSubmission(
    source="12345",
    idempotency_key="12345-20260920-0042",
    content="文昌路锦绣花园旁工地晚上十点后还在施工，扬尘很大，请尽快处理。",
    address="文昌路锦绣花园东侧",
    external_id="12345-20260920-0042",
    upstream_category="0303",
)
_SUBMITTED_ALARM = AlarmSubmission(
    source="iot.smoke", content="烟感报警：3号厂房二层", device_id="SMK-0031", alarm_type="smoke",
    location=Location(lat=30.8412, lon=120.0523),
)
_SUBMITTED_INSPECTION = InspectionSubmission(
    source="inspection-app", content="企业消防通道被货物堵塞", inspection_type="安全生产", target="示范五金制品有限公司",
)
_SUBMITTED_WORK_ORDER = WorkOrderSubmission(
    source="12345",
    platform="hotline12345",
    order={
        "gdbh": "ZJ12345-20260920-000042",
        "lyqd": "01",
        "ldhm": "13800001234",
        "sxfl": {"dm": "0303", "mc": "扬尘"},
        "fsdz": "文昌路锦绣花园东侧",
        "sqnr": "工地晚上十点后还在施工，扬尘很大。",
        "blsx": "2026-09-22 18:00:00",
    },
)

INTAKE = Topic(
    name="civic.intake",
    description=(
        "Events handed in through Kafka instead of HTTP, as the JSON of one item of POST /v1/events/batch "
        "(type complaint, alarm, inspection or work_order); intake validates them as its HTTP API does, publishes "
        "them on civic.events and dead-letters the rest with the reason"
    ),
    partitions=6,
    key="any; the idempotency key or work-order number keeps one sender's retries in order",
    schemas=(ComplaintSubmission, AlarmSubmission, InspectionSubmission, WorkOrderSubmission),  # type: ignore[arg-type]
    producers=("upstream systems",),
    consumers=("intake",),
    adapter=SUBMISSION_ADAPTER,
    examples=(_SUBMITTED_COMPLAINT, _SUBMITTED_ALARM, _SUBMITTED_INSPECTION, _SUBMITTED_WORK_ORDER),  # type: ignore[arg-type]
)

ALL_TOPICS: tuple[Topic, ...] = (
    EVENTS, COMMANDS, TICKETS, COMMAND_DECISIONS, NOTIFICATIONS, DEAD_LETTERS, INTAKE)
