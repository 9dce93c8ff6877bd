"""Triage's plan for a batch of triaged events, without Kafka or MongoDB: alarm storms, 重复件, recurrences (反弹),
batches read again, and a ticket found made before a crash.

``Memory`` stands for the store: it holds what the handler's writes would leave (tickets as planned, groups'
pointers, announcements), and ``plan`` reads it as the handler does."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from civicbus.events import Action, EventKind, TicketState, derived_event_id
from services.triage.groups import alarm_group, groups_of, repeat_group
from services.triage.planner import Plan, Pointer, Received, StoredTicket, Windows, groups_to_read, plan_batch
from tests.factories import AT, make_alarm, make_complaint, make_ticket_from, make_triaged

WINDOWS = Windows(repeat=timedelta(hours=168), recurrence=timedelta(days=30))  # the sample's routing.yaml
PLACE = "environment.dust|东湖路工地"  # a repeat key: category and place
SMOKE = alarm_group("SMK-0031|smoke")


class Decisions:
    """Triage's decision for an alarm that opens a ticket; remembers which alarms it was asked about."""

    def __init__(self, failing: str = "") -> None:
        self.asked: list[str] = []
        self.failing = failing

    def __call__(self, event):
        self.asked.append(event.event_id)
        if event.data.device_id == self.failing:
            raise ValueError("no route for this sensor")
        return [make_ticket_from(event, category="safety.fire", category_name="安全生产/消防安全")]


class Memory:
    """What the store holds after the handler's writes."""

    def __init__(self) -> None:
        self.tickets: dict[str, StoredTicket] = {}
        self.pointers: dict[str, str] = {}

    def holding(self, stored: StoredTicket) -> Memory:
        """A ticket stored earlier, its groups pointing at it."""
        self.write(Plan(created=[stored], pointers={group: Pointer(stored.ticket.ticket_id, stored.ticket.created_at)
                                                    for group in groups_of(stored.ticket)}))
        return self

    def write(self, plan: Plan, *, pointers: bool = True, joins: bool = True, announced: bool = True) -> None:
        """The plan's writes, in the handler's order; a crash stops them after the tickets made (``pointers``), the
        joins to stored tickets (``joins``) or the publishing (``announced``)."""
        for stored in plan.created:
            self.tickets.setdefault(stored.ticket.ticket_id, stored)
        if not pointers:
            return
        self.pointers.update((group, pointer.ticket_id) for group, pointer in plan.pointers.items())
        if not joins:
            return
        self.tickets.update((stored.ticket.ticket_id, stored) for stored in plan.updated)
        if announced:
            for ticket_id in plan.announced:
                self.tickets[ticket_id] = replace(self.tickets[ticket_id], unannounced=0)

    def groups(self, batch: list[Received]) -> dict[str, StoredTicket]:
        return {group: self.tickets[self.pointers[group]] for group in groups_to_read(batch)
                if self.pointers.get(group) in self.tickets}


def received(events, partition: int = 3, first_offset: int = 0) -> list[Received]:
    """Incoming events triaged and read in order from one partition of civic.commands."""
    return [Received(event if event.kind is EventKind.event_triaged else make_triaged(event), partition, offset)
            for offset, event in enumerate(events, start=first_offset)]


def plan(memory: Memory, batch: list[Received], decide=None) -> Plan:
    """Plan as the handler does: with the groups' tickets as stored, then again with the tickets the plan would make
    that exist already."""
    decide = decide or Decisions()
    existing: dict[str, StoredTicket] = {}
    while True:
        result = plan_batch(batch, memory.groups(batch), WINDOWS, decide, existing)
        found = {stored.ticket.ticket_id: memory.tickets[stored.ticket.ticket_id] for stored in result.created
                 if stored.ticket.ticket_id in memory.tickets}
        if not found:
            return result
        existing |= found


def storm(count: int, device: str = "SMK-0031", start: int = 0) -> list:
    return [make_alarm(device, at=AT + timedelta(seconds=second)) for second in range(start, start + count)]


def complaint(hours: float, external_id: str):
    """A complaint about the dust at 东湖路工地, ``hours`` after ``AT``."""
    return make_triaged(make_complaint(at=AT + timedelta(hours=hours), external_id=external_id), repeat_key=PLACE)


def kinds(plan: Plan) -> list[tuple[EventKind, int]]:
    return [(event.kind, event.events_joined) for event in plan.events]


# --------------------------------------------------------------------------- alarm storms


def test_an_alarm_storm_is_one_ticket_and_only_its_first_alarm_is_decided():
    alarms, decide = storm(5), Decisions()
    result = plan(Memory(), received(alarms), decide)
    (made,) = result.created
    assert decide.asked == [alarms[0].event_id]
    assert made.ticket.source_event_id == alarms[0].event_id
    assert (made.ticket.event_count, made.unannounced) == (5, 4)
    assert made.ticket.last_event_at == alarms[-1].occurred_at
    assert made.group_offsets == {"3": 4}, "the offset its partition reached"
    assert kinds(result) == [(EventKind.ticket_routed, 0), (EventKind.ticket_grouped, 4)]
    assert result.events[0].ticket.event_count == 1, "the creation carries the first alarm alone"
    assert result.pointers == {SMOKE: Pointer(made.ticket.ticket_id, made.ticket.created_at)}
    assert result.deadlines == [(result.events[0].ticket, 3)], "filed by the owner of the partition it came on"
    assert result.announced == [made.ticket.ticket_id]


def test_the_next_alarms_of_a_storm_join_its_open_ticket_and_another_sensor_opens_its_own():
    memory = Memory()
    memory.write(plan(memory, received(storm(5))))
    other = make_alarm("SMK-0099")
    result = plan(memory, received([*storm(3, start=5), other], first_offset=5))
    (joined,) = result.updated
    (made,) = result.created
    assert (joined.ticket.event_count, joined.unannounced, joined.group_offsets) == (8, 3, {"3": 7})
    assert made.ticket.source_event_id == other.event_id and made.ticket.fingerprint == "SMK-0099|smoke"
    assert kinds(result) == [(EventKind.ticket_routed, 0), (EventKind.ticket_grouped, 3)]


def test_an_alarm_sent_again_by_its_platform_or_below_the_offset_reached_is_not_counted_again():
    memory = Memory()
    alarms = storm(3)
    memory.write(plan(memory, received(alarms)))
    resent = plan(memory, received([alarms[1]], first_offset=10))  # the same alarm id, later on the partition
    forgotten = plan(memory, received(storm(1, start=9), first_offset=2))  # an id it forgot, at an offset joined
    for result in (resent, forgotten):
        assert (result.created, result.updated, result.duplicates) == ([], [], 1)
        assert kinds(result) == [], "announced already"


def test_an_alarm_whose_decision_fails_is_that_alarms_failure_not_the_batchs():
    batch = received([*storm(2, device="BAD"), *storm(2)])
    result = plan(Memory(), batch, Decisions(failing="BAD"))
    assert [item for item, _ in result.failed] == batch[:2]
    assert result.failed[0][1] == "triage error: ValueError: no route for this sensor"
    (made,) = result.created
    assert made.ticket.event_count == 2


def test_the_same_event_twice_in_a_batch_is_a_duplicate():
    alarm = make_alarm()
    result = plan(Memory(), received([alarm, alarm]))
    assert result.duplicates == 1 and result.created[0].ticket.event_count == 1


# --------------------------------------------------------------------------- 重复件


def test_repeat_complaints_are_linked_to_the_open_ticket_of_their_group():
    memory = Memory()
    first = plan(memory, received([complaint(0, "A"), complaint(1, "B")]))
    (made,) = first.created
    assert [repeat.external_id for repeat in made.ticket.repeats] == ["B"], "a repeat in the batch that made it"
    memory.write(first)
    result = plan(memory, received([complaint(30, "C")], first_offset=2))
    assert result.created == []
    (linked,) = result.updated
    assert [repeat.external_id for repeat in linked.ticket.repeats] == ["B", "C"]
    assert linked.ticket.event_count == 3 and linked.repeat_event_ids == {repeat.event_id
                                                                          for repeat in linked.ticket.repeats}
    assert kinds(result) == [(EventKind.ticket_grouped, 1)]
    assert result.events[0].note == "合并 1 条重复事件，累计 3 条"


def test_an_event_that_makes_two_tickets_gathers_its_repeats_on_the_first_in_this_batch_and_the_next():
    incoming = make_complaint(at=AT, external_id="A")
    first = make_ticket_from(incoming, repeat_key=PLACE, lead_unit="xixi")
    second = make_ticket_from(incoming, repeat_key=PLACE, lead_unit="shengtai", ticket_id=first.ticket_id + "-2")
    memory = Memory()
    result = plan(memory, received([make_triaged(incoming, tickets=[first, second]), complaint(1, "B")]))
    assert [stored.ticket.ticket_id for stored in result.created] == [first.ticket_id, second.ticket_id]
    assert {group: pointer.ticket_id for group, pointer in result.pointers.items()} == {
        group: first.ticket_id for group in groups_of(first)}
    assert [repeat.external_id for repeat in result.created[0].ticket.repeats] == ["B"]
    memory.write(result)
    later = plan(memory, received([complaint(2, "C")], first_offset=2))
    (linked,) = later.updated
    assert linked.ticket.ticket_id == first.ticket_id, "the next batch's repeat joins the same ticket"


def test_a_complaint_after_the_repeat_window_starts_a_new_ticket_and_takes_its_group():
    memory = Memory()
    memory.write(plan(memory, received([complaint(0, "A")])))
    result = plan(memory, received([complaint(169, "B")], first_offset=1))
    (made,) = result.created
    assert result.updated == [] and made.ticket.external_id == "B"
    assert result.pointers == {repeat_group(PLACE): Pointer(made.ticket.ticket_id, made.ticket.created_at)}


# --------------------------------------------------------------------------- 反弹


def _resolved(days_ago: float) -> StoredTicket:
    """A ticket about the dust at 东湖路工地, resolved ``days_ago`` before ``AT`` + 40 days."""
    ticket = complaint(0, "A").tickets[0]
    resolved_at = AT + timedelta(days=40 - days_ago)
    return StoredTicket(ticket.model_copy(update={"state": TicketState.resolved, "version": 4,
                                                  "resolved_at": resolved_at}))


def test_a_complaint_soon_after_its_ticket_was_resolved_reopens_it_once():
    stored = _resolved(days_ago=10)
    memory = Memory().holding(stored)
    back = complaint(40 * 24, "B")
    result = plan(memory, received([back]))
    assert result.created == []
    (reopened,) = result.updated
    assert [repeat.external_id for repeat in reopened.ticket.repeats] == ["B"]
    (command,) = result.commands
    assert (command.ticket_id, command.action) == (stored.ticket.ticket_id, Action.reopen)
    assert command.event_id == derived_event_id(back.incoming.event_id, "recurrence")
    assert "问题反弹" in command.note and "B" in command.note
    assert kinds(result) == [(EventKind.ticket_grouped, 1)]

    memory.write(result)
    again = plan(memory, received([back]))
    assert again.updated == [] and kinds(again) == [] and again.duplicates == 1
    assert [command.event_id for command in again.commands] == [command.event_id], \
        "sent again under its id, in case the crash came before it was published; applied once"


def test_a_complaint_long_after_its_ticket_was_resolved_is_a_new_problem():
    memory = Memory().holding(_resolved(days_ago=31))
    result = plan(memory, received([complaint(40 * 24, "B")]))
    assert result.commands == [] and result.updated == []
    (made,) = result.created
    assert made.ticket.external_id == "B"


# --------------------------------------------------------------------------- batches read again


def _mixed_batch(memory: Memory) -> list[Received]:
    """A storm, a repeat of a stored ticket's problem and a complaint of its own."""
    memory.holding(StoredTicket(complaint(0, "A").tickets[0]))
    return received([*storm(4), complaint(2, "B"), make_triaged(make_complaint(content="楼道堆物"))], first_offset=1)


def test_a_batch_planned_again_after_it_was_written_makes_nothing_and_announces_nothing_again():
    memory = Memory()
    batch = _mixed_batch(memory)
    first = plan(memory, batch)
    assert (len(first.created), len(first.updated)) == (2, 1)
    memory.write(first)
    again = plan(memory, batch)
    assert (again.created, again.updated, again.pointers, again.announced) == ([], [], {}, [])
    assert [event.kind for event in again.events] == [EventKind.ticket_routed] * 2, "creations republished"
    assert {event.event_id for event in again.events} <= {event.event_id for event in first.events}
    assert again.duplicates == len(batch)


def test_joins_written_but_not_announced_before_a_crash_are_announced_again_as_the_same_event():
    memory = Memory()
    batch = _mixed_batch(memory)
    first = plan(memory, batch)
    memory.write(first, announced=False)
    again = plan(memory, batch)
    def announcements(result: Plan) -> list[tuple[str, int]]:
        return [(event.event_id, event.events_joined) for event in result.events
                if event.kind is EventKind.ticket_grouped]

    assert len(announcements(first)) == 2 and announcements(again) == announcements(first)
    assert again.announced == first.announced and again.updated == []


def test_joins_announced_before_a_crash_are_not_counted_again_when_the_batch_comes_back_longer():
    """Published, then the crash before the joins were marked announced; the batch comes back with more records.
    What consumers count (each announcement once, by its id) is every join once."""
    memory = Memory()
    alarms = storm(8)
    first = plan(memory, received(alarms[:5]))
    memory.write(first, announced=False)
    again = plan(memory, received(alarms))
    published = {event.event_id: event.events_joined for result in (first, again) for event in result.events
                 if event.kind is EventKind.ticket_grouped}
    (ticket,) = again.updated
    assert ticket.ticket.event_count == 8 and sum(published.values()) == 7, published
    assert set(published) >= {event.event_id for event in first.events if event.kind is EventKind.ticket_grouped}


# --------------------------------------------------------------------------- a ticket made before a crash


def test_a_ticket_made_before_its_group_pointed_at_it_is_taken_up_and_its_storm_joins_it():
    memory = Memory()
    alarms = storm(6)
    memory.write(plan(memory, received(alarms[:4])), pointers=False)  # made, then the crash
    (made,) = memory.tickets.values()
    assert memory.pointers == {}
    result = plan_batch(received(alarms), {}, WINDOWS, Decisions(), existing={made.ticket.ticket_id: made})
    assert result.created == []
    assert result.pointers == {SMOKE: Pointer(made.ticket.ticket_id, made.ticket.created_at)}
    assert result.deadlines == [(made.ticket, 3)], "its deadlines may not have been filed"
    (joined,) = result.updated
    assert joined.ticket.event_count == 6 and result.duplicates == 4
    assert kinds(result) == [(EventKind.ticket_routed, 0), (EventKind.ticket_grouped, 3),
                             (EventKind.ticket_grouped, 2)], "the joins the crash left unannounced, then the new ones"

    memory.write(result)
    later = plan(memory, received(storm(2, start=6), first_offset=6))
    assert later.created == [] and [stored.ticket.ticket_id for stored in later.updated] == [made.ticket.ticket_id]


def test_a_ticket_made_before_a_crash_is_found_and_taken_up_when_the_batch_is_read_again():
    memory = Memory()
    batch = received(storm(4))
    memory.write(plan(memory, batch), pointers=False)
    again = plan(memory, batch)  # the handler's look-up finds the ticket
    memory.write(again)
    assert again.created == [] and len(memory.tickets) == 1 and set(memory.pointers.values()) == set(memory.tickets)


@pytest.mark.parametrize(("holder_age", "claimed"), [(timedelta(days=-60), True), (timedelta(hours=1), False)])
def test_a_ticket_made_before_a_crash_claims_a_group_pointing_at_an_older_ticket_not_a_later_one(holder_age, claimed):
    memory = Memory()
    alarms = storm(2)
    memory.write(plan(memory, received(alarms)), pointers=False)
    (made,) = memory.tickets.values()
    holder = make_ticket_from(make_alarm(at=AT + holder_age), state=TicketState.closed, version=5)
    memory.holding(StoredTicket(holder))
    result = plan_batch(received(alarms), memory.groups(received(alarms)), WINDOWS, Decisions(),
                        existing={made.ticket.ticket_id: made})
    assert (result.pointers.get(SMOKE) == Pointer(made.ticket.ticket_id, made.ticket.created_at)) is claimed
