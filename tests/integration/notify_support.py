"""What the notify integration tests share: a notify instance of their own (own topics, database, configuration
and simulated clock), a real local SMTP server (aiosmtpd) and ticket events to publish."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import yaml
from aiokafka import AIOKafkaProducer
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from pymongo import AsyncMongoClient

from civicbus.events import (
    CategoryEvidence,
    EventKind,
    LocationEvidence,
    ResponseLevel,
    RoutingExplanation,
    Severity,
    Ticket,
    TicketEvent,
)
from civicbus.district import load_district
from civicbus.kafka import create_topics
from civicbus.settings import HttpSettings
from services.notify.settings import NotifySettings
from services.notify.app import create_app
from services.notify.channels import channel_id
from services.notify.config import load_notify_config

from tests.factories import make_ticket, make_ticket_event

from .conftest import RunningService, eventually, free_port, serve

SAMPLE = Path(__file__).resolve().parents[2] / "config" / "sample"
SMTP_USER, SMTP_PASSWORD = "notify", "s3cret"


@dataclass
class SimClock:
    """The notify instance's clock: tests move it and run one timer tick."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@dataclass
class SmtpRecorder:
    """A real SMTP server (aiosmtpd) on a local port that requires a login and records what it accepts."""

    port: int = field(default_factory=free_port)
    mails: list[EmailMessage] = field(default_factory=list)
    envelopes: list[Any] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook
        self.envelopes.append(envelope)
        self.mails.append(message_from_bytes(envelope.original_content, policy=policy.default))
        return "250 Message accepted for delivery"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        if isinstance(data, LoginPassword) and (data.login.decode(), data.password.decode()) == (SMTP_USER, SMTP_PASSWORD):
            self.logins.append(data.login.decode())
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    def start(self) -> Controller:
        controller = Controller(self, hostname="127.0.0.1", port=self.port, authenticator=self.authenticate,
                                auth_require_tls=False)
        controller.start()
        return controller


def write_config(folder: Path, sink_url: str, smtp_port: int) -> Path:
    """The sample configuration with real channels of every kind pointed at the local receivers."""
    shutil.copytree(SAMPLE, folder)
    district = yaml.safe_load((folder / "district.yaml").read_text(encoding="utf-8"))
    units = {unit["id"]: unit for unit in district["units"]}
    units["laobao"]["channels"] = [
        {"type": "dingtalk", "url": f"{sink_url}/robot/ding-laobao?access_token=tok", "secret": "SECtest"},
        {"type": "wecom", "url": f"{sink_url}/robot/wecom-laobao?key=wk"},
        {"type": "feishu", "url": f"{sink_url}/robot/feishu-laobao", "secret": "fsecret"},
    ]
    units["laobao"]["contacts"][0]["channels"] = [
        {"type": "email", "to": ["laobao@shifan.example.gov.cn"]},
        {"type": "sms", "phones": ["13800000117"]},
    ]
    units["sifa"]["channels"] = [{"type": "webhook", "url": f"{sink_url}/robot/sifa"}]
    units["xinfang"]["channels"] = [{"type": "webhook", "url": f"{sink_url}/robot/xinfang"}]
    units["shiwu"]["channels"] = [{"type": "webhook", "url": f"{sink_url}/robot/gone"}]
    units["jianshe"]["channels"] = [{"type": "dingtalk", "url": f"{sink_url}/robot/ding-jianshe?access_token=j"}]
    for leader in district["leaders"]:
        leader["channels"] = [{"type": "webhook", "url": f"{sink_url}/leader/{leader['id']}"}]
    (folder / "district.yaml").write_text(yaml.safe_dump(district, allow_unicode=True, sort_keys=False), "utf-8")

    notify = yaml.safe_load((folder / "notify.yaml").read_text(encoding="utf-8"))
    notify["smtp"] = {"host": "127.0.0.1", "port": smtp_port, "starttls": False, "username": SMTP_USER,
                      "password": SMTP_PASSWORD, "sender": "notify@shifan.example.gov.cn"}
    notify["sms_gateway"] = {
        "url": f"{sink_url}/sms/send", "headers": {"Authorization": "Bearer sms-token"},
        "body_template": '{"mobile": {{ phone | tojson }}, "content": {{ text | tojson }}, "sign": "示范街道"}',
        "success_field": "errcode", "success_value": "0",
    }
    notify["fallback"] = [{"type": "webhook", "url": f"{sink_url}/fallback/duty"}]
    notify["quiet_hours"]["enabled"] = True
    (folder / "notify.yaml").write_text(yaml.safe_dump(notify, allow_unicode=True, sort_keys=False), "utf-8")
    return folder


@dataclass
class NotifyUnderTest:
    """One notify instance on its own topics and database, with a simulated clock."""

    bootstrap: str
    mongo_url: str
    config_dir: Path
    clock: SimClock
    prefix: str = field(default_factory=lambda: f"n{uuid.uuid4().hex[:8]}.")
    running: RunningService | None = None
    overrides: dict[str, Any] = field(default_factory=dict)  # more settings
    topics_created: bool = False

    def replica(self) -> NotifyUnderTest:
        """A second instance with the same settings: the same topics, database and consumer group."""
        return NotifyUnderTest(self.bootstrap, self.mongo_url, self.config_dir, self.clock, self.prefix,
                               overrides=self.overrides, topics_created=True)

    @property
    def db_name(self) -> str:
        return f"civicbus_test_{self.prefix[:-1]}"

    async def start(self, prepare: Callable[[Any], None] | None = None) -> NotifyUnderTest:
        """Start (again: a new process, nothing in memory); ``prepare`` gets the app before it consumes."""
        if not self.topics_created:
            await create_topics(self.bootstrap, self.prefix)
            self.topics_created = True
        settings = NotifySettings(
            kafka_bootstrap=self.bootstrap, mongo_url=self.mongo_url, mongo_db=self.db_name,
            topic_prefix=self.prefix, config_dir=self.config_dir, http=HttpSettings(port=free_port()),
            retry_base_s=60, retry_max_s=240, timer_tick_s=3600,  # the tests tick themselves, on simulated time
            **self.overrides,
        )
        app = create_app(settings, clock=self.clock)
        if prepare is not None:
            prepare(app)
        self.running = await serve("notify", app, settings.http_port)
        await eventually(lambda: asyncio.sleep(0, result=bool(self.owned())), what="notify to own partitions")
        return self

    def owned(self) -> set[int]:
        """The partitions of civic.tickets this instance owns now."""
        return set(self.app.state.timers.subscription.assigned)

    @property
    def app(self) -> Any:
        assert self.running is not None, "notify was not started"
        return self.running.app

    async def stop(self) -> None:
        if self.running is not None:
            await self.running.stop()

    def key(self, event: TicketEvent, unit: str, channel: int = 0) -> str:
        """The notification key of ``event``'s message to ``unit`` over its ``channel``-th channel."""
        channels = load_notify_config(load_district(self.config_dir)).channels_of(unit)  # the unit's own come first
        return f"{event.event_id}:{unit}:{channel_id(channels[channel])}"

    async def tick(self, now: datetime) -> int:
        self.clock.now = now
        return await self.app.state.timers.tick(now)

    async def publish(self, events: list[TicketEvent]) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True)
        await producer.start()
        try:
            for event in events:
                await producer.send(f"{self.prefix}civic.tickets", event.encode(), key=event.partition_key.encode())
            await producer.flush()
        finally:
            await producer.stop()

    async def drop(self) -> None:
        client = AsyncMongoClient(self.mongo_url)
        await client.drop_database(self.db_name)
        await client.close()


def ticket_event(
    kind: EventKind,
    at: datetime,
    *,
    ticket: Ticket | None = None,
    lead: str = "laobao",
    leader: str = "zhengxiuying",
    category: str = "labor",
    severity: Severity = Severity.normal,
    response_level: ResponseLevel = ResponseLevel.normal,
    sign_for: timedelta = timedelta(hours=1),
    content: str = "公司拖欠工资三个月，联系电话13912345678，身份证号330102199001011234",
    **changes: Any,
) -> TicketEvent:
    """A ticket event as triage publishes it: a new ticket, or ``ticket`` after a transition (version + 1)."""
    if ticket is None:
        ticket = make_ticket(
            title="拖欠工资", content=content, severity=severity, category=category, category_name="劳动保障",
            lead_unit=lead, leader=leader, response_level=response_level, sign_for_due=at + sign_for,
            resolve_due=at + timedelta(days=5), created_at=at,
            explanation=RoutingExplanation(route_path=["默认", "劳动保障"],
                                           category=CategoryEvidence(method="keywords", confidence=0.9),
                                           location=LocationEvidence(method="none")),
        )
    else:
        ticket = ticket.model_copy(update={"version": ticket.version + 1, **changes})
    return make_ticket_event(kind, ticket, occurred_at=at)


def utc(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)
