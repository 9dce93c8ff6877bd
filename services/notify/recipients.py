"""Who hears of what (通知对象): recipients of each transition and of each escalation step (their channels are
``NotifyConfig.channels_of``)."""

from __future__ import annotations

from civicbus.district import District, LeaderRole
from civicbus.events import EventKind, Ticket, TicketEvent, TicketState

from .config import EscalationTarget, NotifyConfig

# A ticket that changed hands is news to its new unit, as a new ticket is.
REDISPATCHED = {EventKind.ticket_returned, EventKind.ticket_reassigned, EventKind.ticket_reopened}
# What the unit handling a ticket must hear of. (A missed deadline is told by step 1 of the ticket's escalation
# policy when that step tells the unit; otherwise triage's ticket.overdue event tells it.)
TO_LEAD_UNIT = {EventKind.ticket_supervised, EventKind.ticket_callback_recorded, EventKind.ticket_extension_decided}


def recipients(event: TicketEvent, district: District, notify: NotifyConfig) -> list[tuple[str, str]]:
    """(unit id, role) of everyone who must hear of this transition."""
    ticket = event.ticket
    if event.kind is EventKind.ticket_manual or (ticket.state is TicketState.manual and event.kind in REDISPATCHED):
        return [(district.dispatcher.id, "dispatcher")]
    if event.kind is EventKind.ticket_routed or event.kind in REDISPATCHED:
        return [(ticket.lead_unit, "lead"), *((unit, "assist") for unit in ticket.assist_units)]
    overdue_to_unit = event.kind is EventKind.ticket_overdue and not _escalation_tells_unit(event, notify)
    if (event.kind in TO_LEAD_UNIT or overdue_to_unit) and ticket.lead_unit:
        return [(ticket.lead_unit, "lead")]
    return []  # grouping, sign-for, notes, resolution…: on the ticket, not worth a message


def _escalation_tells_unit(event: TicketEvent, notify: NotifyConfig) -> bool:
    """Whether the first step of the ticket's escalation policy tells its unit of this missed deadline."""
    escalation = notify.file.escalation
    if escalation is None or event.deadline is None:
        return False
    policy = escalation.policy_for(event.ticket.category, str(event.ticket.response_level))
    return event.deadline in policy.deadlines and EscalationTarget.unit in policy.steps[0].notify


def escalation_recipients(ticket: Ticket, targets: tuple[str, ...], district: District) -> list[tuple[str, str]]:
    """(unit or leader id, role) of one escalation step's targets."""
    found: list[tuple[str, str]] = []
    for target in targets:
        if target == EscalationTarget.unit and ticket.lead_unit:
            found.append((ticket.lead_unit, "lead"))
        elif target == EscalationTarget.leader_in_charge:
            leader = ticket.leader or (district.units[ticket.lead_unit].leader if ticket.lead_unit else "")
            if leader:
                found.append((leader, "leader_in_charge"))
        elif target == EscalationTarget.main_leaders:
            found.extend((leader.id, "main_leader") for leader in district.leaders.values()
                         if leader.role is LeaderRole.main)
    return list(dict.fromkeys(found))


def is_urgent(ticket: Ticket, notify: NotifyConfig) -> bool:
    """Urgent messages are never held in quiet hours (紧急、特急 tickets by default)."""
    quiet = notify.file.quiet_hours
    return quiet is None or str(ticket.severity) in quiet.urgent_severities
