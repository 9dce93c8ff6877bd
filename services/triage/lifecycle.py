"""The ticket state machine (工单流转): 派单 → 签收 → 办理 → 办结 → 回访, with 退单, 延期, 督办, 改派 and 反弹.

Pure: :func:`apply` takes a ticket, a command and the time, and returns the ticket after the transition or a
refusal with its reason. It never raises for a command a person could send; an illegal command changes nothing.
Re-routing (after 退单) and new deadlines (after 改派 or 反弹) are asked for in the result and done by triage,
which knows the rules and the calendar.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from civicbus.district import District
from civicbus.events import (
    PENDING_STATES,
    STATE_NAMES,
    Action,
    Callback,
    EventKind,
    Extension,
    Satisfaction,
    Ticket,
    TicketCommand,
    TicketState,
)
from civicbus.refusals import REFUSAL_TEXTS, RefusalCode


@dataclass(frozen=True)
class Applied:
    ticket: Ticket
    kind: EventKind
    note: str
    reroute: bool = False  # 退单: route again without the units that returned it
    new_deadlines: bool = False  # 改派, 反弹, 重办: deadlines run again from now
    deadline: str | None = None  # for ticket.overdue: which deadline was missed


@dataclass(frozen=True)
class Refused:
    code: RefusalCode
    detail: str

    @property
    def message(self) -> str:
        chinese, english = REFUSAL_TEXTS[self.code]
        return f"{chinese}：{self.detail}" if self.detail else chinese

    @property
    def message_en(self) -> str:
        return REFUSAL_TEXTS[self.code][1]


Outcome = Applied | Refused


def _is_admin(command: TicketCommand) -> bool:
    return command.actor.role == "admin"


def _is_dispatcher(command: TicketCommand, district: District) -> bool:
    actor = command.actor
    return _is_admin(command) or (actor.role == "unit" and actor.unit == district.dispatcher.id)


def _is_lead(command: TicketCommand, ticket: Ticket) -> bool:
    return _is_admin(command) or (command.actor.role == "unit" and command.actor.unit == ticket.lead_unit)


def _is_leader(command: TicketCommand) -> bool:
    return command.actor.role in ("leader", "admin")


def _involved(command: TicketCommand, ticket: Ticket, district: District) -> bool:
    unit = command.actor.unit if command.actor.role == "unit" else ""
    return (
        _is_leader(command)
        or _is_dispatcher(command, district)
        or (bool(unit) and (unit == ticket.lead_unit or unit in ticket.assist_units))
    )


def _stranger(command: TicketCommand, ticket: Ticket, district: District) -> bool:
    """A key with no business with the ticket: a unit neither leading, assisting nor dispatching (reporting hides
    the ticket from it too), or an Open311 client's key."""
    role = command.actor.role
    return role == "open311" or (role == "unit" and not _involved(command, ticket, district))


def _wrong_state(ticket: Ticket, wanted: str) -> Refused:
    return Refused(RefusalCode.wrong_state, f"当前为“{STATE_NAMES[ticket.state]}”，{wanted}")


def _changed(ticket: Ticket, **fields: object) -> Ticket:
    return ticket.model_copy(update={**fields, "version": ticket.version + 1})


def apply(ticket: Ticket | None, command: TicketCommand, now: datetime, district: District) -> Outcome:
    """The ticket after ``command`` at ``now``, or why the command is refused. To a stranger (:func:`_stranger`)
    the ticket does not exist: the refusal says neither that it does nor in which state it is."""
    if ticket is None or _stranger(command, ticket, district):
        return Refused(RefusalCode.ticket_not_found, command.ticket_id)
    handler = _HANDLERS[command.action]
    return handler(ticket, command, now, district)


def _sign_for(ticket: Ticket, command: TicketCommand, now: datetime, district: District) -> Outcome:
    if ticket.state is not TicketState.routed:
        return _wrong_state(ticket, "只有已派单的工单可以签收")
    if not _is_lead(command, ticket):
        return Refused(RefusalCode.not_allowed, "只有主办单位可以签收")
    return Applied(_changed(ticket, state=TicketState.acknowledged, acknowledged_at=now),
                   EventKind.ticket_acknowledged, command.note)


def _return(ticket: Ticket, command: TicketCommand, now: datetime, district: District) -> Outcome:
    if ticket.state not in (TicketState.routed, TicketState.acknowledged):
        return _wrong_state(ticket, "只有已派单或办理中的工单可以退单")
    if not _is_lead(command, ticket):
        return Refused(RefusalCode.not_allowed, "只有主办单位可以退单")
    if command.return_reason is None:
        return Refused(RefusalCode.missing_field, "退单须说明原因（属地不符、权属不清、职能交叉或其他）")
    if command.return_reason == "other" and not command.note:
        return Refused(RefusalCode.missing_field, "原因为“其他”时须填写说明")
    returned_by = [*ticket.returned_by, ticket.lead_unit] if ticket.lead_unit else ticket.returned_by
    return Applied(
        _changed(ticket, returned_by=list(dict.fromkeys(returned_by)), acknowledged_at=None),
        EventKind.ticket_returned,
        command.note or str(command.return_reason),
        reroute=True,
    )


def _request_extension(ticket: Ticket, command: TicketCommand, now: datetime, district: District) -> Outcome:
    if ticket.state not in (TicketState.routed, TicketState.acknowledged):
        return _wrong_state(ticket, "只有办理中的工单可以申请延期")
    if not _is_lead(command, ticket):
        return Refused(RefusalCode.not_allowed, "只有主办单位可以申请延期")
    if ticket.pending_extension is not None:
        return Refused(RefusalCode.extension_pending, "")
    if ticket.resolve_due is not None and now >= ticket.resolve_due:
        return Refused(RefusalCode.deadline_passed, "")
    if command.extension_until is None or not command.note:
        return Refused(RefusalCode.missing_field, "须填写延期至何时及理由")
    if ticket.resolve_due is not None and command.extension_until <= ticket.resolve_due:
        return Refused(RefusalCode.invalid_extension, "")
    extension = Extension(until=command.extension_until, reason=command.note, requested_by=command.actor.name,
                          requested_at=now)
    return Applied(_changed(ticket, pending_extension=extension), EventKind.ticket_extension_requested, command.note)


def _decide_extension(ticket: Ticket, command: TicketCommand, now: datetime, district: District) -> Outcome:
    if ticket.pending_extension is None:
        return Refused(RefusalCode.no_pending_extension, "")
    if not (_is_leader(command) or _is_dispatcher(command, district)):
        return Refused(RefusalCode.not_allowed, "延期由分管领导或派单中心审批")
    if command.grant is None:
        return Refused(RefusalCode.missing_field, "须注明同意或不同意")
    if command.grant:
        changed = _changed(ticket, pending_extension=None, resolve_due=ticket.pending_extension.until)
        until = ticket.pending_extension.until.astimezone(ZoneInfo(district.timezone))  # as people read it
        note = f"同意延期至 {until:%Y-%m-%d %H:%M}"
    else:
        changed = _changed(ticket, pending_extension=None)
        note = "不同意延期"
    return Applied(changed, EventKind.ticket_extension_decided, f"{note}。{command.note}".rstrip("。") + "。")


def _add_note(ticket: Ticket, command: TicketCommand, now: datetime, district: District) -> Outcome:
    if ticket.state is TicketState.closed:
        return _wrong_state(ticket, "已关闭的工单不能再添加进展")
    if not _involved(command, ticket, district):
        return Refused(RefusalCode.not_allowed, "只有主办、协办单位和领导可以添加进展")
    if not command.note:
        return Refused(RefusalCode.missing_field, "进展内容不能为空")
    return Applied(_changed(ticket, attachments=_with_attachments(ticket, command)), EventKind.ticket_note_added,
                   command.note)


def _resolve(ticket: Ticket, command: TicketCommand, now: datetime, district: District) -> Outcome:
    if ticket.state is not TicketState.acknowledged:
        return _wrong_state(ticket, "须先签收才能办结")
    if not _is_lead(command, ticket):
        return Refused(RefusalCode.not_allowed, "只有主办单位可以办结")
    if not command.result:
        return Refused(RefusalCode.missing_field, "须填写办结情况")
    return Applied(
        _changed(ticket, state=TicketState.resolved, resolved_at=now, resolution=command.result,
                 attachments=_with_attachments(ticket, command), pending_extension=None,
                 amount_recovered=command.amount_recovered if command.amount_recovered is not None
                 else ticket.amount_recovered),
        EventKind.ticket_resolved,
        command.result,
    )


def _with_attachments(ticket: Ticket, command: TicketCommand) -> list[str]:
    """The ticket's files with the command's added: a 进展's photos are still there after 办结 (and a first 办结's
    after 重办)."""
    return list(dict.fromkeys([*ticket.attachments, *command.attachments]))


def _record_callback(ticket: Ticket, command: TicketCommand, now: datetime, district: District) -> Outcome:
    if ticket.state is not TicketState.resolved:
        return _wrong_state(ticket, "只有已办结的工单可以回访")
    if not (_is_dispatcher(command, district) or command.actor.role == "system"):
        return Refused(RefusalCode.not_allowed, "回访由派单中心或 12345 平台记录")
    if command.resolved is None or (command.resolved and command.satisfaction is None):
        return Refused(RefusalCode.missing_field, "须注明问题是否解决及满意度")
    callback = Callback(resolved=command.resolved, satisfaction=command.satisfaction, note=command.note, at=now)
    if command.resolved and command.satisfaction is not Satisfaction.dissatisfied:
        return Applied(_changed(ticket, state=TicketState.closed, closed_at=now, callback=callback),
                       EventKind.ticket_callback_recorded, command.note or "回访满意，工单关闭")
    # 重办: the same unit handles it again, on a fresh deadline.
    return Applied(
        _changed(ticket, state=TicketState.acknowledged, resolved_at=None, callback=callback,
                 rework_count=ticket.rework_count + 1),
        EventKind.ticket_callback_recorded,
        command.note or "回访不满意或未解决，退回重办",
        new_deadlines=True,
    )


def _supervise(ticket: Ticket, command: TicketCommand, now: datetime, district: District) -> Outcome:
    if ticket.state is TicketState.closed:
        return _wrong_state(ticket, "已关闭的工单无需督办")
    if not _is_leader(command):
        return Refused(RefusalCode.not_allowed, "督办由领导发起")
    return Applied(_changed(ticket, supervision_count=ticket.supervision_count + 1), EventKind.ticket_supervised,
                   command.note or "领导督办")


def _reopen(ticket: Ticket, command: TicketCommand, now: datetime, district: District) -> Outcome:
    if ticket.state not in (TicketState.resolved, TicketState.closed):
        return _wrong_state(ticket, "只有已办结或已关闭的工单可以重新打开")
    if not (_is_dispatcher(command, district) or command.actor.role == "system"):
        return Refused(RefusalCode.not_allowed, "重新打开由派单中心发起")
    state = TicketState.routed if ticket.lead_unit else TicketState.manual
    return Applied(
        _changed(ticket, state=state, acknowledged_at=None, resolved_at=None, closed_at=None,
                 reopen_count=ticket.reopen_count + 1),
        EventKind.ticket_reopened,
        command.note or "问题反弹，重新打开",
        new_deadlines=True,
    )


def _reassign(ticket: Ticket, command: TicketCommand, now: datetime, district: District) -> Outcome:
    if ticket.state not in (TicketState.manual, TicketState.routed, TicketState.acknowledged):
        return _wrong_state(ticket, "只有未办结的工单可以改派")
    if not _is_dispatcher(command, district):
        return Refused(RefusalCode.not_allowed, "改派由派单中心执行")
    unit = district.units.get(command.unit)
    if unit is None:
        return Refused(RefusalCode.unknown_unit, command.unit or "（未指定）")
    if unit.id == ticket.lead_unit:
        return Refused(RefusalCode.same_unit, "")
    unknown = [assist for assist in command.assist_units or () if assist not in district.units]
    if unknown:
        return Refused(RefusalCode.unknown_unit, "协办单位 " + "、".join(unknown))
    # Named by the command (派单 with 协办单位), or those the ticket had; never the new lead unit itself.
    assisting = ticket.assist_units if command.assist_units is None else command.assist_units
    assist_units = [assist for assist in dict.fromkeys(assisting) if assist != unit.id]
    note = f"{'派单' if ticket.state is TicketState.manual else '改派'}至{unit.name}"
    if command.assist_units and assist_units:
        note += "，协办：" + "、".join(district.units[assist].name for assist in assist_units)
    return Applied(
        _changed(ticket, state=TicketState.routed, lead_unit=unit.id, leader=unit.leader, acknowledged_at=None,
                 assist_units=assist_units),
        EventKind.ticket_reassigned,
        command.note or note,
        new_deadlines=True,
    )


DEADLINE_NAMES = {"sign_for": "签收", "resolve": "办结"}


def _mark_overdue(ticket: Ticket, command: TicketCommand, now: datetime, district: District) -> Outcome:
    if command.actor.role != "system":
        return Refused(RefusalCode.not_allowed, "超期由系统判定")
    deadline = command.deadline
    if deadline is None:
        return Refused(RefusalCode.missing_field, "须注明哪个时限")
    due = ticket.due(deadline)
    # The sweep states when the deadline passed (occurred_at): that, not the moment this is applied, is checked.
    if ticket.state not in PENDING_STATES[deadline] or deadline in ticket.overdue or due is None \
            or due > command.occurred_at:
        return _wrong_state(ticket, f"{DEADLINE_NAMES[deadline]}时限未到或已完成")
    return Applied(_changed(ticket, overdue=[*ticket.overdue, deadline]), EventKind.ticket_overdue,
                   f"已超过{DEADLINE_NAMES[deadline]}时限", deadline=deadline)


_HANDLERS = {
    Action.sign_for: _sign_for,
    Action.return_: _return,
    Action.request_extension: _request_extension,
    Action.decide_extension: _decide_extension,
    Action.add_note: _add_note,
    Action.resolve: _resolve,
    Action.record_callback: _record_callback,
    Action.supervise: _supervise,
    Action.reopen: _reopen,
    Action.reassign: _reassign,
    Action.mark_overdue: _mark_overdue,
}
