"""The ticket state machine: every transition, every refusal, and random command sequences (hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from civicbus.events import (
    Action,
    Actor,
    Complaint,
    ComplaintReceived,
    EventKind,
    ReturnReason,
    Satisfaction,
    TicketCommand,
    TicketState,
)
from civicbus.refusals import RefusalCode
from services.triage.decide import TriageEngine
from services.triage.lifecycle import Applied, Refused, apply

NOW = datetime(2026, 11, 23, 2, tzinfo=UTC)  # Monday 10:00 in Shanghai
LEAD = Actor(name="劳保所 张三", role="unit", unit="laobao")
OTHER_UNIT = Actor(name="司法所 李四", role="unit", unit="sifa")
DISPATCHER = Actor(name="综治中心 王五", role="unit", unit="pingan")
LEADER = Actor(name="郑秀英", role="leader")


@pytest.fixture(scope="module")
def routed(district):
    event = ComplaintReceived(source="12345", recorded_at=NOW, data=Complaint(content="老板拖欠工资三个月"))
    ticket = TriageEngine(district).decide(event).tickets[0]
    assert ticket.state is TicketState.routed and ticket.lead_unit == "laobao"
    return ticket


def command(action: Action, actor: Actor = LEAD, **fields) -> TicketCommand:
    return TicketCommand(source="test", ticket_id="T", action=action, actor=actor, **fields)


def step(ticket, district, action, actor=LEAD, at=NOW, **fields):
    outcome = apply(ticket, command(action, actor, **fields), at, district)
    assert isinstance(outcome, Applied), getattr(outcome, "message", outcome)
    assert outcome.ticket.version == ticket.version + 1
    return outcome


def refused(ticket, district, action, actor=LEAD, at=NOW, **fields) -> Refused:
    outcome = apply(ticket, command(action, actor, **fields), at, district)
    assert isinstance(outcome, Refused), outcome
    return outcome


def test_the_whole_loop_sign_resolve_callback_close(routed, district):
    signed = step(routed, district, Action.sign_for).ticket
    assert signed.state is TicketState.acknowledged and signed.acknowledged_at == NOW
    noted = step(signed, district, Action.add_note, note="已联系企业负责人").ticket
    resolved = step(noted, district, Action.resolve, result="已追回工资 3.2 万元", attachments=["https://x/1.jpg"],
                    amount_recovered=32000)
    assert resolved.kind is EventKind.ticket_resolved and resolved.ticket.state is TicketState.resolved
    assert resolved.ticket.amount_recovered == 32000, "the amount recovered (追回金额) is kept on the ticket"
    closed = step(resolved.ticket, district, Action.record_callback, DISPATCHER, resolved=True,
                  satisfaction=Satisfaction.satisfied).ticket
    assert closed.state is TicketState.closed and closed.callback.satisfaction is Satisfaction.satisfied


def test_resolve_before_sign_for_is_refused_and_changes_nothing(routed, district):
    refusal = refused(routed, district, Action.resolve, result="done")
    assert refusal.code is RefusalCode.wrong_state and "须先签收" in refusal.message


def test_sign_for_by_an_assisting_unit_is_refused(routed, district):
    assisted = routed.model_copy(update={"assist_units": ["sifa"]})
    assert refused(assisted, district, Action.sign_for, OTHER_UNIT).code is RefusalCode.not_allowed


def test_to_a_unit_with_no_business_with_it_the_ticket_does_not_exist(routed, district):
    """Whatever it tries, the answer is that of a missing ticket: neither that the ticket exists nor its state."""
    acknowledged = step(routed, district, Action.sign_for).ticket
    for ticket, action in ((routed, Action.sign_for), (acknowledged, Action.resolve), (routed, Action.add_note)):
        refusal = refused(ticket, district, action, OTHER_UNIT, result="done", note="看看")
        assert (refusal.code, refusal.message) == (RefusalCode.ticket_not_found, "工单不存在：T")


def test_extension_only_before_the_deadline_and_only_later_than_it(routed, district):
    late = routed.resolve_due + timedelta(minutes=1)
    assert refused(routed, district, Action.request_extension, at=late, note="x",
                   extension_until=late + timedelta(days=3)).code is RefusalCode.deadline_passed
    assert refused(routed, district, Action.request_extension, note="x",
                   extension_until=routed.resolve_due - timedelta(hours=1)).code is RefusalCode.invalid_extension
    until = routed.resolve_due + timedelta(days=5)
    requested = step(routed, district, Action.request_extension, note="需协调住建部门", extension_until=until).ticket
    assert requested.pending_extension.until == until
    assert refused(requested, district, Action.decide_extension, LEAD, grant=True).code is RefusalCode.not_allowed
    granted = step(requested, district, Action.decide_extension, LEADER, grant=True)
    assert granted.ticket.resolve_due == until and granted.ticket.pending_extension is None
    shown = until.astimezone(ZoneInfo("Asia/Shanghai"))
    assert granted.note.startswith(f"同意延期至 {shown:%Y-%m-%d %H:%M}"), "the timeline says it in the district's time"


def test_return_needs_a_reason_and_asks_for_rerouting(routed, district):
    assert refused(routed, district, Action.return_).code is RefusalCode.missing_field
    outcome = step(routed, district, Action.return_, return_reason=ReturnReason.wrong_area)
    assert outcome.reroute and outcome.ticket.returned_by == ["laobao"]


def test_unsatisfied_callback_sends_it_back_for_rework(routed, district):
    signed = step(routed, district, Action.sign_for).ticket
    resolved = step(signed, district, Action.resolve, result="已处理").ticket
    reworked = step(resolved, district, Action.record_callback, DISPATCHER, resolved=False)
    assert reworked.ticket.state is TicketState.acknowledged and reworked.ticket.rework_count == 1
    assert reworked.new_deadlines


def test_reopen_counts_a_recurrence_and_reassign_changes_the_lead(routed, district):
    signed = step(routed, district, Action.sign_for).ticket
    resolved = step(signed, district, Action.resolve, result="已处理").ticket
    reopened = step(resolved, district, Action.reopen, DISPATCHER).ticket
    assert reopened.state is TicketState.routed and reopened.reopen_count == 1
    assert refused(reopened, district, Action.reassign, DISPATCHER, unit="laobao").code is RefusalCode.same_unit
    assert refused(reopened, district, Action.reassign, DISPATCHER, unit="nowhere").code is RefusalCode.unknown_unit
    assert refused(reopened, district, Action.reassign, LEAD, unit="sifa").code is RefusalCode.not_allowed
    moved = step(reopened, district, Action.reassign, DISPATCHER, unit="sifa").ticket
    assert moved.lead_unit == "sifa" and moved.leader == district.units["sifa"].leader


def test_supervision_is_for_leaders(routed, district):
    assert refused(routed, district, Action.supervise, LEAD).code is RefusalCode.not_allowed
    assert step(routed, district, Action.supervise, LEADER, note="请加快办理").ticket.supervision_count == 1


def test_dispatching_a_manual_ticket_names_its_assisting_units(routed, district):
    manual = routed.model_copy(update={"state": TicketState.manual, "lead_unit": "", "leader": "",
                                       "assist_units": []})
    assigned = step(manual, district, Action.reassign, DISPATCHER, unit="laobao",
                    assist_units=["sifa", "xixi", "sifa", "laobao"])
    assert assigned.ticket.state is TicketState.routed and assigned.ticket.lead_unit == "laobao"
    assert assigned.ticket.assist_units == ["sifa", "xixi"], "once each, never the lead unit"
    assert assigned.note == "派单至劳动保障所，协办：司法所、西溪村"
    unknown = refused(manual, district, Action.reassign, DISPATCHER, unit="laobao", assist_units=["sifa", "nowhere"])
    assert unknown.code is RefusalCode.unknown_unit and "nowhere" in unknown.message


def test_reassign_keeps_the_assisting_units_unless_it_names_them(routed, district):
    assisted = routed.model_copy(update={"assist_units": ["xixi", "sifa"]})
    kept = step(assisted, district, Action.reassign, DISPATCHER, unit="sifa")
    assert kept.ticket.assist_units == ["xixi"] and kept.note == "改派至司法所"
    cleared = step(assisted, district, Action.reassign, DISPATCHER, unit="sifa", assist_units=[])
    assert cleared.ticket.assist_units == []


def test_the_photos_of_progress_notes_stay_on_the_ticket_after_it_is_resolved(routed, district):
    signed = step(routed, district, Action.sign_for).ticket
    noted = step(signed, district, Action.add_note, note="现场照片", attachments=["https://x/site.jpg"]).ticket
    assert noted.attachments == ["https://x/site.jpg"]
    resolved = step(noted, district, Action.resolve, result="已处理",
                    attachments=["https://x/done.jpg", "https://x/site.jpg"]).ticket
    assert resolved.attachments == ["https://x/site.jpg", "https://x/done.jpg"]


def test_every_refusal_has_chinese_and_english_texts():
    from civicbus.refusals import REFUSAL_TEXTS

    assert set(REFUSAL_TEXTS) == set(RefusalCode)
    assert all(chinese and english.isascii() for chinese, english in REFUSAL_TEXTS.values())


ACTORS = st.sampled_from([LEAD, OTHER_UNIT, DISPATCHER, LEADER, Actor(name="平台", role="system")])
COMMANDS = st.builds(
    lambda action, actor, hours, grant, resolved, satisfaction, reason, unit, assist: command(
        action, actor, note="说明", result="办结情况", grant=grant, resolved=resolved, satisfaction=satisfaction,
        return_reason=reason, unit=unit, assist_units=assist, extension_until=NOW + timedelta(hours=hours),
    ),
    st.sampled_from(list(Action)), ACTORS, st.integers(1, 400), st.none() | st.booleans(),
    st.none() | st.booleans(), st.none() | st.sampled_from(list(Satisfaction)),
    st.none() | st.sampled_from(list(ReturnReason)), st.sampled_from(["laobao", "sifa", "nowhere", ""]),
    st.none() | st.lists(st.sampled_from(["laobao", "sifa", "xixi"]), max_size=3),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(COMMANDS, st.integers(0, 200)), max_size=25))
def test_random_command_sequences_never_reach_an_illegal_state(routed, district, steps):
    ticket, at = routed, NOW
    for cmd, minutes in steps:
        at += timedelta(minutes=minutes)
        outcome = apply(ticket, cmd, at, district)
        if isinstance(outcome, Refused):
            assert outcome.message and outcome.code in RefusalCode
            continue
        new = outcome.ticket
        assert new.ticket_id == ticket.ticket_id, "the ticket is never lost or swapped"
        assert new.version == ticket.version + 1
        assert (new.resolved_at is not None) == (new.state in (TicketState.resolved, TicketState.closed))
        assert (new.state is TicketState.closed) == (new.closed_at is not None)
        if new.state is TicketState.closed:
            assert new.callback.resolved and new.callback.satisfaction is not Satisfaction.dissatisfied
        if new.state in (TicketState.routed, TicketState.acknowledged):
            assert new.lead_unit, "a routed or acknowledged ticket always has a lead unit"
        assert new.lead_unit not in new.assist_units
        ticket = new
