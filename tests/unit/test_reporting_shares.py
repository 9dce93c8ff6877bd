"""Reporting's one-writer layout, the pure parts: a counter increment goes to its writer's share of the cell, and the
reads sum a cell's shares and merge a ticket's notifications, counting nothing twice."""

from datetime import UTC, datetime

from civicbus.events import EventKind, NotificationResult, TicketEvent
from services.reporting.projections import (
    DIMENSIONS,
    counter_id,
    notification_increments,
    notification_writer,
    ticket_increments,
    ticket_writer,
)
from services.reporting.report import merge_notifications, merge_shares
from tests.factories import make_ticket, make_ticket_event

DAY = "2026-11-02"
AT = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)


def routed_event() -> TicketEvent:
    return make_ticket_event(ticket=make_ticket(  # about dust (environment.dust)
        ticket_id="SF-1", source_event_id="e-1", title="扬尘", content="工地扬尘", area="xixi", lead_unit="xixi",
        assist_units=["zhifa"], created_at=AT,
    ))


def test_a_ticket_event_counts_in_its_partitions_share_of_each_cell():
    event = routed_event()
    increments = ticket_increments(event, lambda moment: DAY, ticket_writer(3))
    assert [increment.doc_id for increment in increments] == [
        "2026-11-02|xixi|xixi|environment.dust|12345|t3",
        "2026-11-02|zhifa|xixi|environment.dust|12345|t3",
    ]
    assert {increment.token for increment in increments} == {event.event_id}
    assert increments[0].on_insert == dict(zip(DIMENSIONS, (DAY, "xixi", "xixi", "environment.dust", "12345"),
                                               strict=True)), "the share carries the cell's dimensions for the reads"


def test_a_notification_counts_in_its_partitions_share_apart_from_the_tickets_shares():
    result = NotificationResult(kind=EventKind.notification_delivered, source="civicbus.notify", occurred_at=AT,
                                ticket_id="SF-1", ticket_event_id="e-1", transition=EventKind.ticket_routed,
                                recipient="xixi", channel="dingtalk", attempts=1)
    (increment,) = notification_increments(result, DAY, notification_writer(1))
    assert increment.doc_id == counter_id(DAY, "xixi", "", "", "", "n1")
    assert increment.amounts == {"notified": 1}
    assert counter_id(DAY, "xixi", "", "", "", ticket_writer(1)) != increment.doc_id


def share(writer: str, unit: str = "xixi", **counts: list[str]) -> dict:
    dimensions = (DAY, unit, "xixi", "environment.dust", "12345")
    return {"_id": counter_id(*dimensions, writer), **dict(zip(DIMENSIONS, dimensions, strict=True)), **counts}


def test_reads_sum_a_cells_shares_per_cell():
    cells = merge_shares([
        share("t0", routed=["a:1", "b:1"], acknowledged=["a:1"]),
        share("t3", routed=["c:1"]),
        share("n1", notified=["x:1", "y:1"]),
        share("t3", unit="nantang", routed=["d:1"]),
    ])
    by_unit = {cell["unit"]: cell for cell in cells}
    assert len(cells) == 2
    assert by_unit["xixi"]["counts"] == {"routed": 3, "acknowledged": 1, "notified": 2}
    assert by_unit["nantang"]["counts"] == {"routed": 1}
    assert {name: by_unit["xixi"][name] for name in DIMENSIONS} == {
        "day": DAY, "unit": "xixi", "area": "xixi", "category": "environment.dust", "source": "12345"}


def test_an_event_in_two_documents_of_one_cell_counts_once():
    # A cell document of before the split (no writer in its id) and the share an event was applied to again.
    legacy = {**share("t0", routed=["a:1", "b:1"]), "_id": f"{DAY}|xixi|xixi|environment.dust|12345"}
    (cell,) = merge_shares([legacy, share("t2", routed=["b:1", "c:1"], repeats=["b:5"])])
    assert cell["counts"] == {"routed": 3, "repeats": 5}


def test_a_tickets_notifications_merge_oldest_first_each_once():
    def note(event_id: str, hour: int) -> dict:
        return {"event_id": event_id, "recipient": "xixi", "at": datetime(2026, 11, 2, hour, tzinfo=UTC)}

    merged = merge_notifications([note("b", 3), note("a", 1)], [note("c", 2), note("b", 3)])
    assert [entry["event_id"] for entry in merged] == ["a", "c", "b"]
    assert merge_notifications([], []) == []
