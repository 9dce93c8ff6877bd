"""Triage's plan for a batch of triaged events (``EventTriaged``): given the tickets of the batch's problem groups as
stored, which tickets to make, which events join which ticket (alarm storms, 重复件), which tickets are reopened
(反弹), and what to announce.

Pure — no I/O, no Kafka, no MongoDB — so that the rules of grouping can be read and tested on their own: the handler
(``handler.py``) reads what the plan needs, asks for the plan, writes it in bulk and publishes it. A batch read again
after a crash is planned against what its first reading left stored, which is what makes it harmless:

- an event a ticket holds already (its source, a linked 重复件, one of the alarm ids it remembers, or an alarm at an
  offset its partition reached) is not joined again, and joins not announced yet are announced under an event id
  that names the state reached, so announcing them twice is recognised downstream;
- a ticket the batch would make that exists already — made before a crash, maybe before its groups pointed at it —
  is taken up instead of made again: it claims its groups if they point nowhere or at an older ticket, and the
  batch's other events join it as they would join any stored ticket.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from civicbus.events import (
    OPEN_STATES,
    Action,
    Actor,
    AlarmRaised,
    Event,
    EventKind,
    EventTriaged,
    Repeat,
    Ticket,
    TicketCommand,
    TicketEvent,
    TicketState,
    derived_event_id,
)

from .groups import groups_of, repeat_group

RECENT_ALARM_IDS = 1000
"""How many of the latest alarm ids an alarm ticket remembers: the same alarm sent again by its platform (a retry
with the same id, at a new offset) within that many repeats is recognised. Older repeats are only counted."""

TRANSITION_BY_STATE = {TicketState.routed: EventKind.ticket_routed, TicketState.manual: EventKind.ticket_manual}

AlarmDecider = Callable[[Event], list[Ticket]]
"""Triage's decision for an alarm that opens a ticket (the first of its storm): the tickets it makes."""


@dataclass(frozen=True)
class Received:
    """An ``EventTriaged`` record and where it was read on ``civic.commands``: that partition's owner files the
    deadlines of the tickets it makes, and an alarm ticket remembers the offset it joined up to."""

    triaged: EventTriaged
    partition: int
    offset: int

    @property
    def event(self) -> Event:
        return self.triaged.incoming


@dataclass
class StoredTicket:
    """A ticket as its writer keeps it: the ticket and the bookkeeping that makes its joins idempotent."""

    ticket: Ticket
    group_offsets: dict[str, int] = field(default_factory=dict)  # partition → highest offset of an alarm joined
    repeat_event_ids: set[str] = field(default_factory=set)
    recent_event_ids: list[str] = field(default_factory=list)
    applied_commands: set[str] = field(default_factory=set)
    unannounced: int = 0  # events joined since the last announcement (ticket.grouped) was published

    def holds(self, event_id: str) -> bool:
        """Whether this event made or already joined the ticket."""
        return (
            event_id == self.ticket.source_event_id
            or event_id in self.repeat_event_ids
            or event_id in self.recent_event_ids
        )

    @property
    def is_open(self) -> bool:
        return self.ticket.state in OPEN_STATES


@dataclass(frozen=True)
class Windows:
    """How long a problem stays the same problem (routing.yaml → ``grouping``)."""

    repeat: timedelta  # a complaint this soon after its group's ticket was made is a 重复件
    recurrence: timedelta  # one this soon after the ticket's 办结 reopens it (反弹)


@dataclass(frozen=True)
class Pointer:
    """A group's pointer (``ticket_groups``): the ticket gathering the problem from now on."""

    ticket_id: str
    since: datetime


@dataclass
class Plan:
    """What a batch does, in the order the handler carries it out."""

    created: list[StoredTicket] = field(default_factory=list)  # to make, as the batch's joins leave them
    updated: list[StoredTicket] = field(default_factory=list)  # stored tickets the batch joined events to, after
    pointers: dict[str, Pointer] = field(default_factory=dict)  # group → its ticket
    deadlines: list[tuple[Ticket, int]] = field(default_factory=list)  # to file, with the partition whose owner files
    events: list[TicketEvent] = field(default_factory=list)  # civic.tickets
    commands: list[TicketCommand] = field(default_factory=list)  # civic.commands: reopens (反弹)
    announced: list[str] = field(default_factory=list)  # tickets whose joins the events announce
    failed: list[tuple[Received, str]] = field(default_factory=list)
    duplicates: int = 0


def group_of(item: Received) -> str | None:
    """The problem group an event belongs to, if any."""
    if isinstance(item.event, AlarmRaised):
        return item.triaged.home  # the triager sets an alarm's home to its fingerprint's group
    repeat_key = item.triaged.tickets[0].repeat_key
    return repeat_group(repeat_key) if repeat_key else None


def groups_to_read(batch: Iterable[Received]) -> set[str]:
    """The groups whose tickets the plan needs, as stored."""
    return {group for item in batch if (group := group_of(item)) is not None}


def plan_batch(
    batch: Sequence[Received],
    groups: Mapping[str, StoredTicket],
    windows: Windows,
    decide_alarm: AlarmDecider,
    existing: Mapping[str, StoredTicket] | None = None,
) -> Plan:
    """The plan for ``batch``, given ``groups`` (group → the latest ticket it points at, open or not, as stored) and
    ``existing`` (tickets this plan would make that are stored already, found by the caller after a first plan).
    ``decide_alarm`` may raise: that alarm fails, not the batch."""
    return _Planning(groups, existing or {}, windows, decide_alarm).run(batch)


@dataclass
class _Joins:
    """What a batch adds to one ticket."""

    recent: list[str]  # the ticket's remembered alarm ids, then this batch's
    offsets: dict[str, int] = field(default_factory=dict)
    repeats: list[Repeat] = field(default_factory=list)
    count: int = 0
    last_at: datetime | None = None


class _Planning:
    def __init__(self, groups: Mapping[str, StoredTicket], existing: Mapping[str, StoredTicket], windows: Windows,
                 decide_alarm: AlarmDecider) -> None:
        self.groups = dict(groups)  # group → the stored ticket this batch finds there
        self.existing = existing
        self.windows = windows
        self.decide_alarm = decide_alarm
        self.plan = Plan()
        self.base: dict[str, StoredTicket] = {}  # every ticket the batch touches, as stored or as made
        self.joins: dict[str, _Joins] = {}
        self.new: list[str] = []  # tickets to make
        self.made: list[Ticket] = []  # tickets this batch makes, or made before a crash, as their creation says
        self.made_in_group: dict[str, str] = {}  # group → the ticket this batch made for it
        self.republish_created: set[str] = set()
        self.republish_grouped: set[str] = set()
        self.correlation: dict[str, str] = {}

    def run(self, batch: Sequence[Received]) -> Plan:
        unique: dict[str, Received] = {}
        for item in batch:
            if item.event.event_id in unique:
                self.plan.duplicates += 1
            else:
                unique[item.event.event_id] = item
        for stored in self.existing.values():
            self._take_up(stored, unique[stored.ticket.source_event_id])
        for item in unique.values():
            if isinstance(item.event, AlarmRaised):
                self._alarm(item)
            else:
                self._complaint(item)
        return self._finish()

    # ----------------------------------------------------------------------- one event at a time

    def _take_up(self, stored: StoredTicket, source: Received) -> None:
        """A ticket made before a crash: its deadlines are filed (maybe they were not), and it claims its groups
        unless a later ticket holds them."""
        ticket = stored.ticket
        self.base[ticket.ticket_id] = stored
        self.plan.deadlines.append((ticket, source.partition))
        for group in groups_of(ticket):
            holder = self.groups.get(group)
            if holder is None or holder.ticket.created_at < ticket.created_at:
                self.groups[group] = stored
                self.plan.pointers[group] = Pointer(ticket.ticket_id, ticket.created_at)

    def _alarm(self, item: Received) -> None:
        event = item.event
        group = item.triaged.home
        stored = self.groups.get(group)
        if stored is not None and stored.is_open:
            # Joined before: redelivered, or sent again by its platform (an alarm id beyond the ones remembered is
            # still known by its partition's offset).
            self._join_once(stored, item, joined_before=stored.holds(event.event_id)
                            or item.offset <= stored.group_offsets.get(str(item.partition), -1))
            return
        if group in self.made_in_group:
            self._join(self.made_in_group[group], item)
            return
        try:
            tickets = self.decide_alarm(event)
        except Exception as error:  # a datum the rules did not foresee: that alarm, not the batch
            self.plan.failed.append((item, f"triage error: {type(error).__name__}: {error}"))
            return
        self._make(item, tickets, group, first_offset=True)

    def _complaint(self, item: Received) -> None:
        event = item.event
        group = group_of(item)
        stored = self.groups.get(group) if group else None
        if stored is not None and not stored.is_open:
            done_at = stored.ticket.closed_at or stored.ticket.resolved_at
            if stored.holds(event.event_id):
                # A recurrence, redelivered: its reopen command again (applied once, by its id), in case the crash
                # came before it was published.
                ticket_id = self._touch(stored, event)
                self.republish_grouped.add(ticket_id)
                self.plan.commands.append(_reopen(event, ticket_id))
                self.plan.duplicates += 1
                return
            if done_at and done_at >= event.recorded_at - self.windows.recurrence:
                self._recurrence(item, stored)
                return
            stored = None  # long solved: this complaint is a new problem
        elif stored is not None and stored.ticket.created_at < event.recorded_at - self.windows.repeat:
            stored = None  # an old problem: this complaint starts a new ticket
        if stored is not None:
            self._join_once(stored, item, joined_before=stored.holds(event.event_id))
            return
        if group in self.made_in_group:
            self._join(self.made_in_group[group], item)
            return
        self._make(item, item.triaged.tickets, group)

    def _join_once(self, stored: StoredTicket, item: Received, joined_before: bool) -> None:
        """Join the event to a stored ticket of its group, unless it is the ticket's own first event or joined it
        before (redelivered): then only announce again what was announced, in case a crash came before."""
        ticket_id = self._touch(stored, item.event)
        if item.event.event_id == stored.ticket.source_event_id:
            self.republish_created.add(ticket_id)
            self.plan.duplicates += 1
        elif joined_before:
            self.republish_grouped.add(ticket_id)
            self.plan.duplicates += 1
        else:
            self._join(ticket_id, item)

    def _recurrence(self, item: Received, stored: StoredTicket) -> None:
        """The problem is back after it was resolved (反弹): link the complaint and have the ticket reopened —
        through a command, so the ticket's state keeps its one writer."""
        ticket_id = self._touch(stored, item.event)
        self._join(ticket_id, item)
        self.plan.commands.append(_reopen(item.event, ticket_id))

    def _touch(self, stored: StoredTicket, event: Event) -> str:
        ticket_id = stored.ticket.ticket_id
        self.base.setdefault(ticket_id, stored)
        self.correlation.setdefault(ticket_id, event.correlation_id)
        return ticket_id

    def _join(self, ticket_id: str, item: Received) -> None:
        """An alarm joins the ticket of its storm; a complaint is linked to its ticket as a 重复件. Joins to a ticket
        made in this batch come after its creation, so its creation event carries the first event alone."""
        event = item.event
        joins = self.joins.get(ticket_id)
        if joins is None:
            joins = self.joins[ticket_id] = _Joins(list(self.base[ticket_id].recent_event_ids))
        joins.count += 1
        joins.last_at = max(filter(None, (joins.last_at, event.occurred_at)))
        if isinstance(event, AlarmRaised):
            joins.recent.append(event.event_id)
            partition = str(item.partition)
            joins.offsets[partition] = max(joins.offsets.get(partition, -1), item.offset)
        else:
            data = event.data  # type: ignore[attr-defined]
            joins.repeats.append(Repeat(event_id=event.event_id, external_id=getattr(data, "external_id", ""),
                                        at=event.occurred_at))
        self.correlation.setdefault(ticket_id, event.correlation_id)

    def _make(self, item: Received, tickets: list[Ticket], group: str | None, first_offset: bool = False) -> None:
        """The event's tickets (routes with ``continue`` make several); the first gathers its group's next events.
        ``first_offset``: the first remembers the event's offset (an alarm storm's)."""
        pointed: set[str] = set()  # the groups this event's first ticket points at: the next events join it
        for index, ticket in enumerate(tickets):
            self.correlation[ticket.ticket_id] = item.event.correlation_id
            taken = self.existing.get(ticket.ticket_id)
            if taken is not None:  # made before a crash: taken up (``_take_up``), not made again
                self.made.append(taken.ticket)
                self.plan.duplicates += 1
                continue
            offsets = {str(item.partition): item.offset} if first_offset and index == 0 else {}
            recent = [ticket.source_event_id] if ticket.fingerprint else []
            self.base[ticket.ticket_id] = StoredTicket(ticket, offsets, recent_event_ids=recent)
            self.new.append(ticket.ticket_id)
            self.made.append(ticket)
            self.plan.deadlines.append((ticket, item.partition))
            for ticket_group in set(groups_of(ticket)) - pointed:
                self.plan.pointers[ticket_group] = Pointer(ticket.ticket_id, ticket.created_at)
                pointed.add(ticket_group)
            if index == 0 and group:
                self.made_in_group[group] = ticket.ticket_id

    # ----------------------------------------------------------------------- the plan

    def _finish(self) -> Plan:
        plan = self.plan
        after = {ticket_id: _joined(stored, self.joins.get(ticket_id)) for ticket_id, stored in self.base.items()}
        new = set(self.new)
        plan.created = [after[ticket_id] for ticket_id in self.new]
        plan.updated = [after[ticket_id] for ticket_id in self.joins if ticket_id not in new]

        # Only a ticket nobody has acted on is still as it was made: a redelivered event republishes its creation;
        # one that has moved on (a later version) was announced before anybody could act on it.
        plan.events = [_created(ticket, self.correlation[ticket.ticket_id]) for ticket in self.made
                       if ticket.ticket_id in new or ticket.version == 1]
        made = {ticket.ticket_id for ticket in self.made}
        for ticket_id in sorted(self.republish_created - made):
            if after[ticket_id].ticket.version == 1:
                plan.events.append(_created(after[ticket_id].ticket, self.correlation[ticket_id]))
        # Joins are announced while some are unannounced: a redelivery finding its joins applied announces them if
        # the crash came before, and says nothing if they were announced already.
        announce = [after[ticket_id] for ticket_id in sorted(set(self.joins) | self.republish_grouped)
                    if after[ticket_id].unannounced]
        for stored in announce:
            ticket_id = stored.ticket.ticket_id
            before = self.base[ticket_id]
            if before.unannounced and ticket_id in self.joins:
                # Joins stored but not known to be announced (a crash after their batch's writes, perhaps after its
                # publishing): their own announcement again, the same event as then, and this batch's new joins in
                # another. One announcement of both would count the earlier joins twice if the first was published.
                plan.events.append(_grouped(before, self.correlation[ticket_id]))
                plan.events.append(_grouped(stored, self.correlation[ticket_id],
                                            joined=stored.unannounced - before.unannounced))
            else:
                plan.events.append(_grouped(stored, self.correlation[ticket_id]))
        plan.announced = [stored.ticket.ticket_id for stored in announce]
        return plan


def _joined(stored: StoredTicket, joins: _Joins | None) -> StoredTicket:
    """The ticket as the batch leaves it."""
    if joins is None:
        return stored
    ticket = stored.ticket
    last_at = max(filter(None, (ticket.last_event_at, joins.last_at)), default=None)
    offsets = dict(stored.group_offsets)
    for partition, offset in joins.offsets.items():
        offsets[partition] = max(offsets.get(partition, -1), offset)
    return replace(
        stored,
        ticket=ticket.model_copy(update={"event_count": ticket.event_count + joins.count, "last_event_at": last_at,
                                         "repeats": [*ticket.repeats, *joins.repeats]}),
        group_offsets=offsets,
        repeat_event_ids=stored.repeat_event_ids | {repeat.event_id for repeat in joins.repeats},
        recent_event_ids=joins.recent[-RECENT_ALARM_IDS:],
        unannounced=stored.unannounced + joins.count,
    )


# --------------------------------------------------------------------------- what is published


def _created(ticket: Ticket, correlation_id: str) -> TicketEvent:
    transition = TRANSITION_BY_STATE[ticket.state]
    return TicketEvent(
        # Derived, not random: a redelivered event republishes the same lifecycle event, which notify and reporting
        # recognise by its id.
        event_id=derived_event_id(ticket.ticket_id, transition),
        kind=transition,
        source="civicbus.triage",
        occurred_at=ticket.created_at,
        correlation_id=correlation_id,
        ticket=ticket,
        note=ticket.explanation.manual_reason,
    )


def _grouped(stored: StoredTicket, correlation_id: str, joined: int | None = None) -> TicketEvent:
    """The announcement of the joins that brought the ticket to ``stored`` (by default every join since the last
    one announced). Read again after a crash, it is the same event — same id, same count — whether or not it was
    published then."""
    joined = stored.unannounced if joined is None else joined
    ticket = stored.ticket
    # The id names the state reached (offsets, repeats), so republishing the same state is recognised.
    state = ",".join(f"{partition}:{offset}" for partition, offset in sorted(stored.group_offsets.items()))
    return TicketEvent(
        event_id=derived_event_id(ticket.ticket_id, EventKind.ticket_grouped, state, str(ticket.event_count)),
        kind=EventKind.ticket_grouped,
        source="civicbus.triage",
        occurred_at=ticket.last_event_at or ticket.created_at,
        correlation_id=correlation_id,
        ticket=ticket,
        note=f"合并 {joined} 条重复事件，累计 {ticket.event_count} 条",
        events_joined=joined,
    )


def _reopen(event: Event, ticket_id: str) -> TicketCommand:
    data = event.data  # type: ignore[attr-defined]
    return TicketCommand(
        event_id=derived_event_id(event.event_id, "recurrence"),
        source="civicbus.triage",
        correlation_id=event.correlation_id,
        ticket_id=ticket_id,
        action=Action.reopen,
        actor=Actor(name="civicbus.triage", role="system"),
        note=f"问题反弹：办结后再次收到同一地点同类投诉（{getattr(data, 'external_id', '') or event.event_id}）",
    )
