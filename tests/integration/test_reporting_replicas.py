"""Reporting scaled out: two replicas in one consumer group, each owning some partitions of ``civic.tickets`` and of
``civic.notifications``, apply the same tickets' records at the same time against the real store (FerretDB v1, which
updates by read-modify-write). Every ticket has records in both topics, which hash them to partitions of different
replicas, and every ticket counts in the same cells; with one writer per document nothing is lost: each count equals
a recount from the events, and each ticket's timeline and notifications are complete.

The replicas are two ``Projections`` with the service's own handlers, fed the records of their partitions in
batches as their consumers would get them (in order per partition), so the test decides who owns what.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from itertools import count
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import ConsumerRecord

from civicbus.district import load_district
from civicbus.events import EventKind, NotificationResult, TicketEvent, TicketState
from civicbus.kafka import Consumed
from civicbus.settings import DEFAULT_CONFIG_DIR
from civicbus.topics import NOTIFICATIONS, TICKETS, Topic
from services.reporting.config import load_reporting_config
from services.reporting.handler import notification_results_handler, ticket_events_handler
from services.reporting.projections import Projections
from services.reporting.report import Period, ReportFilter, Reports

from .conftest import Stack
from .ticket_stories import TicketStory

pytestmark = pytest.mark.integration
SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 11, 3)
TICKET_COUNT = 30
BATCH = 3
LEAD, ASSIST, LEADER = "xixi", "shengtai", "wangjianguo"
RECOUNTED = ("created", "routed", "assisted", "repeats", "acknowledged", "resolved", "notified", "notify_failed")
# Replica A owns tickets partitions 0-2 and notifications partition 0; replica B the rest.
OWNERS = {"A": ({0, 1, 2}, {0}), "B": ({3, 4, 5}, {1, 2})}


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(DAY.year, DAY.month, DAY.day, hour, minute, tzinfo=SHANGHAI)


def story(number: int) -> TicketStory:
    """One ticket of the same cells as all the others: routed to 西溪村 with 生态环保办 assisting, grouped (some),
    signed, resolved."""
    ticket = TicketStory(f"SF-replicas-{number}-{uuid.uuid4().hex[:6]}", "12345", at(8), title=f"扬尘 {number}",
                         content="工地扬尘", category="environment.dust", category_name="生态环保/扬尘", area=LEAD,
                         area_name="西溪村", lead_unit=LEAD, assist_units=[ASSIST])
    ticket.step(EventKind.ticket_routed, at(9))
    if number % 3 == 0:
        ticket.step(EventKind.ticket_grouped, at(9, 30), {"events_joined": 2}, event_count=3)
    return ticket.signed(at(10)).resolved(at(15))


def results_of(ticket: TicketStory) -> list[NotificationResult]:
    """What notify reports for the ticket: the routed message to the lead and the assisting unit, a leader whose
    robot failed, and the resolution to the lead unit."""
    routed, resolved = ticket.events[0], ticket.events[-1]

    def result(event: TicketEvent, recipient: str, delivered: bool, minute: int) -> NotificationResult:
        kind = EventKind.notification_delivered if delivered else EventKind.notification_failed
        return NotificationResult(kind=kind, source="civicbus.notify", occurred_at=at(event.occurred_at.hour, minute),
                                  ticket_id=ticket.id, ticket_event_id=event.event_id, transition=event.kind,
                                  recipient=recipient, channel="dingtalk", attempts=1, error="" if delivered else "down")

    return [result(routed, LEAD, True, 1), result(routed, ASSIST, True, 2), result(routed, LEADER, False, 3),
            result(resolved, LEAD, True, 4)]


def partition_of(topic: Topic, key: str) -> int:
    """The partition Kafka's producer puts ``key`` on (murmur2, as aiokafka and the Java client)."""
    return DefaultPartitioner()(key.encode(), list(range(topic.partitions)), [])


def records(stack: Stack, topic: Topic, events: list[Any]) -> list[Consumed]:
    """The events as their consumers get them: on their key's partition, offsets in publishing order."""
    offsets: dict[int, count] = {}
    consumed = []
    for event in events:
        partition = partition_of(topic, event.partition_key)
        key, value = event.partition_key.encode(), event.encode()
        record = ConsumerRecord(topic.full_name(stack.prefix), partition, next(offsets.setdefault(partition, count())),
                                0, 0, key, value, None, len(key), len(value), [])
        consumed.append(Consumed(event, record))
    return consumed


async def consume(handler: Callable[[list[Consumed]], Awaitable[Any]], owned: set[int],
                  topic_records: list[Consumed]) -> None:
    """One consumer: the records of its partitions, in batches, one batch at a time."""
    mine = [item for item in topic_records if item.record.partition in owned]
    for start in range(0, len(mine), BATCH):
        await handler(mine[start:start + BATCH])


async def test_two_replicas_lose_no_count_no_timeline_entry_and_no_notification(stack, mongo):
    db = mongo.client[f"{stack.db_name}_replicas"]
    stories = [story(number) for number in range(TICKET_COUNT)]
    events = [event for ticket in stories for event in ticket.events]
    results = [result for ticket in stories for result in results_of(ticket)]
    ticket_records, notification_records = records(stack, TICKETS, events), records(stack, NOTIFICATIONS, results)
    owner_of_ticket = {item.event.ticket.ticket_id: owner for item in ticket_records
                       for owner, (tickets, _) in OWNERS.items() if item.record.partition in tickets}
    owner_of_notes = {item.event.ticket_id: owner for item in notification_records
                      for owner, (_, notes) in OWNERS.items() if item.record.partition in notes}
    assert set(owner_of_ticket.values()) == {"A", "B"}, "both replicas write counts of the same cells"
    assert any(owner_of_ticket[ticket] != owner_of_notes[ticket] for ticket in owner_of_ticket), \
        "some ticket's events and notifications are applied by different replicas"
    try:
        consumers = []
        for tickets_owned, notes_owned in OWNERS.values():
            projections = Projections(db, "Asia/Shanghai")  # one per replica, as in two processes
            consumers += [consume(ticket_events_handler(projections), tickets_owned, ticket_records),
                          consume(notification_results_handler(projections), notes_owned, notification_records)]
        await asyncio.gather(*consumers)

        # Every share of a cell is written by one consumer only: the one of the partition its tokens came from.
        writer_of = {item.event.event_id: f"t{item.record.partition}" for item in ticket_records}
        writer_of |= {item.event.event_id: f"n{item.record.partition}" for item in notification_records}
        async for share in db["report_counters"].find({}):
            tokens = {token.rsplit(":", 1)[0] for name in RECOUNTED for token in share.get(name, [])}
            assert {writer_of[token] for token in tokens} == {share["_id"].rsplit("|", 1)[1]}, share["_id"]
        # A ticket's view is the tickets consumer's, its notifications the notifications consumer's.
        assert await db["ticket_views"].count_documents({"notifications": {"$exists": True}}) == 0
        async for notes in db["ticket_notifications"].find({}):
            assert set(notes) == {"_id", "notifications"}

        expected: dict[str, Counter] = {LEAD: Counter(), ASSIST: Counter(), LEADER: Counter()}
        for event in events:
            if event.kind is EventKind.ticket_routed:
                expected[LEAD].update(created=1, routed=1)
                expected[ASSIST].update(assisted=1)
            elif event.kind is EventKind.ticket_grouped:
                expected[LEAD].update(repeats=event.events_joined)
            elif event.ticket.state is TicketState.acknowledged:
                expected[LEAD].update(acknowledged=1)
            elif event.ticket.state is TicketState.resolved:
                expected[LEAD].update(resolved=1)
        for result in results:
            expected[result.recipient].update(
                notified=int(result.kind is EventKind.notification_delivered),
                notify_failed=int(result.kind is EventKind.notification_failed))
        reports = Reports(db, load_district(DEFAULT_CONFIG_DIR), load_reporting_config(DEFAULT_CONFIG_DIR))
        day = Period.parse("day", DAY)
        for unit, counts in expected.items():
            summary = await reports.summary(day, ReportFilter(unit=unit))
            assert {name: summary["counts"][name] for name in RECOUNTED} == {name: counts[name] for name in RECOUNTED}, unit
        district = (await reports.summary(day))["counts"]
        assert {name: district[name] for name in RECOUNTED} == {
            name: sum(counts[name] for counts in expected.values()) for name in RECOUNTED}
        ranked = await reports.rankings("area", day, rank_by="closure_rate")
        (xixi,) = [item for item in ranked["items"] if item["key"] == LEAD]
        assert xixi["counts"]["resolved"] == xixi["counts"]["routed"] == TICKET_COUNT

        for ticket in stories:
            shown = await reports.ticket(ticket.id)
            assert shown is not None and shown["version"] == ticket.ticket.version
            assert [entry["event_id"] for entry in shown["timeline"]] == [
                event.event_id for event in ticket.events if event.kind is not EventKind.ticket_grouped]
            assert shown["event_count"] == ticket.ticket.event_count
            assert [entry["event_id"] for entry in shown["notifications"]] == [
                result.event_id for result in results_of_ticket(results, ticket.id)]
    finally:
        await mongo.client.drop_database(db.name)


def results_of_ticket(results: list[NotificationResult], ticket_id: str) -> list[NotificationResult]:
    return sorted((result for result in results if result.ticket_id == ticket_id),
                  key=lambda result: result.occurred_at)
