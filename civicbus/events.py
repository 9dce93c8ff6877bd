"""Event schemas, version 1: what travels on the Kafka topics, as JSON.

Every event is an envelope (:class:`Event`: id, kind, source, timestamps, correlation id, schema version) around
typed fields. Incoming events (complaint, alarm, inspection finding) carry their content in ``data``; ticket
lifecycle events carry the ticket as it is after the transition, so a consumer never needs to ask triage.

A change that a v1 reader cannot read is a new ``schema_version`` — never an edit of these classes' meaning.
"""

from __future__ import annotations

import hashlib
import math
import re
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    model_validator,
)
from pydantic_core import PydanticCustomError

SCHEMA_VERSION = 1
EVENT_ID_NAMESPACE = uuid.UUID("6f1c3d2a-9b7e-4c1a-8e5d-2a4b6c8d0e1f")


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_event_id() -> str:
    return str(uuid.uuid4())


def derived_event_id(*parts: str) -> str:
    """A deterministic id: the same inputs give the same event, so a redelivered input is deduplicated downstream."""
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, "\x1f".join(parts)))


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


# --------------------------------------------------------------------------- what a consumer can store
# Refused at the door, on every way in, rather than found by a consumer that cannot write it: MongoDB field names
# (a dict's keys become them), dates BSON and every reader handle, numbers JSON can carry.

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


def _storable_keys(mapping: dict[str, Any]) -> dict[str, Any]:
    for key in mapping:
        if not key or key.startswith("$") or "." in key or "\x00" in key:
            raise PydanticCustomError(
                "storable_key",
                "键 {key} 不可用：不能为空、以 $ 开头或含有 . 或 NUL 字符 "
                "(key {key} must not be empty, start with '$' or contain '.' or NUL)",
                {"key": repr(key)},
            )
    return mapping


def _storable_moment(moment: datetime) -> datetime:
    if not EARLIEST <= moment < LATEST:
        raise PydanticCustomError(
            "moment_out_of_range",
            "时间须在 1970-01-01 至 2100-01-01 之间 (must be between 1970-01-01 and 2100-01-01)",
        )
    return moment


def _finite(value: Any) -> Any:
    # Checked before the bounds: NaN would otherwise fail them with a misleading message.
    if isinstance(value, float) and not math.isfinite(value):
        raise PydanticCustomError(
            "finite_number", "须为有限数值，不能是 NaN 或无穷大 (must be a finite number, not NaN or infinity)"
        )
    return value


Moment = Annotated[AwareDatetime, AfterValidator(_storable_moment)]
"""A point in time between 1970 and 2100: every datetime a sender hands in."""
Amount = Annotated[float, Field(ge=0, allow_inf_nan=False), BeforeValidator(_finite)]


def _web_url(value: str) -> str:
    # A javascript:, data: or file: link would be served to a browser or a robot as is: only http(s) gets in.
    parts = urlsplit(value.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise PydanticCustomError("web_url", "须为 http(s) 地址 (must be an http or https URL)")
    return value


WebUrl = Annotated[str, Field(max_length=500), AfterValidator(_web_url)]
"""A link to a photo or an attachment."""
"""A sum of money in yuan: finite and not negative."""
Measurement = Annotated[float, Field(allow_inf_nan=False), BeforeValidator(_finite)]
"""A sensor's reading or threshold: finite, of any sign."""


# --------------------------------------------------------------------------- shared value types


class Severity(StrEnum):
    low = "low"  # 一般
    normal = "normal"  # 普通
    high = "high"  # 紧急
    critical = "critical"  # 特急


class ResponseLevel(StrEnum):
    normal = "normal"  # 常态
    heightened = "heightened"  # 一级响应 (major events, holidays)


class CoordinateSystem(StrEnum):
    wgs84 = "wgs84"  # GPS, 天地图
    gcj02 = "gcj02"  # 高德 / 腾讯 map apps ("Mars coordinates")


class Location(Model):
    lat: Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False), BeforeValidator(_finite)]
    lon: Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False), BeforeValidator(_finite)]
    crs: CoordinateSystem = CoordinateSystem.wgs84


Text = Annotated[str, Field(max_length=5000)]
ShortText = Annotated[str, Field(max_length=200)]
Labels = Annotated[dict[ShortText, ShortText], Field(max_length=30), AfterValidator(_storable_keys)]


class EventContent(Model):
    """What every incoming event says about itself, whatever its kind."""

    title: ShortText = ""
    content: Text = Field(min_length=1, description="the text as reported (Chinese)")
    severity: Severity = Severity.normal
    address: ShortText = ""
    location: Location | None = None
    labels: Labels = Field(default={}, description="any further labels, usable in routing matchers")


class Complaint(EventContent):
    """A 12345 hotline work order (工单), or a citizen's report through Open311 or an app."""

    channel: ShortText = Field(default="12345", description="12345, open311, app, …")
    external_id: ShortText = Field(default="", description="the upstream work-order number (工单编号)")
    caller_name: ShortText = ""
    caller_phone: ShortText = Field(default="", description="personal data: masked in logs and messages")
    upstream_category: ShortText = Field(default="", description="category code sent by the 12345 platform")
    due_at: Moment | None = Field(default=None, description="deadline set upstream, if any")
    amount: Amount | None = Field(default=None, description="amount involved, yuan (涉及金额, e.g. unpaid wages)")


class Alarm(EventContent):
    """An alarm (警情) — police dispatch summaries and IoT sensors (smoke, gas, water quality, video AI)."""

    device_id: ShortText = Field(min_length=1, description="sensor, camera or dispatch-system id")
    alarm_type: ShortText = Field(min_length=1, description="smoke, gas, water_quality, straw_burning, dust, police…")
    value: Measurement | None = None
    threshold: Measurement | None = None

    @property
    def fingerprint(self) -> str:
        """Repeats of one device's alarm share this; they belong to the same ticket while it is open."""
        return f"{self.device_id}:{self.alarm_type}"


class Inspection(EventContent):
    """A finding of an inspection (巡查): 安全生产, 生态环保, 综合查一次, or a higher-level supervision (上级督查)."""

    inspection_type: ShortText = Field(min_length=1, description="安全生产, 生态环保, 综合查一次, 上级督查…")
    inspector: ShortText = ""
    target: ShortText = Field(default="", description="the enterprise or place inspected")
    photos: list[WebUrl] = Field(default=[], max_length=20)
    rectify_by: Moment | None = Field(default=None, description="rectification deadline (整改期限)")


# --------------------------------------------------------------------------- the envelope


class EventKind(StrEnum):
    complaint_received = "complaint.received"
    alarm_raised = "alarm.raised"
    inspection_reported = "inspection.reported"
    ticket_routed = "ticket.routed"
    ticket_manual = "ticket.manual"
    ticket_grouped = "ticket.grouped"
    ticket_acknowledged = "ticket.acknowledged"  # 签收
    ticket_returned = "ticket.returned"  # 退单
    ticket_extension_requested = "ticket.extension_requested"  # 申请延期
    ticket_extension_decided = "ticket.extension_decided"  # 延期审批
    ticket_note_added = "ticket.note_added"  # 办理进展
    ticket_resolved = "ticket.resolved"  # 办结
    ticket_callback_recorded = "ticket.callback_recorded"  # 回访
    ticket_supervised = "ticket.supervised"  # 督办
    ticket_reopened = "ticket.reopened"  # 重新打开 / 反弹
    ticket_reassigned = "ticket.reassigned"  # 改派
    ticket_overdue = "ticket.overdue"  # 超期
    ticket_command_refused = "ticket.command_refused"  # 指令被拒
    ticket_command = "ticket.command"
    event_triaged = "event.triaged"  # triage's decision on an incoming event, on its way to the ticket's owner
    command_decided = "command.decided"  # triage's decision on a command, for the one who sent it (指令结果)
    notification_delivered = "notification.delivered"
    notification_failed = "notification.failed"
    dead_letter = "dead_letter"
    # Not transitions of a ticket but what notify sends about one on its own timers (see NotificationResult).
    ticket_reminder = "ticket.reminder"  # 到期提醒
    ticket_escalated = "ticket.escalated"  # 超期升级


class Event(Model):
    """The envelope every event carries."""

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: Annotated[str, Field(min_length=1, max_length=100)] = Field(default_factory=new_event_id)
    kind: EventKind
    source: ShortText = Field(min_length=1, description="who produced it: 12345, iot.smoke, civicbus.triage…")
    occurred_at: Moment = Field(default_factory=utcnow, description="when it happened")
    recorded_at: Moment = Field(default_factory=utcnow, description="when civicbus recorded it")
    correlation_id: str = Field(default="", max_length=100, description="ties together everything caused by one input")

    @model_validator(mode="after")
    def _correlate(self) -> Event:
        if not self.correlation_id:
            object.__setattr__(self, "correlation_id", self.event_id)
        return self

    @property
    def partition_key(self) -> str:
        """Kafka key: events with the same key stay in order on one partition."""
        return self.event_id

    def encode(self) -> bytes:
        return self.model_dump_json().encode()


class ComplaintReceived(Event):
    kind: Literal[EventKind.complaint_received] = EventKind.complaint_received
    data: Complaint


class AlarmRaised(Event):
    kind: Literal[EventKind.alarm_raised] = EventKind.alarm_raised
    data: Alarm

    @property
    def partition_key(self) -> str:
        # A storm of one sensor's alarms lands on one partition, in order, where triage groups it.
        return self.data.fingerprint


class InspectionReported(Event):
    kind: Literal[EventKind.inspection_reported] = EventKind.inspection_reported
    data: Inspection


IncomingEvent = Annotated[ComplaintReceived | AlarmRaised | InspectionReported, Field(discriminator="kind")]


# --------------------------------------------------------------------------- tickets


class TicketState(StrEnum):
    routed = "routed"  # 已派单，待签收
    manual = "manual"  # 待人工派单
    acknowledged = "acknowledged"  # 已签收，办理中
    resolved = "resolved"  # 已办结，待回访
    closed = "closed"  # 已回访，已关闭


STATE_NAMES: dict[TicketState, str] = {
    TicketState.routed: "已派单",
    TicketState.manual: "待人工派单",
    TicketState.acknowledged: "办理中",
    TicketState.resolved: "已办结",
    TicketState.closed: "已关闭",
}
"""What staff read for each state."""

OPEN_STATES: tuple[TicketState, ...] = (TicketState.routed, TicketState.manual, TicketState.acknowledged)
"""States in which a ticket still gathers repeats of its problem (alarm storms, 重复件); a repeat of a resolved or
closed ticket's problem is a recurrence (反弹) and reopens it."""
PENDING_STATES: dict[str, tuple[TicketState, ...]] = {
    "sign_for": (TicketState.routed,), "resolve": (TicketState.routed, TicketState.acknowledged)}
"""The states in which each deadline can still be missed (签收时限 until signed for, 办结时限 until resolved)."""


class ReturnReason(StrEnum):
    """Why a unit returns a ticket (退单原因)."""

    wrong_area = "wrong_area"  # 属地不符
    unclear_ownership = "unclear_ownership"  # 权属不清
    overlapping_duties = "overlapping_duties"  # 职能交叉
    other = "other"  # 其他


class Satisfaction(StrEnum):
    satisfied = "satisfied"  # 满意
    basically_satisfied = "basically_satisfied"  # 基本满意
    dissatisfied = "dissatisfied"  # 不满意


class Extension(Model):
    until: AwareDatetime
    reason: str
    requested_by: str
    requested_at: AwareDatetime


class Callback(Model):
    """The citizen's verdict after 办结 (回访)."""

    resolved: bool
    satisfaction: Satisfaction | None = None
    note: str = ""
    at: AwareDatetime


class CategoryEvidence(Model):
    method: Literal["upstream_code", "alarm_type", "inspection_type", "keywords", "model", "none"]
    keywords: list[str] = Field(default=[], description="the keywords found, with their category")
    score: float = 0.0
    confidence: float = Field(ge=0, le=1)
    runner_up: str = Field(default="", description="the second-best category, when keywords or the model decided")
    model_label: str = Field(default="", description="the learned classifier's answer, when it was consulted")
    model_probability: float = Field(default=0.0, ge=0, le=1, description="the learned classifier's probability")


class LocationEvidence(Model):
    method: Literal["polygon", "address", "none"]
    detail: str = ""


class RoutingExplanation(Model):
    """Why the ticket went where it went (派单依据), stored on the ticket and shown to staff."""

    route_path: list[str] = Field(description="the names of the matched routes, from the root")
    matched: list[str] = Field(default=[], description="the matchers that held on the last route")
    category: CategoryEvidence
    location: LocationEvidence
    manual_reason: str = Field(default="", description="why nobody could be chosen (人工派单原因)")
    labels: dict[str, str] = Field(default={}, description="the labels the routing rules were matched on, kept so "
                                                            "that routing again (after 退单) matches the same way")


class Repeat(Model):
    """A complaint linked to an open ticket about the same problem at the same place (重复件)."""

    event_id: str
    external_id: str = ""
    at: AwareDatetime


class Ticket(Model):
    """A ticket (工单) as it is after a transition."""

    ticket_id: str
    version: int = Field(default=1, ge=1, description="grows with every change; a reader keeps the highest")
    state: TicketState
    event_kind: EventKind = Field(description="what it was made from")
    event_source: str
    source_event_id: str
    external_id: str = ""
    title: str
    content: str
    severity: Severity
    category: str = Field(description="category code, e.g. safety.fire")
    category_name: str = Field(description="category path, e.g. 安全生产/消防安全")
    area: str = Field(default="", description="the village/community unit the event is in, if known")
    area_name: str = ""
    address: str = ""
    location: Location | None = None
    lead_unit: str = Field(default="", description="主办单位")
    assist_units: list[str] = Field(default=[], description="协办单位")
    leader: str = Field(default="", description="分管领导")
    deadline_policy: str = ""
    response_level: ResponseLevel = Field(default=ResponseLevel.normal, description="the level when it was created")
    sign_for_due: AwareDatetime | None = None
    resolve_due: AwareDatetime | None = None
    created_at: AwareDatetime
    caller_phone: str = Field(default="", description="personal data: for the unit's callback only")
    explanation: RoutingExplanation
    fingerprint: str = Field(default="", description="for alarms: what makes repeats the same alarm")
    repeat_key: str = Field(default="", description="for complaints: category and place, to find 重复件")
    event_count: int = Field(default=1, ge=1, description="events gathered into this ticket (alarm storm, 重复件)")
    last_event_at: AwareDatetime | None = None
    repeats: list[Repeat] = Field(default=[], description="the complaints linked as 重复件")
    acknowledged_at: AwareDatetime | None = None
    resolved_at: AwareDatetime | None = None
    closed_at: AwareDatetime | None = None
    resolution: str = Field(default="", description="办结情况")
    attachments: list[str] = Field(default=[], description="photos and files of its 进展 and 办结, oldest first")
    callback: Callback | None = None
    pending_extension: Extension | None = None
    supervision_count: int = 0
    reopen_count: int = Field(default=0, description="反弹: reopened after it was resolved or closed")
    rework_count: int = Field(default=0, description="重办: sent back after an unsatisfied callback")
    returned_by: list[str] = Field(default=[], description="units that returned it (退单); not routed to again")
    overdue: list[Literal["sign_for", "resolve"]] = Field(default=[], description="deadlines it missed")
    amount_involved: float | None = Field(default=None, ge=0, description="涉及金额 (yuan), e.g. wages owed (欠薪)")
    amount_recovered: float | None = Field(default=None, ge=0, description="追回金额 (yuan), reported at 办结")

    def due(self, deadline: str) -> datetime | None:
        """The time of one of its deadlines: ``sign_for`` (签收时限) or ``resolve`` (办结时限)."""
        return self.sign_for_due if deadline == "sign_for" else self.resolve_due


class TicketEvent(Event):
    """A transition of a ticket (工单流转), keyed by ticket id so one ticket's history stays in order."""

    kind: Literal[
        EventKind.ticket_routed,
        EventKind.ticket_manual,
        EventKind.ticket_grouped,
        EventKind.ticket_acknowledged,
        EventKind.ticket_returned,
        EventKind.ticket_extension_requested,
        EventKind.ticket_extension_decided,
        EventKind.ticket_note_added,
        EventKind.ticket_resolved,
        EventKind.ticket_callback_recorded,
        EventKind.ticket_supervised,
        EventKind.ticket_reopened,
        EventKind.ticket_reassigned,
        EventKind.ticket_overdue,
        EventKind.ticket_command_refused,
    ]
    ticket: Ticket
    actor: str = Field(default="system", description="who made the transition")
    note: str = ""
    events_joined: int = Field(default=0, ge=0, description="for ticket.grouped: events this transition added")
    command_id: str = Field(default="", description="the command that caused it, if any")
    refusal_code: str = Field(default="", description="for ticket.command_refused: why (see RefusalCode)")
    deadline: Literal["sign_for", "resolve"] | None = Field(default=None, description="for ticket.overdue: which")

    @property
    def partition_key(self) -> str:
        return self.ticket.ticket_id


# --------------------------------------------------------------------------- commands


class Action(StrEnum):
    """What a unit, a leader or a dispatcher does to a ticket."""

    sign_for = "sign_for"  # 签收
    return_ = "return"  # 退单
    request_extension = "request_extension"  # 申请延期
    decide_extension = "decide_extension"  # 审批延期
    add_note = "add_note"  # 办理进展
    resolve = "resolve"  # 办结
    record_callback = "record_callback"  # 回访
    supervise = "supervise"  # 督办
    reopen = "reopen"  # 重新打开
    reassign = "reassign"  # 改派
    mark_overdue = "mark_overdue"  # 超期 (sent by triage's overdue sweep)


class Actor(Model):
    name: str = Field(min_length=1, max_length=100, description="who issued it")
    role: str = Field(description="admin, leader, unit, auditor, system")
    unit: str = Field(default="", description="the unit the person acts for, if any")
    account: str = Field(default="", max_length=64,
                         description="the signed-in person's username when a person acted through the workbench")


class TicketCommand(Event):
    """A command on one ticket (civic.commands, keyed by ticket id, so one ticket's commands apply in order).
    Its ``event_id`` is the command id: the same command sent twice is applied once."""

    kind: Literal[EventKind.ticket_command] = EventKind.ticket_command
    ticket_id: str = Field(min_length=1, max_length=64)
    action: Action
    actor: Actor
    note: str = Field(default="", max_length=2000)
    return_reason: ReturnReason | None = None
    extension_until: Moment | None = None
    grant: bool | None = None
    result: str = Field(default="", max_length=5000)
    attachments: list[WebUrl] = Field(default=[], max_length=20, description="for add_note and resolve: photos, files")
    resolved: bool | None = None
    satisfaction: Satisfaction | None = None
    unit: str = Field(default="", max_length=64, description="for reassign: the new lead unit")
    assist_units: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        default=None, max_length=20, description="for reassign: the assisting units (协办单位); none: kept as they are")
    deadline: Literal["sign_for", "resolve"] | None = Field(default=None, description="for mark_overdue: which")
    amount_recovered: Amount | None = Field(default=None, description="for resolve: 追回金额 (yuan), if any")

    @property
    def partition_key(self) -> str:
        return ticket_shard(self.ticket_id)


class EventTriaged(Event):
    """An incoming event classified, located and routed by triage, on its way (``civic.commands``) to the consumer
    that owns its problem's partition: that consumer alone opens the ticket or joins it to the open one, and it alone
    applies the ticket's commands, so every ticket and every problem group has one writer whatever the number of
    replicas (Kafka Streams' repartition, see docs/adr). Keyed by the shard of ``home``, like the commands of the
    tickets it opens."""

    kind: Literal[EventKind.event_triaged] = EventKind.event_triaged
    incoming: IncomingEvent
    home: str = Field(min_length=1, max_length=600, description="the problem's group, or the event id if it has none")
    tickets: list[Ticket] = Field(default=[], description="the tickets it opens if no open ticket gathers it; "
                                  "empty for an alarm, decided by the owner only when it opens one")

    @property
    def partition_key(self) -> str:
        return shard_of(self.home)


class CommandDecided(Event):
    """What became of a command on a ticket (指令结果): triage's decision, published once the ticket is written and
    the transition announced, for the one who sent the command (intake answers its caller with it). Published again,
    under the same id, whenever the command is read again. Keyed by ticket id."""

    kind: Literal[EventKind.command_decided] = EventKind.command_decided
    command_id: str = Field(min_length=1, max_length=100, description="the command's event id (Command-Id derived)")
    ticket_id: str = Field(min_length=1, max_length=64)
    status: Literal["applied", "refused"]
    transition: str = Field(default="", description="applied: the ticket event's kind, e.g. ticket.acknowledged")
    state: str = Field(default="", description="applied: the ticket's state after it")
    code: str = Field(default="", description="refused: the reason code (civicbus.refusals.RefusalCode)")
    message: str = Field(default="", description="refused: the reason, in Chinese")
    message_en: str = Field(default="", description="refused: the reason, in English")

    @property
    def partition_key(self) -> str:
        return self.ticket_id


TICKET_INPUT_ADAPTER: TypeAdapter[Any] = TypeAdapter(
    Annotated[TicketCommand | EventTriaged, Field(discriminator="kind")]
)
"""What ``civic.commands`` carries: commands on tickets and the triaged events that open or join them."""


# --------------------------------------------------------------------------- notifications


class NotificationResult(Event):
    """What became of one message to one recipient about one ticket transition."""

    kind: Literal[EventKind.notification_delivered, EventKind.notification_failed]
    ticket_id: str
    ticket_event_id: str
    transition: EventKind
    recipient: str = Field(description="unit or leader id")
    channel: str
    attempts: int = Field(ge=0)
    error: str = ""

    @property
    def partition_key(self) -> str:
        return self.ticket_id


# --------------------------------------------------------------------------- dead letters


class DeadLetter(Event):
    """A record that could not be processed, with the reason. Keyed with the original record's key."""

    kind: Literal[EventKind.dead_letter] = EventKind.dead_letter
    service: str
    error_kind: Literal["invalid", "processing"]
    reason: str
    original_topic: str
    original_partition: int
    original_offset: int
    original_key: str | None
    original_value: str = Field(description="the record's value, as UTF-8 text or base64 (see value_encoding)")
    value_encoding: Literal["utf-8", "base64"] = "utf-8"
    original_headers: dict[str, str] = {}

    @property
    def partition_key(self) -> str:
        return self.original_key or self.event_id


SHARD_LENGTH = 4
_NUMBER_DIGEST = 6


def shard_of(home: str) -> str:
    """The Kafka key of everything that touches the tickets of one problem (``home``: its group, or the event that
    opened it): four hex digits, part of each of its tickets' numbers, so a command naming a ticket finds the
    partition of the ticket's owner without a look-up."""
    return hashlib.sha1(home.encode()).hexdigest()[:SHARD_LENGTH].upper()


def ticket_number(prefix: str, created_at: datetime, source_event_id: str, home: str) -> str:
    """A work-order number staff can read out (工单号), derived from the event so retries give the same one:
    prefix, date, the shard of its problem, then a digest of the event."""
    digest = hashlib.sha1(source_event_id.encode()).hexdigest()[:_NUMBER_DIGEST].upper()
    return f"{prefix}{created_at:%Y%m%d}{shard_of(home)}{digest}"


_TICKET_NUMBER = re.compile(rf"\d{{8}}([0-9A-F]{{{SHARD_LENGTH}}})[0-9A-F]{{{_NUMBER_DIGEST}}}$")


def ticket_shard(ticket_id: str) -> str:
    """The Kafka key of a ticket's commands: the shard in its number. An id that is no ticket number (a typo) is
    its own key; such a command is refused as an unknown ticket wherever it lands."""
    match = _TICKET_NUMBER.search(ticket_id)
    return match.group(1) if match else ticket_id


INCOMING_ADAPTER: TypeAdapter[Any] = TypeAdapter(IncomingEvent)


# --------------------------------------------------------------------------- submissions (事件接入)


class Submission(Model):
    """What a sender hands in for one incoming event: the fields of its kind plus optional envelope fields; intake
    fills in the rest. The same JSON is one item of ``POST /v1/events/batch`` and one record of ``civic.intake``."""

    source: ShortText = Field(default="", description="the sending system; default: the API key's name")
    occurred_at: Moment | None = Field(default=None, description="when it happened; default: now")
    correlation_id: str = Field(default="", max_length=100)
    idempotency_key: ShortText = Field(default="", description="the same key from the same sender is the same event")

    @property
    def kind(self) -> str:
        return f"submission.{getattr(self, 'type', '')}"

    def encode(self) -> bytes:
        return self.model_dump_json().encode()


class ComplaintSubmission(Complaint, Submission):
    type: Literal["complaint"] = "complaint"


class AlarmSubmission(Alarm, Submission):
    type: Literal["alarm"] = "alarm"


class InspectionSubmission(Inspection, Submission):
    type: Literal["inspection"] = "inspection"


class WorkOrderSubmission(Submission):
    """A work order in an upstream platform's own format (e.g. a 12345 hotline platform's 工单), translated into a
    complaint by that platform's mapping file (``config/…/upstream/<platform>.yaml``)."""

    type: Literal["work_order"] = "work_order"
    platform: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]*$", max_length=64)]
    order: dict[str, Any] = Field(description="the work order as the platform sends it")


SUBMISSION_ADAPTER: TypeAdapter[Any] = TypeAdapter(
    Annotated[
        ComplaintSubmission | AlarmSubmission | InspectionSubmission | WorkOrderSubmission,
        Field(discriminator="type"),
    ]
)
