"""Everything that touches one ticket shares a Kafka key: the triaged events that open or join it and the commands
on it, so one consumer (the partition's owner) is its one writer — with any number of triage replicas."""

from __future__ import annotations

from collections import defaultdict

from civicbus.district import load_district
from civicbus.events import (
    Actor,
    Alarm,
    AlarmRaised,
    Complaint,
    ComplaintReceived,
    Location,
    TicketCommand,
    shard_of,
    ticket_shard,
)
from civicbus.kafka import BatchOutcome, Consumed
from civicbus.settings import DEFAULT_CONFIG_DIR
from services.triage.decide import TriageEngine
from services.triage.groups import alarm_group
from services.triage.response_level import ResponseLevelState
from services.triage.triager import Triager

ENGINE = TriageEngine(load_district(DEFAULT_CONFIG_DIR))


class Captured:
    def __init__(self) -> None:
        self.published: list = []

    async def publish(self, topic, events) -> None:
        self.published.extend(events)


async def _triage(*events) -> list:
    publisher = Captured()
    level = ResponseLevelState(defaultdict(lambda: None))  # type: ignore[arg-type]  # normal response, never read
    outcome = await Triager(lambda: ENGINE, publisher, level)([Consumed(event, None) for event in events])
    assert outcome == BatchOutcome()
    return publisher.published


def _complaint(content: str, address: str) -> ComplaintReceived:
    return ComplaintReceived(source="12345", data=Complaint(content=content, address=address))


def test_a_ticket_number_carries_its_shard_and_a_command_is_keyed_by_it():
    command = TicketCommand(ticket_id="SF202609203F2A9C41B7", action="sign_for", actor=Actor(name="张敏", role="unit"),
                            source="test")
    assert ticket_shard("SF202609203F2A9C41B7") == "3F2A" == command.partition_key
    assert ticket_shard("not-a-ticket") == "not-a-ticket", "a typo is its own key, refused wherever it lands"


async def test_repeat_complaints_and_their_ticket_share_one_key():
    first, second = await _triage(_complaint("小区楼下烧烤店油烟很大，熏得开不了窗", "东湖路金色家园3幢"),
                                  _complaint("烧烤油烟扰民严重", "东湖路金色家园"))
    assert first.tickets and first.tickets[0].repeat_key, "the sample configuration locates and groups this"
    assert first.partition_key == second.partition_key, "one problem group, one partition"
    for ticket in first.tickets:
        assert ticket_shard(ticket.ticket_id) == first.partition_key, "the ticket's commands follow its group"


async def test_an_alarm_is_forwarded_undecided_under_its_fingerprint_and_its_ticket_shares_the_key():
    alarm = AlarmRaised(source="iot.smoke", data=Alarm(content="烟感报警：学府苑2幢", device_id="SMK-1", alarm_type="smoke",
                                                       location=Location(lat=30.8399, lon=120.0375)))
    (triaged,) = await _triage(alarm)
    assert triaged.tickets == [], "a storm's alarms are not classified one by one"
    assert triaged.home == alarm_group(ENGINE.fingerprint(alarm))
    (ticket,) = ENGINE.decide(alarm).tickets  # what the owner decides when the alarm opens a ticket
    assert ticket_shard(ticket.ticket_id) == triaged.partition_key == shard_of(triaged.home)


async def test_a_complaint_without_a_group_lives_on_its_own_event():
    (triaged,) = await _triage(_complaint("反映一个问题", ""))
    assert triaged.home == triaged.incoming.event_id
    assert all(ticket_shard(ticket.ticket_id) == triaged.partition_key for ticket in triaged.tickets)
