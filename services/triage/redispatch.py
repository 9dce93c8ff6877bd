"""Routing and deadlines again, for a ticket already made: after 退单 (without the units that returned it), and
fresh deadlines after 改派, 反弹 and 重办."""

from __future__ import annotations

from datetime import datetime

from civicbus.events import RoutingExplanation, Ticket, TicketState

from .deadlines import choose_policy
from .decide import TriageEngine


def with_new_deadlines(engine: TriageEngine, ticket: Ticket, now: datetime) -> Ticket:
    policy_id = ticket.deadline_policy or engine.district.deadlines.default_policy
    deadlines = engine.deadlines(policy_id, ticket.response_level, now)
    return ticket.model_copy(update={"sign_for_due": deadlines.sign_for_due, "resolve_due": deadlines.resolve_due,
                                     "overdue": []})


def rerouted(engine: TriageEngine, ticket: Ticket, now: datetime) -> Ticket:
    """Route again by the rules, skipping every unit that returned the ticket; the dispatcher if none is left."""
    excluded = set(ticket.returned_by)
    for assignment in engine.router.assign(ticket.explanation.labels):
        if assignment.lead_unit and assignment.lead_unit not in excluded:
            explanation = ticket.explanation.model_copy(
                update={"route_path": assignment.match.names, "manual_reason": "",
                        "matched": [str(matcher) for matcher in assignment.match.route.parsed_matchers]}
            )
            routed = ticket.model_copy(update={
                "state": TicketState.routed,
                "lead_unit": assignment.lead_unit,
                "assist_units": [unit for unit in assignment.assist_units if unit not in excluded],
                "leader": assignment.leader,
                "explanation": explanation,
                # The new route's deadline policy, as first routing chooses it.
                "deadline_policy": choose_policy(engine.district.deadlines, assignment.deadline_policy,
                                                 ticket.severity),
            })
            return with_new_deadlines(engine, routed, now)
    returned = "、".join(engine.district.units[unit].name for unit in ticket.returned_by if unit in engine.district.units)
    explanation: RoutingExplanation = ticket.explanation.model_copy(
        update={"manual_reason": f"已被{returned}退单，规则中没有其他可派单位"}
    )
    manual = ticket.model_copy(update={"state": TicketState.manual, "lead_unit": "", "assist_units": [], "leader": "",
                                       "explanation": explanation})
    return with_new_deadlines(engine, manual, now)
