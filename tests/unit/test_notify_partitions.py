"""Notify's pure parts of scale-out: notification keys that name a channel by its stable id, one result event per
key whatever its outcome, the Kafka handler working partition by partition, and the tick touching only the
partitions this process owns, each under the in-flight guard."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from civicbus.district import load_district
from civicbus.events import (
    CategoryEvidence,
    EventKind,
    LocationEvidence,
    RoutingExplanation,
    TicketEvent,
)
from civicbus.kafka import BatchOutcome, Consumed
from services.notify.channels import channel_id
from services.notify.channels.webhook import WebhookChannel
from services.notify.config import NotifyConfig, load_notify_config
from services.notify.delivery import UNCONFIRMED, Delivery, DeliveryPipeline
from services.notify.handler import NotifyHandler
from services.notify.in_force import InForce
from services.notify.messages import Message
from services.notify.timers import Timers
from tests.factories import make_ticket, make_ticket_event

SAMPLE = load_district(Path(__file__).resolve().parents[2] / "config" / "sample")
NOTIFY = load_notify_config(SAMPLE)
T0 = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
ROBOT = WebhookChannel(type="webhook", url="http://127.0.0.1:1/robot/a")
DUTY = WebhookChannel(type="webhook", url="http://127.0.0.1:1/robot/b")


def routed(lead: str = "laobao") -> TicketEvent:
    return make_ticket_event(ticket=make_ticket(
        title="拖欠工资", content="公司拖欠工资三个月", category="labor", category_name="劳动保障", lead_unit=lead,
        leader="zhengxiuying", sign_for_due=T0 + timedelta(hours=1), resolve_due=T0 + timedelta(days=5), created_at=T0,
        explanation=RoutingExplanation(route_path=["默认"], location=LocationEvidence(method="none"),
                                       category=CategoryEvidence(method="keywords", confidence=1)),
    ))


def with_channels(unit: str, channels: tuple) -> NotifyConfig:
    return dataclasses.replace(NOTIFY, recipient_channels={**NOTIFY.recipient_channels, unit: channels})


def in_force(notify: NotifyConfig = NOTIFY) -> InForce:
    held = InForce(SAMPLE, "https://gd.shifan.example.gov.cn")
    held.current = dataclasses.replace(held.current, notify=notify)
    return held


def test_a_notification_key_names_its_channel_by_id_so_reordering_channels_resends_nothing():
    event = routed()
    before = NotifyHandler(in_force(with_channels("laobao", (ROBOT, DUTY))), None, None).deliveries(event)
    after = NotifyHandler(in_force(with_channels("laobao", (DUTY, ROBOT))), None, None).deliveries(event)
    assert {delivery.key for delivery in before} == {delivery.key for delivery in after}
    assert f"{event.event_id}:laobao:{channel_id(ROBOT)}" in {delivery.key for delivery in before}


def delivery(status: str, **changes: Any) -> Delivery:
    event = routed()
    return Delivery(key=f"{event.event_id}:laobao:{channel_id(ROBOT)}", ticket_id=event.ticket.ticket_id,
                    ticket_event_id=event.event_id, correlation_id=event.correlation_id, transition=event.kind,
                    recipient="laobao", role="lead", channel=ROBOT, status=status, attempts=[{"result": status}],
                    message=Message("t", "x", "https://gd.shifan.example.gov.cn/workbench/tickets/SF1"),
                    **changes)


def test_one_result_event_per_key_whatever_became_of_it():
    sent = delivery("delivered")
    [result] = DeliveryPipeline._results(sent)
    [again] = DeliveryPipeline._results(dataclasses.replace(sent, status="unconfirmed", error=UNCONFIRMED))
    assert result.event_id == again.event_id, "published again after a crash, it is counted once"
    assert again.kind is EventKind.notification_delivered and again.error.startswith("unconfirmed")
    [failed] = DeliveryPipeline._results(dataclasses.replace(sent, status="failed"))
    assert failed.kind is EventKind.notification_failed and failed.event_id == result.event_id


class FakeTimers:
    def __init__(self) -> None:
        self.filed: list[tuple[int, list[str]]] = []

    async def file(self, events: list[TicketEvent], partition: int) -> None:
        self.filed.append((partition, sorted(event.ticket.ticket_id for event in events)))


class FakePipeline:
    def __init__(self) -> None:
        self.runs: list[tuple[int, list[str]]] = []

    async def run(self, deliveries: list[Delivery], partition: int) -> tuple[list, set[str]]:
        self.runs.append((partition, sorted(delivery.ticket_id for delivery in deliveries)))
        return [], set()


def consumed(event: TicketEvent, partition: int) -> Consumed:
    return Consumed(event, SimpleNamespace(partition=partition))


async def test_the_handler_does_each_partitions_work_as_that_partitions():
    timers, pipeline = FakeTimers(), FakePipeline()
    handler = NotifyHandler(in_force(), pipeline, timers)
    a, b, c = routed("sifa"), routed("sifa"), routed("xinfang")
    outcome = await handler([consumed(a, 0), consumed(b, 3), consumed(c, 0)])
    assert isinstance(outcome, BatchOutcome) and not outcome.failed
    ids = lambda *events: sorted(event.ticket.ticket_id for event in events)  # noqa: E731
    assert sorted(timers.filed) == [(0, ids(a, c)), (3, ids(b))]
    assert sorted(pipeline.runs) == [(0, ids(a, c)), (3, ids(b))]


class RecordingTimers(Timers):
    def __init__(self, subscription: Any) -> None:
        super().__init__(None, in_force(), None)
        self.subscription = subscription
        self.ticked: list[tuple[int, bool]] = []
        self.read: list[tuple[int, bool]] = []

    async def _entries_due(self, partition: int, now: datetime) -> list[str]:
        self.read.append((partition, self.subscription.in_flight.locked()))
        return []

    async def _tick(self, partition: int, now: datetime, entries: list[str]) -> int:
        self.ticked.append((partition, self.subscription.in_flight.locked()))
        if partition == 1:  # the group takes partition 4 away while partition 1 is ticked
            self.subscription.assigned.discard(4)
        return 1


async def test_a_tick_works_only_for_the_partitions_owned_each_under_the_in_flight_guard():
    subscription = SimpleNamespace(assigned={1, 4}, in_flight=asyncio.Lock())
    timers = RecordingTimers(subscription)
    assert await timers.tick(T0) == 1
    assert timers.ticked == [(1, True)], "partition 4, revoked meanwhile, is left to its new owner"
    assert (1, False) in timers.read, "the buckets are read without holding up the partition's batches"
