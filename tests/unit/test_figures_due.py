"""响应率, 办结率, 按期办结率 and 超期率 divide by what was due (应签收, 应办结), worked out by hand on ticket stories.

Each story's lifecycle events go through the projection's pure parts (``ticket_increments`` and the missed-limit
marks, as ``Projections.apply_ticket_events`` applies them) into an in-memory counter cube, which is read as the
reports read it (``merge_shares``, a period's slice, ``FigureBook``). Week 45 of 2026 is Mon 2 – Sun 8 November,
week 46 starts Mon 9 November; times are the district's (Asia/Shanghai) unless written in UTC.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from civicbus.events import EventKind, TicketEvent, TicketState
from services.reporting.figures import FigureBook, with_derived
from services.reporting.projections import missed_on, missed_resolve_mark, ticket_increments, ticket_writer
from services.reporting.report import Reports, ReportFilter, merge_shares
from tests.factories import make_ticket

SHANGHAI = ZoneInfo("Asia/Shanghai")
RATES = ("response_rate", "closure_rate", "on_time_closure_rate", "overdue_rate")


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, second, tzinfo=SHANGHAI)


def day_of(moment: datetime) -> str:
    return moment.astimezone(SHANGHAI).date().isoformat()


class Story:
    """One ticket's events, each carrying the ticket as it is after it (as triage publishes them)."""

    def __init__(self, name: str, routed: datetime, sign_for_due: datetime, resolve_due: datetime,
                 unit: str = "xixi") -> None:
        self.ticket = make_ticket(  # about dust (environment.dust)
            ticket_id=name, source_event_id=f"e-{name}", title=name, content=name, area="xixi", lead_unit=unit,
            sign_for_due=sign_for_due, resolve_due=resolve_due, created_at=routed,
        )
        self.events = [TicketEvent(kind=EventKind.ticket_routed, source="civicbus.triage", occurred_at=routed,
                                   ticket=self.ticket)]

    def step(self, kind: EventKind, moment: datetime, deadline: str | None = None, **changes: Any) -> Story:
        self.ticket = self.ticket.model_copy(update={**changes, "version": self.ticket.version + 1})
        self.events.append(TicketEvent(kind=kind, source="civicbus.triage", occurred_at=moment, ticket=self.ticket,
                                       deadline=deadline))
        return self

    def signed(self, moment: datetime) -> Story:
        return self.step(EventKind.ticket_acknowledged, moment, state=TicketState.acknowledged, acknowledged_at=moment)

    def resolved(self, moment: datetime) -> Story:
        return self.step(EventKind.ticket_resolved, moment, state=TicketState.resolved, resolved_at=moment)

    def missed(self, deadline: str, moment: datetime) -> Story:
        """The overdue sweep's ``ticket.overdue``, a few seconds after the limit passed."""
        return self.step(EventKind.ticket_overdue, moment, deadline=deadline, overdue=[*self.ticket.overdue, deadline])


class Cube:
    """The counter cube in memory: per share document, per count, the set of event tokens."""

    def __init__(self) -> None:
        self.documents: dict[str, dict[str, Any]] = {}
        self.marks: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def apply(self, *events: TicketEvent) -> Cube:
        for event in events:
            marks = self.marks[event.ticket.ticket_id]
            if (mark := missed_resolve_mark(event, day_of)) is not None and mark not in marks:
                marks.append(mark)
            for increment in ticket_increments(event, day_of, ticket_writer(0), missed_on(marks, event)):
                document = self.documents.setdefault(increment.doc_id, dict(increment.on_insert))
                for name, amount in increment.amounts.items():
                    if amount:
                        document.setdefault(name, set()).add(f"{increment.token}:{amount}")
        return self

    def play(self, *stories: Story) -> Cube:
        for story in stories:
            self.apply(*story.events)
        return self

    def counts(self, since: date, until: date | None = None, unit: str = "") -> dict[str, int]:
        cells = merge_shares([{**document, **{name: list(value) for name, value in document.items()
                                              if isinstance(value, set)}} for document in self.documents.values()])
        return with_derived(Reports._slice(cells, [], since, until or since, ReportFilter(unit=unit)).counts)

    def figures(self, since: date, until: date | None = None, unit: str = "") -> dict[str, float | None]:
        values = FigureBook().values(self.counts(since, until, unit), [])
        return {code: values[code] for code in RATES}


MONDAY, TUESDAY, WEDNESDAY, THURSDAY, SUNDAY = (date(2026, 11, day) for day in (2, 3, 4, 5, 8))
WEEK_45, WEEK_46 = (date(2026, 11, 2), date(2026, 11, 8)), (date(2026, 11, 9), date(2026, 11, 15))
NOTHING_DUE = dict.fromkeys(RATES)


def test_a_ticket_not_yet_due_counts_against_nobody():
    """Routed Mon 09:00, sign for by 17:30, resolve by Fri 17:30; at Mon 09:01 nothing is due: no rate, not 0 %."""
    fresh = Story("fresh", at(2, 9), at(2, 17, 30), at(6, 17, 30))
    cube = Cube().play(fresh)
    assert cube.counts(MONDAY)["routed"] == 1
    assert cube.figures(MONDAY) == NOTHING_DUE
    assert cube.figures(*WEEK_45) == NOTHING_DUE


def test_due_and_on_time():
    """Signed Mon 10:00 (due 17:30), resolved Wed 10:00 (due Fri 17:30): each limit falls due the day it is met."""
    prompt = Story("prompt", at(2, 9), at(2, 17, 30), at(6, 17, 30)).signed(at(2, 10)).resolved(at(4, 10))
    cube = Cube().play(prompt)
    assert cube.figures(MONDAY) == {"response_rate": 1.0, "closure_rate": None, "on_time_closure_rate": None,
                                    "overdue_rate": None}
    assert cube.figures(WEDNESDAY) == {"response_rate": None, "closure_rate": 1.0, "on_time_closure_rate": 1.0,
                                       "overdue_rate": 0.0}
    assert cube.figures(*WEEK_45) == {"response_rate": 1.0, "closure_rate": 1.0, "on_time_closure_rate": 1.0,
                                      "overdue_rate": 0.0}


def test_due_and_late():
    """Sign for by Mon 12:00, marked missed 12:00:10, signed 15:00; resolve by Tue 17:30, marked missed 17:30:15,
    resolved Thu 10:00. Both limits fall due on their deadlines' days; the late resolution counts for Tuesday."""
    late = (Story("late", at(2, 9), at(2, 12), at(3, 17, 30))
            .missed("sign_for", at(2, 12, 0, 10)).signed(at(2, 15))
            .missed("resolve", at(3, 17, 30, 15)).resolved(at(5, 10)))
    cube = Cube().play(late)
    monday, tuesday, thursday = cube.counts(MONDAY), cube.counts(TUESDAY), cube.counts(THURSDAY)
    assert (monday["acknowledged"], monday["acknowledged_in_time"], monday["overdue_sign_for"]) == (1, 0, 1)
    assert cube.figures(MONDAY)["response_rate"] == 0.0
    assert (tuesday["overdue_resolve"], tuesday["resolved_late"], tuesday["resolved_in_time"]) == (1, 1, 0)
    assert cube.figures(TUESDAY) == {"response_rate": None, "closure_rate": 1.0, "on_time_closure_rate": 0.0,
                                     "overdue_rate": 1.0}
    assert thursday["resolved"] == 1 and cube.figures(THURSDAY) == NOTHING_DUE, "resolved there, but due on Tuesday"


def test_a_late_sign_for_or_resolution_the_sweep_had_not_marked_is_missed_all_the_same():
    """The sweep runs every few seconds (or was down): a unit that signs for and resolves after the limits, before
    any ticket.overdue, missed them on the deadlines' days all the same — counted once, never as on time."""
    unmarked = Story("unmarked", at(2, 9), at(2, 12), at(3, 17, 30)).signed(at(2, 12, 0, 5)).resolved(at(4, 9))
    cube = Cube().play(unmarked)
    assert cube.figures(*WEEK_45) == {"response_rate": 0.0, "closure_rate": 1.0, "on_time_closure_rate": 0.0,
                                      "overdue_rate": 1.0}
    assert cube.counts(TUESDAY)["overdue_resolve"] == 1 and cube.counts(WEDNESDAY)["overdue_resolve"] == 0


def test_across_a_period_boundary_a_limit_counts_in_the_period_it_fell_due():
    """Resolve by Sun 8 Nov 23:00, marked missed 23:00:15, resolved Mon 9 Nov 10:00: week 45's, not week 46's.
    Another's sign-for limit, Sun 8 Nov 16:30 UTC, is Mon 9 Nov 00:30 in the district: week 46's."""
    sunday = (Story("sunday", at(8, 9), at(8, 12), at(8, 23)).signed(at(8, 10))
              .missed("resolve", at(8, 23, 0, 15)).resolved(at(9, 10)))
    night = Story("night", at(8, 22), datetime(2026, 11, 8, 16, 30, tzinfo=UTC), at(10, 17, 30))
    night.missed("sign_for", datetime(2026, 11, 8, 16, 30, 12, tzinfo=UTC))
    cube = Cube().play(sunday, night)
    assert cube.figures(*WEEK_45) == {"response_rate": 1.0, "closure_rate": 1.0, "on_time_closure_rate": 0.0,
                                      "overdue_rate": 1.0}
    assert cube.figures(*WEEK_46) == {"response_rate": 0.0, "closure_rate": None, "on_time_closure_rate": None,
                                      "overdue_rate": None}
    assert cube.counts(*WEEK_46)["resolved"] == 1, "the resolution itself happened in week 46"
    # Seen from Sunday evening, before the late resolution: due, not resolved.
    before = Cube().apply(*sunday.events[:-1])
    assert before.figures(*WEEK_45)["closure_rate"] == 0.0 and before.figures(*WEEK_45)["overdue_rate"] == 1.0


def test_a_ticket_returned_before_its_limit_counts_only_for_the_next_unit():
    """Routed to 西溪村 Mon 09:00, returned 10:00 (before its 17:30 limit) and routed on to 南塘村 with new limits;
    南塘村 signs for it in time."""
    returned = Story("returned", at(2, 9), at(2, 17, 30), at(6, 17, 30))
    returned.step(EventKind.ticket_returned, at(2, 10), lead_unit="nantang", returned_by=["xixi"],
                  sign_for_due=at(2, 18), resolve_due=at(6, 18))
    returned.signed(at(2, 11))
    cube = Cube().play(returned)
    assert cube.figures(MONDAY, unit="xixi") == NOTHING_DUE and cube.counts(MONDAY, unit="xixi")["returned"] == 1
    assert cube.figures(MONDAY, unit="nantang")["response_rate"] == 1.0


def test_an_extension_granted_after_the_limit_passed_leaves_the_resolution_late_on_the_day_it_fell_due():
    """Resolve by Tue 17:30, marked missed; an extension to Fri granted Wed; resolved Thu: late, and Tuesday's."""
    extended = (Story("extended", at(2, 9), at(2, 12), at(3, 17, 30)).signed(at(2, 10))
                .missed("resolve", at(3, 17, 30, 15))
                .step(EventKind.ticket_extension_decided, at(4, 9), resolve_due=at(6, 17, 30))
                .resolved(at(5, 10)))
    cube = Cube().play(extended)
    assert cube.figures(TUESDAY)["closure_rate"] == 1.0 and cube.figures(TUESDAY)["on_time_closure_rate"] == 0.0
    week = cube.counts(*WEEK_45)
    assert (week["due_resolve"], week["resolved_in_time"], week["resolved_late"]) == (1, 0, 1), "counted once"
    assert cube.counts(date(2026, 11, 6))["resolved_late"] == 0, "not the new limit's day"


def test_a_replayed_resolution_finds_the_mark_it_followed_not_a_later_one():
    """Missed Tue, resolved late Thu, sent back (重办) with new limits, missed again the next Tue: replaying the
    first resolution after all that still credits Tuesday 3 November."""
    story = (Story("again", at(2, 9), at(2, 12), at(3, 17, 30)).signed(at(2, 10))
             .missed("resolve", at(3, 17, 30, 15)).resolved(at(5, 10)))
    first_resolution = story.events[-1]
    story.step(EventKind.ticket_callback_recorded, at(5, 15), state=TicketState.acknowledged, resolved_at=None,
               overdue=[], resolve_due=at(10, 17, 30))
    story.missed("resolve", at(10, 17, 30, 15))
    marks = [mark for event in story.events if (mark := missed_resolve_mark(event, day_of)) is not None]
    assert [mark["day"] for mark in marks] == ["2026-11-03", "2026-11-10"]
    assert missed_on(marks, first_resolution) == "2026-11-03"
    cube = Cube().play(story).apply(first_resolution)
    assert cube.counts(TUESDAY)["resolved_late"] == 1
    assert cube.counts(date(2026, 11, 10))["resolved_late"] == 0


def test_the_demo_right_after_routing_ranks_no_unit_at_zero():
    """Nine units each given a ticket a minute ago: none has anything due, so none has a response rate."""
    cube = Cube().play(*(Story(f"new{index}", at(2, 9), at(2, 17, 30), at(6, 17, 30), unit=f"unit{index}")
                         for index in range(9)))
    for index in range(9):
        assert FigureBook().values(cube.counts(MONDAY, unit=f"unit{index}"), [])["response_rate"] is None
    assert cube.counts(MONDAY)["routed"] == 9
